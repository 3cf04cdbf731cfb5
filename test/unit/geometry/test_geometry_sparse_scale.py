"""The sparse-scale fits (dav2_ros.geometry.sparse_scale, re-exported by depth_filters): exact recovery, robustness
to gross outliers on the real TUM RGB-D ground truth (issue 13's alignment check), the scale-only fit of metric
models, refusals, and the smoother's blend / reset / hold."""

from __future__ import annotations

import numpy as np
import pytest

from dav2_ros.geometry.depth_filters import fit_inverse_depth
from dav2_ros.geometry.sparse_scale import (FitSmoother, SparseFit, fit_depth_scale, robust_inverse_depth_fit,
                                            sparse_pairs)
from dav2_ros.offline.sparse_scenarios import (RELATIVE_A, RELATIVE_B, abs_rel_all, depth_from_fit, scenarios,
                                               synthetic_relative)


@pytest.fixture(scope="module")
def tum_gt(bags_dir) -> np.ndarray:
    """The real Kinect depth of the bundled TUM RGB-D frame, meters, NaN where invalid."""
    from rosbags.highlevel import AnyReader

    from dav2_ros.conversions.image_codec import depth_msg_to_array

    with AnyReader([bags_dir / "tum_rgbd"]) as reader:
        [connection] = [c for c in reader.connections if c.topic == "/camera/depth/image_raw"]
        _, _, raw = next(reader.messages(connections=[connection]))
        msg = reader.deserialize(raw, connection.msgtype)
    assert msg.encoding == "16UC1"
    return depth_msg_to_array(msg)


def test_exact_affine_data_give_the_exact_fit(tum_gt):
    relative = synthetic_relative(tum_gt, noise=0.0, rng=np.random.default_rng(1))
    scale, shift = fit_inverse_depth(relative, tum_gt)
    # relative = A / d + B  =>  1 / d = relative / A - B / A
    assert scale == pytest.approx(1.0 / RELATIVE_A, rel=1e-5)
    assert shift == pytest.approx(-RELATIVE_B / RELATIVE_A, rel=1e-4)


@pytest.mark.parametrize("which", [0, 1], ids=["500_random_pixels", "16_lidar_rows"])
def test_alignment_on_real_gt_with_outliers_is_within_3_percent(tum_gt, which):
    scenario = scenarios(tum_gt, seed=0)[which]
    assert scenario.outliers.sum() >= 0.09 * np.isfinite(scenario.sparse).sum()
    scale, shift = fit_inverse_depth(scenario.relative, scenario.sparse)
    abs_rel, finite = abs_rel_all(depth_from_fit(scenario.relative, scale, shift), tum_gt)
    assert abs_rel <= 0.03, (scenario.name, abs_rel)
    assert finite > 0.999
    # Plain least squares on the same points is far off: the outliers matter, the robust fit rejects them.
    values, depths = sparse_pairs(scenario.relative, scenario.sparse)
    design = np.stack([values, np.ones_like(values)], axis=1)
    plain = np.linalg.lstsq(design, 1.0 / depths, rcond=None)[0]
    plain_abs_rel, _ = abs_rel_all(depth_from_fit(scenario.relative, *plain), tum_gt)
    assert plain_abs_rel > 2 * abs_rel


def test_detailed_fit_counts_points_and_inliers(tum_gt):
    scenario = scenarios(tum_gt, seed=3)[0]
    values, depths = sparse_pairs(scenario.relative, scenario.sparse)
    fit = robust_inverse_depth_fit(values, depths)
    assert fit.points == values.size == 500
    planted = int(scenario.outliers.sum())
    # Every clean point (2 % noise) is an inlier at the 10 % threshold; of the outliers at most the few that
    # landed within 10 % of the truth by chance.
    assert 500 - planted <= fit.inliers <= 500 - planted + 10
    assert 0.01 < fit.residual < 0.04


def test_the_same_input_gives_the_same_fit(tum_gt):
    scenario = scenarios(tum_gt, seed=5)[1]
    assert fit_inverse_depth(scenario.relative, scenario.sparse) == fit_inverse_depth(scenario.relative,
                                                                                      scenario.sparse)


@pytest.mark.parametrize("sparse_kind", ["all_nan", "zeros", "negative", "too_few"])
def test_too_few_usable_points_raise_value_error(sparse_kind):
    relative = np.random.default_rng(0).uniform(0.5, 2.0, (48, 64)).astype(np.float32)
    sparse = np.full((48, 64), np.nan, np.float32)
    if sparse_kind == "zeros":
        sparse[:] = 0.0
    elif sparse_kind == "negative":
        sparse[:] = -2.0
    elif sparse_kind == "too_few":
        sparse[0, :5] = 3.0
    with pytest.raises(ValueError, match="usable sparse point"):
        fit_inverse_depth(relative, sparse)


def test_other_refusals():
    relative = np.linspace(0.5, 2.0, 48 * 64, dtype=np.float32).reshape(48, 64)
    with pytest.raises(ValueError, match="registered"):
        fit_inverse_depth(relative, np.ones((24, 32), np.float32))
    with pytest.raises(ValueError, match="same output value"):
        fit_inverse_depth(np.ones((48, 64), np.float32), 1.0 / relative)
    with pytest.raises(ValueError, match="scale > 0"):  # larger output = farther: not inverse depth
        fit_inverse_depth(relative, relative + 1.0)


def test_scale_only_fit_of_a_metric_model(tum_gt):
    rng = np.random.default_rng(2)
    predicted = tum_gt / 1.25 * (1.0 + 0.02 * rng.standard_normal(tum_gt.shape))  # 25 % short, 2 % noise
    sparse = scenarios(tum_gt, seed=2)[1].sparse
    fit = fit_depth_scale(predicted, sparse)
    assert fit.kind == "depth_scale" and fit.shift == 0.0
    assert fit.scale == pytest.approx(1.25, rel=0.01)
    abs_rel, _ = abs_rel_all(predicted * fit.scale, tum_gt)
    assert abs_rel <= 0.03


def _fit(scale: float, shift: float = 0.0) -> SparseFit:
    return SparseFit(scale, shift, 100, 100, 0.01)


def test_smoother_blends_agreeing_fits_and_replaces_on_a_real_change():
    smoother = FitSmoother(smoothing=0.5, hold_s=1.0, agreement=0.05)
    values = np.linspace(0.5, 2.0, 50)
    assert smoother.update(_fit(1.0, 0.1), 0.0, values).scale == 1.0  # the first fit as it is
    blended = smoother.update(_fit(1.04, 0.1), 0.1, values)  # 4 % apart: blended
    assert blended.scale == pytest.approx(1.02)
    jumped = smoother.update(_fit(1.5, 0.1), 0.2, values)  # ~45 % apart: a real change, no lag
    assert jumped.scale == 1.5 and jumped.shift == 0.1


def test_smoother_holds_the_last_fit_then_gives_up():
    smoother = FitSmoother(smoothing=0.3, hold_s=1.0)
    assert smoother.held(5.0) == (None, None)
    smoother.update(_fit(2.0), 10.0)
    fit, age = smoother.held(10.6)
    assert fit is not None and fit.scale == 2.0 and age == pytest.approx(0.6)
    fit, age = smoother.held(11.5)
    assert fit is None and age == pytest.approx(1.5)
    smoother.reset()
    assert smoother.held(10.1) == (None, None)
