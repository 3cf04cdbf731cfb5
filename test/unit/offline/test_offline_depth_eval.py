"""depth_eval: the metrics against hand-computed values, and the command on the TUM RGB-D bag's ground truth."""

from __future__ import annotations

import json
import math
import pathlib

import numpy as np
import pytest

from bags import TYPESTORE, BagMessage, read_bag, with_stamp, write_bag
from standin import offline_args, standin_params
from dav2_ros.conversions.image_codec import depth_msg_to_array
from dav2_ros.offline import bag_to_depth, depth_eval
from dav2_ros.offline.depth_metrics import evaluate_frame, mean_metrics, DepthMetrics

GT_TOPIC = "/camera/depth/image_raw"
PRED_TOPIC = "/camera/color/depth/image"


def test_metrics_by_hand() -> None:
    gt = np.array([[1.0, 2.0], [4.0, 0.0]], dtype=np.float32)  # 0 = no ground truth
    pred = np.array([[1.5, 2.0], [2.0, 7.0]], dtype=np.float32)
    result = evaluate_frame(pred, gt)
    assert result.valid_pixels == 3 and result.total_pixels == 4
    # |1.5-1|/1 = 0.5, 0, |2-4|/4 = 0.5 -> mean 1/3; squared errors 0.25, 0, 4 -> sqrt(4.25/3)
    assert result.unaligned.abs_rel == pytest.approx(1 / 3)
    assert result.unaligned.rmse == pytest.approx(math.sqrt(4.25 / 3))
    assert result.unaligned.delta1 == pytest.approx(1 / 3)  # ratios 1.5, 1, 2 -> only 1 < 1.25
    assert result.scale == pytest.approx(2.0 / 2.0)  # median(gt)=2, median(pred)=2


def test_invalid_pixels_are_ignored() -> None:
    gt = np.array([3.0, np.nan, 2.0, -1.0, 5.0], dtype=np.float32)
    pred = np.array([3.0, 1.0, np.nan, 1.0, np.inf], dtype=np.float32)
    result = evaluate_frame(pred, gt)
    assert result.valid_pixels == 1
    assert (result.unaligned.abs_rel, result.unaligned.rmse, result.unaligned.delta1) == (0.0, 0.0, 1.0)


def test_depth_range_limits_the_ground_truth() -> None:
    gt = np.array([0.5, 2.0, 30.0], dtype=np.float32)
    result = evaluate_frame(gt * 2, gt, min_depth=1.0, max_depth=20.0)
    assert result.valid_pixels == 1


def test_scaled_prediction_is_exact_after_median_alignment() -> None:
    rng = np.random.default_rng(3)
    gt = rng.uniform(0.5, 8.0, size=(40, 50)).astype(np.float32)
    result = evaluate_frame(gt * 2.0, gt)
    assert result.unaligned.abs_rel == pytest.approx(1.0)
    assert result.unaligned.delta1 == 0.0
    assert result.scale == pytest.approx(0.5)
    assert result.aligned.abs_rel == pytest.approx(0.0, abs=1e-6)
    assert result.aligned.delta1 == 1.0


def test_non_positive_prediction_cannot_be_aligned() -> None:
    gt = np.ones((4, 4), dtype=np.float32)
    result = evaluate_frame(np.zeros_like(gt), gt)
    assert math.isnan(result.scale) and math.isnan(result.aligned.abs_rel)
    assert result.unaligned.abs_rel == pytest.approx(1.0)
    assert result.unaligned.delta1 == 0.0


def test_mean_skips_frames_without_a_value() -> None:
    mean = mean_metrics([DepthMetrics(0.2, 1.0, 0.5), DepthMetrics.nan(), DepthMetrics(0.4, 3.0, 1.0)])
    assert (mean.abs_rel, mean.rmse, mean.delta1) == pytest.approx((0.3, 2.0, 0.75))


def _prediction_bag(bags_dir: pathlib.Path, path: pathlib.Path, factor: float, stamp_shift_ns: int = 0) -> pathlib.Path:
    """The TUM bag plus a 32FC1 'prediction' = factor x its ground truth (NaN where GT is missing)."""
    messages = read_bag(bags_dir / "tum_rgbd")
    gt = next(m for m in messages if m.topic == GT_TOPIC)
    depth = depth_msg_to_array(gt.msg) * np.float32(factor)
    image_cls = TYPESTORE.types["sensor_msgs/msg/Image"]
    pred = image_cls(header=gt.msg.header, height=gt.msg.height, width=gt.msg.width, encoding="32FC1",
                     is_bigendian=0, step=4 * gt.msg.width, data=depth.astype("<f4").view(np.uint8).reshape(-1))
    pred = with_stamp(pred, gt.msg.header.stamp.sec * 10**9 + gt.msg.header.stamp.nanosec + stamp_shift_ns)
    return write_bag(path, [*messages, BagMessage(PRED_TOPIC, gt.msgtype, gt.timestamp, pred)])


