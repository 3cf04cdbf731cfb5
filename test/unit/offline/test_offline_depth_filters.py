"""bag_to_depth runs the node's depth filters: the flying-pixel filter on every frame and one temporal filter over
the camera's stream, reset on a stamp gap. Checked on a stream made from the real TUM frame against the same
filters run here on the tool's own unfiltered output."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import pathlib

import numpy as np
import pytest

from bags import BagMessage, read_bag, stamp_ns, with_stamp, write_bag
from standin import offline_args, standin_params
from dav2_ros.geometry.depth_filters import TemporalFilter, TemporalOptions
from dav2_ros.offline import bag_to_depth

CAMERA = "/camera/color/image_raw"
DEPTH_OUT = "/camera/color/depth/image"
NS = 10**9
# stamps (s): three frames 0.1 s apart, then one after a gap
STAMPS = (0.0, 0.1, 0.2, 5.2)


def float_image(msg) -> np.ndarray:
    return np.frombuffer(bytes(msg.data), dtype="<f4").reshape(msg.height, msg.width)


@pytest.fixture(scope="module")
def stream(tmp_path_factory, bags_dir) -> pathlib.Path:
    """The TUM camera frame four times, every other one brighter (a slightly different depth), with its CameraInfo."""
    messages = read_bag(bags_dir / "tum_rgbd", topics=[CAMERA, "/camera/color/camera_info"])
    camera = next(m for m in messages if m.topic == CAMERA)
    info = next(m for m in messages if m.topic != CAMERA)
    pixels = np.frombuffer(bytes(camera.msg.data), np.uint8)
    brighter = np.clip(pixels.astype(np.int16) + 20, 0, 255).astype(np.uint8)
    start = stamp_ns(camera.msg)
    out = []
    for k, seconds in enumerate(STAMPS):
        stamp = start + int(seconds * NS)
        data = brighter if k % 2 else pixels
        image = with_stamp(dataclasses.replace(camera.msg, data=data), stamp)
        out += [BagMessage(info.topic, info.msgtype, stamp, with_stamp(info.msg, stamp)),
                BagMessage(CAMERA, camera.msgtype, stamp, image)]
    return write_bag(tmp_path_factory.mktemp("stream") / "in", out)


def convert(stream: pathlib.Path, out: pathlib.Path, **params) -> list[np.ndarray]:
    args = [str(stream), "-o", str(out), "--no-progress", *offline_args(dict(standin_params(out.parent / "none"),
                                                                             **params))]
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        assert bag_to_depth.main(args) == 0
    return [float_image(m.msg) for m in read_bag(out, topics=[DEPTH_OUT])]


@pytest.mark.parametrize("mode", ["scale", "ema"])
def test_bag_to_depth_filters_the_stream_like_the_node(stream, tmp_path, mode: str) -> None:
    # A threshold the random network's output mostly passes, so most pixels take part.
    raw = convert(stream, tmp_path / "raw", flying_pixel_threshold=0.05, temporal_filter='"off"')
    got = convert(stream, tmp_path / mode, flying_pixel_threshold=0.05, temporal_filter=mode)
    assert len(raw) == len(got) == len(STAMPS)
    assert np.isnan(raw[0]).any() and np.isfinite(raw[0]).mean() > 0.5  # the flying-pixel filter ran
    reference = TemporalFilter(mode, TemporalOptions(max_gap_s=0.5))
    expected = [reference.update(depth, stamp=s, source="camera_color_optical_frame") for depth, s in zip(raw, STAMPS)]
    for k, (g, e) in enumerate(zip(got, expected)):
        np.testing.assert_allclose(g, e, rtol=1e-5, atol=1e-5, equal_nan=True, err_msg=f"frame {k}")
    assert not np.allclose(got[1], raw[1], equal_nan=True)  # filtered ...
    np.testing.assert_array_equal(got[3], raw[3])  # ... and started over after the gap
    assert reference.resets == 1 and reference.last_reset == "stamp_gap"
