"""geometry.depth_filters: the flying-pixel mask (`edge_mask`) and the temporal filter (`TemporalFilter`), checked on
hand-made depth maps whose answer is known (numpy only)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from dav2_ros.geometry.depth_filters import (DEFAULT_EDGE_DILATION, DEFAULT_EDGE_THRESHOLD, TemporalFilter,
                                             TemporalOptions, edge_mask, remove_flying_pixels)


def step(near: float = 1.0, far: float = 2.0, shape: tuple[int, int] = (20, 30), column: int = 15) -> np.ndarray:
    """Depth `near` left of `column`, `far` from it on."""
    depth = np.full(shape, near, dtype=np.float32)
    depth[:, column:] = far
    return depth


def test_a_step_is_cut_on_both_sides_and_the_rest_kept() -> None:
    keep = edge_mask(step(), threshold=0.1, dilation=0)
    assert keep.dtype == bool and keep.shape == (20, 30)
    assert not keep[:, 14:16].any()  # the two columns that touch the jump
    assert keep[:, :14].all() and keep[:, 16:].all()


@pytest.mark.parametrize("dilation", [1, 2, 3])
def test_dilation_widens_the_cut_by_that_many_pixels(dilation: int) -> None:
    keep = edge_mask(step(), threshold=0.1, dilation=dilation)
    removed_columns = np.flatnonzero(~keep.all(axis=0))
    assert removed_columns.tolist() == list(range(14 - dilation, 16 + dilation))
    assert (~keep[:, 14 - dilation:16 + dilation]).all()


def test_the_threshold_is_the_relative_jump_to_the_nearer_side() -> None:
    # |2.0 - 1.9| / 1.9 = 5.3 %: cut above it, kept below it.
    depth = step(near=1.9, far=2.0)
    assert not edge_mask(depth, threshold=0.05, dilation=0).all()
    assert edge_mask(depth, threshold=0.055, dilation=0).all()


def test_the_mask_is_scale_free() -> None:
    rng = np.random.default_rng(0)
    depth = np.exp(rng.normal(1.0, 0.3, size=(40, 50))).astype(np.float32)
    keep = edge_mask(depth, threshold=0.2)
    for factor in (0.25, 8.0):  # powers of two: the float32 products scale exactly
        np.testing.assert_array_equal(edge_mask(depth * np.float32(factor), threshold=0.2), keep)


def test_invalid_pixels_are_not_kept_and_are_not_jumps() -> None:
    depth = np.full((9, 9), 3.0, dtype=np.float32)
    depth[4, 4] = np.nan
    depth[0, 0] = 0.0
    depth[8, 8] = -1.0
    depth[0, 8] = np.inf
    keep = edge_mask(depth, threshold=0.01, dilation=2)
    invalid = ~np.isfinite(depth) | (depth <= 0)
    assert not keep[invalid].any()
    assert keep[~invalid].all()  # a hole next to a pixel is no discontinuity


def test_a_smooth_slope_below_the_threshold_is_kept() -> None:
    rows = np.linspace(1.0, 1.5, 30, dtype=np.float32)  # < 1.8 % per row: a wall seen at an angle
    depth = np.repeat(rows[:, None], 20, axis=1)
    assert edge_mask(depth, threshold=DEFAULT_EDGE_THRESHOLD).all()


def test_defaults_and_argument_checks() -> None:
    depth = step()
    np.testing.assert_array_equal(edge_mask(depth), edge_mask(depth, DEFAULT_EDGE_THRESHOLD, DEFAULT_EDGE_DILATION))
    for bad in (0.0, -0.1, math.nan):
        with pytest.raises(ValueError, match="threshold"):
            edge_mask(depth, threshold=bad)
    with pytest.raises(ValueError, match="dilation"):
        edge_mask(depth, dilation=-1)
    with pytest.raises(ValueError, match=r"\(H, W\)"):
        edge_mask(np.ones((2, 3, 3), dtype=np.float32))


def test_remove_flying_pixels_counts_what_it_removes() -> None:
    depth = step()
    depth[0, 0] = np.nan
    out, valid, removed = remove_flying_pixels(depth, threshold=0.1, dilation=0)
    assert out is depth
    assert valid == 20 * 30 - 1 and removed == 2 * 20
    assert np.isnan(depth[:, 14:16]).all()


# ------------------------------------------------------------------------------------------------ temporal
def scene(seed: int = 0, shape: tuple[int, int] = (48, 64)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.uniform(1.0, 5.0, size=shape).astype(np.float32)


@pytest.mark.parametrize("mode", ["off", "scale", "ema"])
def test_the_first_frame_passes_unchanged_and_the_input_is_not_modified(mode: str) -> None:
    depth = scene()
    depth[0, :5] = np.nan
    before = depth.copy()
    out = TemporalFilter(mode).update(depth, stamp=0.0)
    assert out.dtype == np.float32 and out is not depth
    np.testing.assert_allclose(out, before, rtol=1e-6, equal_nan=True)
    np.testing.assert_array_equal(depth, before)


def test_unknown_mode_and_bad_options_are_refused() -> None:
    with pytest.raises(ValueError, match="one of off, scale, ema"):
        TemporalFilter("median")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="alpha"):
        TemporalOptions(alpha=0.0)


def test_scale_pulls_a_global_jump_back_towards_the_recent_scale() -> None:
    temporal = TemporalFilter("scale")
    base = scene()
    for k in range(5):
        temporal.update(base, stamp=0.1 * k)
    out = temporal.update(base * np.float32(1.05), stamp=0.5)
    ratio = float(np.median(out / base))
    # pulled back at least as far as the steady-state alpha-beta gain would (0.3 of the step): a still camera's
    # scale is averaged over the frames so far
    assert 1.0 < ratio <= 1.0 + 0.05 * 0.3 + 1e-3
    assert temporal.last_scale == pytest.approx(ratio / 1.05, rel=1e-5)


def test_scale_keeps_nan_and_local_changes() -> None:
    temporal = TemporalFilter("scale")
    base = scene()
    temporal.update(base, stamp=0.0)
    changed = base.copy()
    changed[:10, :10] *= 0.5  # an object appears: a local change, not a global one
    changed[-1, -1] = np.nan
    out = temporal.update(changed, stamp=0.1)
    np.testing.assert_allclose(out, changed, rtol=1e-6, equal_nan=True)


def test_ema_averages_in_inverse_depth_and_resets_pixels_that_jump() -> None:
    temporal = TemporalFilter("ema", TemporalOptions(weight=0.5, reset_ratio=0.15))
    base = np.full((4, 4), 2.0, dtype=np.float32)
    temporal.update(base, stamp=0.0)
    new = np.full((4, 4), 1.0 / 0.55, dtype=np.float32)  # inverse 0.5 -> 0.55: a 10 % change, averaged
    new[0, 0] = 1.0  # inverse 0.5 -> 1.0: a jump, taken as it is
    new[1, 1] = np.nan
    out = temporal.update(new, stamp=0.1)
    assert out[2, 2] == pytest.approx(1.0 / 0.525, rel=1e-6)
    assert out[0, 0] == pytest.approx(1.0, rel=1e-6)
    assert np.isnan(out[1, 1])
    again = np.full((4, 4), 2.0, dtype=np.float32)
    assert temporal.update(again, stamp=0.2)[1, 1] == pytest.approx(2.0)  # no history left: starts over


@pytest.mark.parametrize("mode", ["scale", "ema"])
@pytest.mark.parametrize("change, reason", [
    ({"stamp": 5.0}, "stamp_gap"),
    ({"stamp": -1.0}, "stamp_backwards"),
    ({"source": "other_camera"}, "camera_change"),
    ({"shape": (24, 32)}, "size_change"),
])
def test_it_starts_over_on_a_gap_a_camera_or_a_size_change(mode: str, change: dict, reason: str) -> None:
    temporal = TemporalFilter(mode, TemporalOptions(max_gap_s=0.5))
    base = scene()
    temporal.update(base, stamp=0.0, source="cam")
    temporal.update(base, stamp=0.1, source="cam")
    shape = change.get("shape", base.shape)
    frame = scene(seed=1, shape=shape) if "shape" in change else base * np.float32(1.1)
    out = temporal.update(frame, stamp=change.get("stamp", 0.2), source=change.get("source", "cam"))
    np.testing.assert_allclose(out, frame, rtol=1e-6)  # a fresh start: the frame as it is
    assert temporal.resets == 1 and temporal.last_reset == reason


def test_no_reset_within_the_gap_and_a_manual_reset() -> None:
    temporal = TemporalFilter("scale", TemporalOptions(max_gap_s=0.5))
    base = scene()
    temporal.update(base, stamp=0.0, source="cam")
    out = temporal.update(base * np.float32(1.1), stamp=0.4, source="cam")
    assert temporal.resets == 0 and not np.allclose(out, base * np.float32(1.1))
    temporal.reset("asked")
    assert temporal.resets == 1 and temporal.last_reset == "asked"


def test_a_cut_resets_scale() -> None:
    temporal = TemporalFilter("scale")
    base = scene()
    temporal.update(base, stamp=0.0)
    out = temporal.update(base * np.float32(2.0), stamp=0.1)
    np.testing.assert_allclose(out, base * np.float32(2.0), rtol=1e-6)
    assert temporal.last_reset == "scale_step"
