"""Parity with the official Depth Anything V2 outputs (fixtures made by the official code on stand-in weights)."""

from __future__ import annotations

import pathlib

import numpy as np
import pytest

from dav2_ros.engines.base import EngineOptions
from dav2_ros.engines.estimator import DepthEstimator
from estimator_fixtures import cached_estimator
from parity_cases import BUNDLED, SHARED, load_case
from project_paths import PARITY_DIR, SHARED_CASES_DIR

FIXTURE_DIR = PARITY_DIR

EXACT_TOLERANCE = 1e-4  # max|ours - ref| <= this * max|ref|
FAST_FP32_TOLERANCE = 0.01  # mean|ours - ref| / mean|ref|
BF16_TOLERANCE = 0.02
# bf16 is emulated (about 10x slower than fp32) on CPUs without AVX512-BF16/AMX: checked on the cheapest case only;
# benchmarks/bench_model.py --accuracy measures every case.
BF16_CASE = FIXTURE_DIR / "tum_vits_308.npz"


def estimator_for(case: dict, preprocess: str, precision: str, backend: str = "torch") -> DepthEstimator:
    """A CPU estimator with the stand-in weights for this case's encoder and head (cached across tests)."""
    metric = case["max_depth"] > 0
    key = (case["encoder"], metric, case["max_depth"], preprocess, precision, backend)
    return cached_estimator(key, lambda: DepthEstimator.random(
        encoder=case["encoder"], model_type="metric" if metric else "relative",
        max_depth=case["max_depth"] if metric else 20.0, device="cpu", precision=precision,
        preprocess=preprocess, seed=0, backend=backend,
        # one compiled shape kept per engine: each case has its own (a compiled vits at 518: ~150 MB of RAM)
        engine_options=EngineOptions(max_shapes=1)))


def case_params(skip_vitb: bool = False) -> list:
    """Bundled fixtures always; the shared cases when ../shared is present (vitb optionally skipped)."""
    params = [pytest.param(p, id=f"bundled-{p.stem}") for p in BUNDLED]
    if SHARED:
        slow = pytest.mark.skip(reason="vitb at 518 takes ~10 s on 2 cores: run once, in the exact test; "
                                       "preprocessing is encoder-independent (bench_model.py --accuracy covers it)")
        params += [pytest.param(p, id=f"shared-{p.stem}", marks=[slow] if skip_vitb and "vitb" in p.stem else [])
                   for p in SHARED]
    else:
        params.append(pytest.param(None, id="shared-cases", marks=pytest.mark.skip(
            reason=f"{SHARED_CASES_DIR} is absent on this machine; only the bundled fixtures are checked")))
    return params


def mean_relative_error(depth: np.ndarray, ref: np.ndarray) -> float:
    """mean|depth - ref| / mean|ref| (robust where the relative head's output is near zero)."""
    return float(np.abs(depth - ref).mean() / np.abs(ref).mean())


def test_bundled_fixtures_present() -> None:
    assert {p.name for p in BUNDLED} >= {"tum_small_vits_518.npz", "tum_metric20_vits_518.npz", "tum_vits_308.npz"}


@pytest.mark.parametrize("path", case_params())
def test_exact_fp32_matches_official(path: pathlib.Path) -> None:
    case = load_case(path)
    est = estimator_for(case, "exact", "fp32")
    depth = est.infer(case["image_bgr"], case["input_size"], color_order="bgr")
    ref = case["depth"]
    assert depth.dtype == np.float32 and depth.shape == ref.shape
    err = float(np.abs(depth - ref).max())
    assert err <= EXACT_TOLERANCE * float(np.abs(ref).max()), f"max abs diff {err:.3g} vs max {np.abs(ref).max():.3g}"


def test_rgb_input_equals_bgr_input() -> None:
    case = load_case(FIXTURE_DIR / "tum_vits_308.npz")
    est = estimator_for(case, "exact", "fp32")
    from_bgr = est.infer(case["image_bgr"], case["input_size"], color_order="bgr")
    from_rgb = est.infer(np.ascontiguousarray(case["image_bgr"][..., ::-1]), case["input_size"], color_order="rgb")
    np.testing.assert_array_equal(from_bgr, from_rgb)


@pytest.mark.parametrize("path", case_params(skip_vitb=True))
def test_fast_fp32_close_to_official(path: pathlib.Path) -> None:
    case = load_case(path)
    depth = estimator_for(case, "fast", "fp32").infer(case["image_bgr"], case["input_size"], color_order="bgr")
    assert depth.shape == case["depth"].shape and depth.dtype == np.float32
    error = mean_relative_error(depth, case["depth"])
    assert error < FAST_FP32_TOLERANCE, f"fast fp32 mean relative error {error:.3%}"


# Every engine of the registry but the reference, at each precision it runs on the CPU: (backend, precision,
# "max" = max|ours - ref| <= tol * max|ref|, or "mean" = mean relative error <= tol). The reference (torch fp32
# exact) is test_exact_fp32_matches_official above.
ENGINE_MODES = [
    ("openvino", "fp32", "max", 1e-3),
    ("openvino", "bf16", "mean", 0.02),
    ("openvino", "int8", "mean", 0.02),
]


def engine_params() -> list:
    """(mode, case) pairs; reduced precisions but on one case are `slow` (benchmarks/accuracy_modes.py measures
    them all, docs/performance.md has the table)."""
    from dav2_ros.engines.registry import missing_requirement

    params = []
    for backend, precision, kind, tolerance in ENGINE_MODES:
        missing = missing_requirement(backend, precision)
        marks = [pytest.mark.skip(reason=f"backend {backend} {precision} is not installed here ({missing})")] \
            if missing else []
        for case in case_params():
            case_marks = list(case.marks)
            # Reduced precisions: one bundled case in the default run (each is a conversion and a compile), all
            # seven with -m slow.
            if precision != "fp32" and case.id != "bundled-tum_vits_308":
                case_marks.append(pytest.mark.slow)
            params.append(pytest.param((backend, precision, kind, tolerance), *case.values,
                                       id=f"{backend}-{precision}-{case.id}", marks=marks + case_marks))
    return params


@pytest.mark.parametrize(("mode", "path"), engine_params())
def test_engine_matches_official(mode: tuple, path: pathlib.Path) -> None:
    backend, precision, kind, tolerance = mode
    case = load_case(path)
    est = estimator_for(case, "exact", precision, backend=backend)
    assert (est.backend, est.precision) == (backend, precision)
    depth = est.infer(case["image_bgr"], case["input_size"], color_order="bgr")
    ref = case["depth"]
    assert depth.dtype == np.float32 and depth.shape == ref.shape
    worst = float(np.abs(depth - ref).max()) / float(np.abs(ref).max())
    if kind == "max":
        assert worst <= tolerance, f"{backend} {precision}: max abs diff {worst:.3g} x max|ref|"
    else:
        error = mean_relative_error(depth, ref)
        assert error <= tolerance, \
            f"{backend} {precision}: mean relative error {error:.3%} (max {worst:.3g} x max|ref|)"


def test_bf16_close_to_official() -> None:
    case = load_case(BF16_CASE)
    est = estimator_for(case, "fast", "bf16")
    assert est.precision == "bf16"
    depth = est.infer(case["image_bgr"], case["input_size"], color_order="bgr")
    assert depth.dtype == np.float32
    error = mean_relative_error(depth, case["depth"])
    assert 0 < error < BF16_TOLERANCE, f"bf16 mean relative error {error:.3%}"
