"""bag_to_depth with a sparse depth topic (issue 13, item 3): the same per-frame fit as the node, from the bag.

The real TUM RGB-D frame plus a sparse depth Image made from the stand-in relative model's own output (computed
here with the estimator directly) with a known scale and shift and 10 % gross outliers: the written depth equals
1 / (s * relative + t) with (s, t) from an independent least-squares fit on the clean points, to 1e-3.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib

import numpy as np
import pytest

from bags import TYPESTORE, BagMessage, read_bag, write_bag
from standin import offline_args, run_main, standin_params
from dav2_ros.conversions.image_codec import image_msg_to_array
from dav2_ros.engines.estimator import DepthEstimator
from dav2_ros.offline import bag_to_depth

TRUE_FIT = (0.35, 0.05)
CAMERA = "/camera/color/image_raw"

# The fit is checked pixel by pixel: no flying-pixel filter (random weights jump everywhere), no temporal one
# (quoted: --param values are YAML, where a bare off is false).
NO_FILTERS = {"flying_pixel_threshold": 0.0, "temporal_filter": '"off"'}


def run_tool(args: list[str]) -> tuple[int, str, str]:
    """bag_to_depth.main in this process; (exit code, stdout, stderr)."""
    return run_main(bag_to_depth, args)


def float_image(msg) -> np.ndarray:
    return np.frombuffer(bytes(msg.data), dtype="<f4").reshape(msg.height, msg.width).astype(np.float64)


@pytest.fixture(scope="module")
def sparse_bag(tmp_path_factory, bags_dir) -> tuple[pathlib.Path, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The TUM bag plus /camera/color/sparse_depth (32FC1, 300 points, 30 of them gross outliers)."""
    messages = read_bag(bags_dir / "tum_rgbd")
    [camera] = [m for m in messages if m.topic == CAMERA]
    image, order = image_msg_to_array(camera.msg)
    estimator = DepthEstimator.random(encoder="vits", model_type="relative", device="cpu", precision="fp32")
    relative = estimator.infer(image, input_size=98, color_order=order).astype(np.float64)
    rng = np.random.default_rng(0)
    rows, cols = np.nonzero(np.isfinite(relative))
    pick = rng.choice(rows.size, 300, replace=False)
    rows, cols = rows[pick], cols[pick]
    depth = (1.0 / (TRUE_FIT[0] * relative[rows, cols] + TRUE_FIT[1])).astype(np.float32)
    outliers = np.zeros(300, bool)
    outliers[::10] = True
    depth[outliers] *= 3.0
    values = np.full(relative.shape, np.nan, np.float32)
    values[rows, cols] = depth
    image_type = TYPESTORE.types["sensor_msgs/msg/Image"]
    sparse = image_type(header=camera.msg.header, height=values.shape[0], width=values.shape[1], encoding="32FC1",
                        is_bigendian=0, step=4 * values.shape[1], data=np.frombuffer(values.tobytes(), np.uint8))
    bag = write_bag(tmp_path_factory.mktemp("sparse") / "in",
                    [*messages, BagMessage("/camera/color/sparse_depth", "sensor_msgs/msg/Image", camera.timestamp,
                                           sparse)])
    return bag, rows, cols, depth, outliers


def test_bag_to_depth_fits_the_sparse_topic(sparse_bag, tmp_path):
    bag, rows, cols, depth, outliers = sparse_bag
    params = dict(standin_params(tmp_path / "no_weights"), model_type="relative", min_depth=0.01,
                  max_valid_depth=1000.0, **{"sparse.input": "depth"}, **NO_FILTERS)
    out_dir = tmp_path / "out"
    code, out, err = run_tool([str(bag), "-o", str(out_dir), "--no-progress", "--summary-json",
                               str(tmp_path / "summary.json"), *offline_args(params)])
    assert code == 0, f"{out}\n{err}"
    assert "sparse:   /camera/color/sparse_depth (depth): 1 of 1 frames fitted" in out
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["sparse"]["frames_fitted"] == 1 and summary["sparse"]["rejected"] == {}

    written = {m.topic: m.msg for m in read_bag(out_dir)}
    relative = float_image(written["/camera/color/depth/relative"])
    metric = float_image(written["/camera/color/depth/image"])
    clean = ~outliers
    d = depth[clean].astype(np.float64)
    design = np.stack([relative[rows[clean], cols[clean]] * d, d], axis=1)  # (s r + t) d - 1: relative error
    s, t = np.linalg.lstsq(design, np.ones_like(d), rcond=None)[0]
    assert (s, t) == pytest.approx(TRUE_FIT, rel=1e-3)
    np.testing.assert_allclose(metric[rows, cols], 1.0 / (s * relative[rows, cols] + t), rtol=1e-3)
    assert "/camera/color/points" in written


def test_bag_to_depth_without_a_usable_sparse_message_falls_back(sparse_bag, tmp_path, caplog):
    bag, *_ = sparse_bag
    params = dict(standin_params(tmp_path / "no_weights"), model_type="relative", relative_scale=0.5,
                  relative_shift=0.1, min_depth=0.01, max_valid_depth=1000.0, **NO_FILTERS)
    # The TUM ground truth as the sparse topic, under a wrong frame_id: refused, relative_scale/relative_shift used.
    messages = read_bag(bag)
    gt = next(m for m in messages if m.topic == "/camera/depth/image_raw")
    moved = dataclasses.replace(gt.msg, header=dataclasses.replace(gt.msg.header, frame_id="kinect_depth"))
    wrong = write_bag(tmp_path / "wrong", [m for m in messages if m.topic != "/camera/depth/image_raw"]
                      + [BagMessage("/camera/depth/image_raw", gt.msgtype, gt.timestamp, moved)])
    code, out, err = run_tool([str(wrong), "-o", str(tmp_path / "out"), "--no-progress",
                               "--sparse-topic", "/camera/depth/image_raw", *offline_args(params)])
    assert code == 0, f"{out}\n{err}"
    logged = caplog.text + err  # the tool's logging (stderr when run as a command)
    assert "sparse depth not used (wrong_frame)" in logged and "relative_scale/relative_shift (0.5, 0.1)" in logged
    assert "0 of 1 frames fitted" in out and "not used: wrong_frame=1" in out
    written = {m.topic: m.msg for m in read_bag(tmp_path / "out")}
    relative = float_image(written["/camera/color/depth/relative"])
    np.testing.assert_allclose(float_image(written["/camera/color/depth/image"]), 1.0 / (0.5 * relative + 0.1),
                               rtol=1e-5)


def test_bag_to_depth_refuses_a_missing_sparse_topic(sparse_bag, tmp_path):
    bag, *_ = sparse_bag
    code, out, err = run_tool([str(bag), "-o", str(tmp_path / "out"), "--no-progress", "--sparse-topic", "/lidar",
                               *offline_args(standin_params(tmp_path / "no_weights"))])
    assert code == 1
    assert "sparse topic /lidar is not in bag" in err and "/camera/color/sparse_depth (Image)" in err
