#!/usr/bin/env python3
"""Accuracy of every inference mode on the parity fixtures: the error against the official implementation's output
(the fixture) and against this project's exact-fp32 mode, on the stand-in weights the fixtures were made with.

    PYTHONPATH=. python benchmarks/accuracy_modes.py [--modes exact-fp32 fast-fp32 fast-int8 ...] [--bf16]

Metrics per case and mode: mean|d - ref| / mean|ref| ("mean rel"), max|d - ref| (meters for metric cases) and
max|d - ref| / max|ref|. fast-bf16 only with --bf16 (emulated on CPUs without AVX512-BF16/AMX: ~10x slower).
Caveat: stand-in (random) weights, not the released checkpoints -- real weights have larger activation outliers,
which is what int8 is sensitive to; re-run with real weights where they exist (see docs/performance.md).
Writes benchmarks/results/accuracy_modes.json.
"""

from __future__ import annotations

import argparse
import os
import json
import pathlib
import sys

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import modes  # noqa: E402

# $DAV2_SHARED_DIR: the project's shared folder where it is not beside the checkout (a git worktree).
CASE_DIRS = [ROOT / "test" / "fixtures" / "parity",
             pathlib.Path(os.environ.get("DAV2_SHARED_DIR") or ROOT.parent / "shared") / "reference" / "cases"]


def cases(pattern: str = "*") -> list[pathlib.Path]:
    """Every fixture matching `pattern` once (bundled first, then the shared ones not bundled)."""
    seen, out = set(), []
    for folder in CASE_DIRS:
        for path in sorted(folder.glob(f"{pattern}.npz")):
            if path.name not in seen:
                seen.add(path.name)
                out.append(path)
    return out


def errors(depth: np.ndarray, ref: np.ndarray) -> dict[str, float]:
    """Mean relative, max absolute and max-relative-to-range error of `depth` against `ref`."""
    diff = np.abs(depth.astype(np.float64) - ref)
    return {"mean_rel": float(diff.mean() / np.abs(ref).mean()), "max_abs": float(diff.max()),
            "max_abs_over_max_ref": float(diff.max() / np.abs(ref).max())}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    default_modes = [m for m in modes.MODES if m not in ("fast-bf16", "exact-bf16")]
    parser.add_argument("--modes", nargs="+", default=default_modes, choices=list(modes.MODES))
    parser.add_argument("--bf16", action="store_true", help="add fast-bf16 (slow without native bf16)")
    parser.add_argument("--cases", default="*", help="glob of fixture names, e.g. 'tum_vits_308'")
    parser.add_argument("--out", type=pathlib.Path, default=ROOT / "benchmarks" / "results" / "accuracy_modes.json")
    args = parser.parse_args()
    run_modes = list(args.modes) + (["fast-bf16"] if args.bf16 and "fast-bf16" not in args.modes else [])
    if "exact-fp32" not in run_modes:
        run_modes.insert(0, "exact-fp32")

    rows = []
    built: dict[tuple, object] = {}
    print("| case | mode | vs official: mean rel | max abs | max/max ref | vs exact-fp32: mean rel | max abs |\n|"
          + "---|" * 7)
    for path in cases(args.cases):
        with np.load(path) as z:
            image, ref = z["image_bgr"], z["depth"].astype(np.float64)
            encoder, input_size, max_depth = str(z["encoder"]), int(z["input_size"]), float(z["max_depth"])
        metric = max_depth > 0
        exact = None
        for mode in run_modes:
            if mode == "transformers-fp32" and not metric:
                continue  # the adapter builds the metric head only
            key = (mode, encoder, metric, max_depth)
            if key not in built:
                if mode == "transformers-fp32":
                    built[key] = modes.build_estimator(mode, encoder, max_depth=max_depth)
                else:
                    from dav2_ros.engines.estimator import DepthEstimator

                    backend, preprocess, precision = modes.ESTIMATOR_MODES[mode]
                    built[key] = DepthEstimator.random(
                        encoder=encoder, model_type="metric" if metric else "relative",
                        max_depth=max_depth if metric else 20.0, device="cpu", precision=precision,
                        preprocess=preprocess, backend=backend)
            depth = built[key].infer(image, input_size, "bgr")
            if mode == "exact-fp32":
                exact = depth
            row = {"case": path.stem, "encoder": encoder, "input_size": input_size, "metric": metric, "mode": mode,
                   "vs_official": errors(depth, ref), "vs_exact": errors(depth, exact.astype(np.float64))}
            rows.append(row)
            o, e = row["vs_official"], row["vs_exact"]
            print(f"| {path.stem} | {mode} | {o['mean_rel']:.2e} | {o['max_abs']:.3g} | {o['max_abs_over_max_ref']:.2e}"
                  f" | {e['mean_rel']:.2e} | {e['max_abs']:.3g} |", flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"rows": rows}, indent=2))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
