"""The OpenVINO engine (dav2_ros.engines.openvino_engine) on the CPU: one compiled model per input shape, bounded;
the converted-model cache on disk; precision and threads as asked; batches; and a shape that fails to compile
refused on its own while the others go on. Parity with the official outputs: test_model_parity.py."""

from __future__ import annotations

import pathlib

import numpy as np
import pytest

pytest.importorskip("openvino", reason="openvino is not installed (pip install openvino)")

from dav2_ros.engines.base import EngineOptions, EngineShapeError  # noqa: E402
from dav2_ros.engines.openvino_engine import OpenVinoEngine  # noqa: E402
from dav2_ros.geometry.intrinsics import Intrinsics  # noqa: E402
from dav2_ros.engines.torch_runtime.device import cpu_has_native_bf16  # noqa: E402
from dav2_ros.engines.estimator import DepthEstimator  # noqa: E402
from dav2_ros.conversions.errors import InputRejected  # noqa: E402
from dav2_ros.pipeline.processing import FrameProcessor, FrameRequest, ProcessingSettings  # noqa: E402

SIZE = 70  # the smallest input_size the node takes: 5x5 patches, compiles in seconds


def image(height: int, width: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> pathlib.Path:
    """One engine cache for the tests that are not about the cache (each shape converts once)."""
    return tmp_path_factory.mktemp("engines")


def estimator(folder, **kwargs) -> DepthEstimator:
    options = EngineOptions(cache_dir=folder, **kwargs.pop("options", {}))
    return DepthEstimator.random(device="cpu", backend="openvino", engine_options=options, **kwargs)


def test_default_on_the_cpu_is_openvino_at_the_cpus_precision() -> None:
    est = DepthEstimator.random(device="cpu")
    assert est.backend == "openvino" and "auto: OpenVINO" in est.backend_reason
    assert est.precision == ("bf16" if cpu_has_native_bf16() else "fp32")
    assert est.device.type == "cpu"
    with pytest.raises(AttributeError, match="runs no torch module"):
        est.model  # noqa: B018 -- the torch network is backend torch's only
    with pytest.raises(ValueError, match="the on-device frame path runs backend torch only, not openvino"):
        est.device_frame_path(min_depth=0.1, max_depth=20.0)


def test_shapes_compile_once_and_are_kept_up_to_max_shapes(tmp_path) -> None:
    est = estimator(tmp_path, precision="fp32", options={"max_shapes": 2})
    engine = est.engine
    assert isinstance(engine, OpenVinoEngine)
    first = est.infer(image(48, 64), SIZE)
    assert first.shape == (48, 64) and first.dtype == np.float32 and np.isfinite(first).all()
    est.infer(image(64, 48), SIZE)
    est.infer(image(48, 64, seed=1), SIZE)  # the first shape again: no new compile
    assert len(engine.compile_seconds) == 2
    est.infer(image(48, 48), SIZE)  # a third shape: the least recently used one goes
    assert engine.shapes == [(1, 3, 70, 98), (1, 3, 70, 70)]
    assert len(engine.converted) == 3
    # A second engine with the same weights reads the converted models from the cache instead of tracing.
    again = estimator(tmp_path, precision="fp32")
    np.testing.assert_array_equal(again.infer(image(48, 64), SIZE), first)
    assert again.engine.converted == []
    assert sorted(p.name.split("_")[-1] for p in (tmp_path / "openvino" / "models").glob("*.xml")) == \
        ["1x3x70x70.xml", "1x3x70x98.xml", "1x3x98x70.xml"]


def test_precision_and_threads_reach_the_compiled_model(cache) -> None:
    est = estimator(cache, precision="auto", options={"num_threads": 1})
    est.infer(image(48, 64), SIZE)
    compiled = est.engine._compiled[(1, 3, 70, 98)]
    hint = compiled.get_property("INFERENCE_PRECISION_HINT")
    assert hint.get_type_name() == ("bf16" if cpu_has_native_bf16() else "f32")
    assert int(compiled.get_property("INFERENCE_NUM_THREADS")) == 1
    assert "latency hint, 1 threads" in est.describe_engine()


def test_batch_of_cameras_equals_frames_one_by_one(cache) -> None:
    est = estimator(cache, precision="fp32")
    frames = [image(48, 64, seed) for seed in range(3)]
    batch = est.infer_batch(frames, SIZE)
    for frame, depth in zip(frames, batch):
        np.testing.assert_allclose(depth, est.infer(frame, SIZE), rtol=1e-4, atol=1e-5)
    assert (3, 3, 70, 98) in est.engine.compile_seconds


def test_a_shape_that_cannot_compile_is_refused_alone(cache) -> None:
    est = estimator(cache, precision="fp32")
    # A real converter failure: 13x13 pixels hold no 14x14 patch (the node's preprocessing never makes one).
    with pytest.raises(EngineShapeError, match="13x13 network input"):
        est.engine.run(np.zeros((1, 3, 13, 13), np.float32))
    assert est.engine.converted == []
    with pytest.raises(EngineShapeError):  # remembered: refused at once, not converted again
        est.engine.run(np.zeros((1, 3, 13, 13), np.float32))


def test_the_frame_processor_rejects_frames_of_a_failing_size_and_goes_on(cache, monkeypatch) -> None:
    est = estimator(cache, precision="fp32")
    engine = est.engine
    convert = engine._convert

    def fail_for_portrait(shape):
        if shape[2] > shape[3]:
            raise RuntimeError("out of memory while compiling (simulated for this shape)")
        return convert(shape)

    monkeypatch.setattr(engine, "_convert", fail_for_portrait)
    processor = FrameProcessor(est, ProcessingSettings(input_size=SIZE, max_valid_depth=20.0))
    camera = Intrinsics(fx=50.0, fy=50.0, cx=31.5, cy=23.5, width=64, height=48)
    outcomes = processor.process_batch([FrameRequest(image(64, 48), "rgb"),
                                        FrameRequest(image(48, 64), "rgb", camera)])
    assert isinstance(outcomes[0], InputRejected) and outcomes[0].reason == "engine_compile_failed"
    assert "70x98 network input" in outcomes[0].detail and "simulated" in outcomes[0].detail
    assert outcomes[1].depth.shape == (48, 64) and outcomes[1].xyz.shape == (48, 64, 3)


def test_openvino_refuses_fp16_and_cuda() -> None:
    from dav2_ros.engines.base import BackendUnavailable

    with pytest.raises(BackendUnavailable, match="does not run precision fp16"):
        DepthEstimator.random(device="cpu", backend="openvino", precision="fp16")


def test_the_api_defaults_give_the_nodes_engine(tmp_path) -> None:
    """`DepthEstimator.from_state_dict(..., device="cpu")` with nothing else chosen runs what the node runs."""
    import logging

    from dav2_ros.pipeline.builders import build_estimator
    from dav2_ros.pipeline.settings import NodeSettings

    node, _ = build_estimator(NodeSettings(allow_random_weights=True, weights_dir=str(tmp_path), device="cpu"),
                              logging.getLogger("test"))
    api = DepthEstimator.random(encoder="vits", model_type="metric", max_depth=20.0, device="cpu")
    assert (api.backend, api.precision, api.preprocess) == (node.backend, node.precision, node.preprocess)
    assert api.backend == "openvino" and api.describe_engine() == node.describe_engine()