def test_ground_truth_as_prediction_scores_perfectly(bags_dir: pathlib.Path, tmp_path: pathlib.Path,
                                                     capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "metrics.json"
    code = depth_eval.main([str(bags_dir / "tum_rgbd"), "--pred-topic", GT_TOPIC, "--gt-topic", GT_TOPIC,
                            "--json", str(out)])
    assert code == 0
    results = json.loads(out.read_text())
    assert results["frames"] == 1
    assert results["unaligned"] == {"abs_rel": 0.0, "rmse": 0.0, "delta1": 1.0}
    assert results["median_aligned"] == {"abs_rel": 0.0, "rmse": 0.0, "delta1": 1.0}
    # 81 % of the Kinect frame has depth (test/data/README.md)
    assert results["valid_pixels"] / results["total_pixels"] == pytest.approx(0.81, abs=0.01)
    printed = capsys.readouterr().out
    assert "median-scale" in printed and "AbsRel" in printed and "delta<1.25" in printed


def test_doubled_prediction_found_automatically(bags_dir: pathlib.Path, tmp_path: pathlib.Path) -> None:
    bag = _prediction_bag(bags_dir, tmp_path / "pred", factor=2.0)
    out = tmp_path / "metrics.json"
    assert depth_eval.main([str(bag), "--json", str(out)]) == 0
    results = json.loads(out.read_text())
    assert results["prediction"]["topic"] == PRED_TOPIC
    assert results["ground_truth"]["topic"] == GT_TOPIC
    assert results["unaligned"]["abs_rel"] == pytest.approx(1.0)
    assert results["unaligned"]["delta1"] == 0.0
    assert results["median_aligned"]["abs_rel"] == pytest.approx(0.0, abs=1e-6)
    assert results["median_aligned"]["delta1"] == 1.0
    assert results["per_frame"][0]["scale"] == pytest.approx(0.5)


def test_prediction_in_a_second_bag(bags_dir: pathlib.Path, tmp_path: pathlib.Path) -> None:
    pred_only = write_bag(tmp_path / "pred_only",
                          read_bag(_prediction_bag(bags_dir, tmp_path / "pred", 3.0), topics=[PRED_TOPIC]))
    out = tmp_path / "metrics.json"
    assert depth_eval.main([str(bags_dir / "tum_rgbd"), "--pred-bag", str(pred_only), "--json", str(out)]) == 0
    assert json.loads(out.read_text())["unaligned"]["abs_rel"] == pytest.approx(2.0)


def test_stamps_further_apart_than_max_dt_do_not_pair(bags_dir: pathlib.Path, tmp_path: pathlib.Path,
                                                      capsys: pytest.CaptureFixture) -> None:
    bag = _prediction_bag(bags_dir, tmp_path / "pred", factor=1.0, stamp_shift_ns=50_000_000)
    assert depth_eval.main([str(bag)]) == 1
    assert "within 0.02 s (1 unmatched" in capsys.readouterr().err
    assert depth_eval.main([str(bag), "--max-dt", "0.1"]) == 0


def test_bag_without_prediction_says_how_to_make_one(bags_dir: pathlib.Path, capsys: pytest.CaptureFixture) -> None:
    assert depth_eval.main([str(bags_dir / "tum_rgbd")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("depth_eval: error: no prediction topics") and "bag_to_depth" in err
    assert "Traceback" not in err


def test_on_bag_to_depth_output(bags_dir: pathlib.Path, tmp_path: pathlib.Path) -> None:
    """The documented workflow: bag_to_depth --copy-input, then depth_eval on its output (stand-in weights:
    the numbers are meaningless, but they must be finite and the alignment scale positive)."""
    empty = tmp_path / "no_weights"
    empty.mkdir()
    output = tmp_path / "pred"
    assert bag_to_depth.main([str(bags_dir / "tum_rgbd"), "-o", str(output), "--copy-input", "--no-progress",
                              *offline_args(standin_params(empty))]) == 0
    out = tmp_path / "metrics.json"
    assert depth_eval.main([str(output), "--json", str(out)]) == 0
    results = json.loads(out.read_text())
    assert (results["prediction"]["topic"], results["ground_truth"]["topic"]) == (PRED_TOPIC, GT_TOPIC)
    assert results["frames"] == 1 and results["unmatched_predictions"] == 0
    for alignment in ("unaligned", "median_aligned"):
        assert all(math.isfinite(value) for value in results[alignment].values())
        assert 0.0 <= results[alignment]["delta1"] <= 1.0
    assert results["per_frame"][0]["scale"] > 0
    assert 0 < results["valid_pixels"] <= 0.81 * results["total_pixels"] + 1  # GT covers 81 %; minus NaN predictions
