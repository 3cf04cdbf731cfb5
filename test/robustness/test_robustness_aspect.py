"""FrameProcessor refuses images more elongated than MAX_ASPECT_RATIO before running the model: the
network's input grows with the aspect ratio (a 1x300 image took 72 s on this CPU at input_size 70, a
1x16384 one would exhaust memory), so such a frame must cost nothing and say why."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from dav2_ros.conversions.errors import InputRejected
from dav2_ros.pipeline.processing import MAX_ASPECT_RATIO, FrameProcessor, ProcessingSettings
from estimator_spy import HostOnly


class CountingEstimator(HostOnly):
    """A stand-in model (not ROS) returning 1 m everywhere and counting its calls."""

    def __init__(self) -> None:
        self.config = SimpleNamespace(encoder="vits", model_type="metric", max_depth=20.0)
        self.last_timings = {"preprocess": 0.0, "inference": 0.0, "postprocess": 0.0}
        self.calls = 0

    def infer(self, image: np.ndarray, input_size: int = 518, color_order: str = "rgb") -> np.ndarray:
        self.calls += 1
        return np.ones(image.shape[:2], dtype=np.float32)


@pytest.mark.parametrize("height, width", [(1, 9), (9, 1), (1, 300), (2, 16384), (100, 801)])
def test_images_beyond_the_aspect_limit_are_refused_before_inference(height, width):
    estimator = CountingEstimator()
    processor = FrameProcessor(estimator, ProcessingSettings(input_size=70))
    with pytest.raises(InputRejected) as raised:
        processor.process(np.zeros((height, width, 3), np.uint8), "rgb")
    assert raised.value.reason == "bad_aspect"
    assert f"{width}x{height}" in raised.value.detail and f"{MAX_ASPECT_RATIO:g}:1" in raised.value.detail
    assert estimator.calls == 0


@pytest.mark.parametrize("height, width", [(1, 8), (8, 1), (1, 1), (100, 800), (720, 1280), (480, 640)])
def test_images_within_the_aspect_limit_are_processed(height, width):
    estimator = CountingEstimator()
    result = FrameProcessor(estimator, ProcessingSettings(input_size=70)).process(
        np.zeros((height, width, 3), np.uint8), "rgb")
    assert estimator.calls == 1 and result.depth.shape == (height, width)
