#!/usr/bin/env python3
"""Export and ONNX Runtime figures: how long `dav2_export`'s two formats take per encoder/head, how close each
file runs to the torch network (on the bundled real frame), and the network's speed in ONNX Runtime (CPU
provider) against torch fp32 on the same 518x686 input, interleaved round by round in one process.

Stand-in weights (the parity fixtures' scheme); 640x480 frame at input 518 -> network input 518x686. Prints a
table and writes benchmarks/results/bench_export.json with the CPU, its flags and the load average.
Not a test: run it by hand, e.g. `PYTHONPATH=. python benchmarks/bench_export.py --rounds 7`.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import statistics
import sys
import tempfile
import time

# As the node does (dav2_ros.pipeline.builders.prepare_cpu_runtime): idle OpenMP threads sleep, they do not spin.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import torch  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dav2_ros.engines import export as ex  # noqa: E402
from dav2_ros.model.config import ModelConfig  # noqa: E402
from dav2_ros.model.depth_anything_v2 import DepthAnythingV2  # noqa: E402
from dav2_ros.weights.standin_weights import reference_state_dict  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"


def cpu_facts() -> dict:
    """CPU model name, the flags that matter for inference, cores, load average."""
    name, flags = "unknown", set()
    with open("/proc/cpuinfo", encoding="utf-8") as f:
        for line in f:
            if line.startswith("model name") and name == "unknown":
                name = line.split(":", 1)[1].strip()
            if line.startswith("flags") and not flags:
                flags = set(line.split(":", 1)[1].split())
    wanted = ["avx2", "avx512f", "avx512_bf16", "avx512_vnni", "avx_vnni", "amx_bf16"]
    return {"cpu": name, "flags": [f for f in wanted if f in flags], "cores": os.cpu_count(),
            "loadavg": open("/proc/loadavg", encoding="utf-8").read().split()[:3]}


def network(encoder: str, model_type: str) -> DepthAnythingV2:
    with torch.device("meta"):
        shapes = {k: tuple(v.shape) for k, v in DepthAnythingV2(ModelConfig(encoder, model_type)).state_dict().items()}
    weights = {k: torch.from_numpy(v) for k, v in reference_state_dict(shapes).items()}
    return ex.build_network(weights, encoder=encoder, model_type=model_type, max_depth=20.0, source="stand-in")


def parity() -> int:
    """Every parity case through the onnxruntime engine (CPU provider, fp32, exact preprocessing, a fresh engine
    cache): max and mean error against the official output."""
    from dav2_ros.engines.base import EngineOptions
    from dav2_ros.engines.estimator import DepthEstimator

    folders = [ROOT / "test" / "fixtures" / "parity", ROOT.parent / "shared" / "reference" / "cases",
               ROOT.parents[1] / "shared" / "reference" / "cases"]
    cases: dict[str, pathlib.Path] = {}
    for folder in folders:
        for path in sorted(folder.glob("*.npz")):
            cases.setdefault(path.stem, path)
    print(f"CPU {cpu_facts()['cpu']}, load {' '.join(cpu_facts()['loadavg'])}; {len(cases)} cases")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        estimators: dict[tuple, DepthEstimator] = {}
        for name, path in cases.items():
            with np.load(path) as z:
                image, ref = z["image_bgr"], z["depth"]
                encoder, input_size, max_depth = str(z["encoder"]), int(z["input_size"]), float(z["max_depth"])
            key = (encoder, max_depth)
            if key not in estimators:
                estimators[key] = DepthEstimator.random(
                    encoder=encoder, model_type="metric" if max_depth > 0 else "relative",
                    max_depth=max_depth if max_depth > 0 else 20.0, device="cpu", precision="fp32",
                    preprocess="exact", backend="onnxruntime",
                    engine_options=EngineOptions(cache_dir=pathlib.Path(tmp)))
            depth = estimators[key].infer(image, input_size, "bgr")
            max_error = float(np.abs(depth - ref).max() / np.abs(ref).max())
            mean_error = float(np.abs(depth - ref).mean() / np.abs(ref).mean())
            rows.append(dict(case=name, max_error=max_error, mean_error=mean_error))
            print(f"| {name} | max {max_error:.2e} x max|ref| | mean {mean_error:.2e} |")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "bench_export_parity.json").write_text(json.dumps(dict(machine=cpu_facts(), cases=rows), indent=2))
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7, help="interleaved speed rounds (default 7)")
    parser.add_argument("--encoders", nargs="+", default=["vits", "vitb"])
    parser.add_argument("--no-openvino", action="store_true", help="export ONNX only")
    parser.add_argument("--speed-only", action="store_true", help="only the vits relative ONNX export and the speed")
    parser.add_argument("--parity", action="store_true",
                        help="only the parity cases (test/fixtures/parity, ../shared/reference/cases) through "
                             "DepthEstimator(backend='onnxruntime'), against the official outputs")
    args = parser.parse_args()
    import onnxruntime as ort

    if args.parity:
        return parity()
    height, width = ex.network_shape(640, 480, 518)
    batch = ex.check_batch(ex.bundled_frame(), height, width)
    facts = dict(cpu_facts(), torch=torch.__version__, onnxruntime=ort.__version__,
                 torch_threads=torch.get_num_threads(), omp_wait_policy=os.environ.get("OMP_WAIT_POLICY"))
    print(f"CPU {facts['cpu']} ({', '.join(facts['flags'])}), {facts['cores']} cores, "
          f"load {' '.join(facts['loadavg'])}; "
          f"torch {facts['torch']} ({facts['torch_threads']} threads), onnxruntime {facts['onnxruntime']}")
    exports = []
    formats = ["onnx"] if args.no_openvino else ["onnx", "openvino"]
    onnx_file = None
    with tempfile.TemporaryDirectory() as tmp:
        for encoder in (["vits"] if args.speed_only else args.encoders):
            for model_type in (("relative",) if args.speed_only else ("relative", "metric")):
                net = network(encoder, model_type)
                reference = ex.torch_output(net, batch)
                for fmt in (["onnx"] if args.speed_only else formats):
                    check = ex.export_checked(net, fmt, height, width, pathlib.Path(tmp), f"{encoder}_{model_type}",
                                              batch, reference=reference)
                    row = dict(encoder=encoder, model_type=model_type, format=fmt, export_s=check.export_s,
                               first_run_s=check.check_s, max_error=check.max_error, mean_error=check.mean_error)
                    exports.append(row)
                    print(f"| {encoder} {model_type} | {fmt} | export {check.export_s:.1f} s | first run "
                          f"{check.check_s:.1f} s | max err {check.max_error:.2e} | mean err {check.mean_error:.2e} |")
                    if encoder == "vits" and model_type == "relative" and fmt == "onnx":
                        onnx_file = pathlib.Path(tmp) / "vits_relative_kept.onnx"
                        os.link(check.path, onnx_file)
        speed = {}
        if onnx_file is not None:
            from dav2_ros.engines.estimator import DepthEstimator

            torch_net = DepthEstimator.random(encoder="vits", model_type="relative", device="cpu", precision="fp32",
                                              preprocess="exact").model  # the torch engine's fp32 module
            session = ort.InferenceSession(str(onnx_file), providers=["CPUExecutionProvider"])
            x = torch.from_numpy(batch)
            runs = {"torch fp32": lambda: torch_net(x),
                    "onnxruntime CPU fp32": lambda: session.run(None, {"image": batch})}
            times: dict[str, list[float]] = {name: [] for name in runs}
            cpu: dict[str, list[float]] = {name: [] for name in runs}
            with torch.inference_mode():
                for fn in runs.values():  # warm-up
                    fn()
                for _ in range(args.rounds):
                    for name, fn in runs.items():
                        start, start_cpu = time.perf_counter(), time.process_time()
                        fn()
                        times[name].append(time.perf_counter() - start)
                        cpu[name].append(time.process_time() - start_cpu)
            base = statistics.median(times["torch fp32"])
            base_cpu = statistics.median(cpu["torch fp32"])
            for name, values in times.items():
                median, median_cpu = statistics.median(values), statistics.median(cpu[name])
                speed[name] = dict(median_s=median, min_s=min(values), max_s=max(values), vs_torch=base / median,
                                   median_cpu_s=median_cpu, cpu_vs_torch=base_cpu / median_cpu)
                print(f"| vits 518x686 network | {name} | median {median:.3f} s (min {min(values):.3f}, max "
                      f"{max(values):.3f}) | {base / median:.2f}x torch fp32 | CPU time {median_cpu:.2f} s "
                      f"({base_cpu / median_cpu:.2f}x) |")
    facts["loadavg_after"] = open("/proc/loadavg", encoding="utf-8").read().split()[:3]
    print(f"load after: {' '.join(facts['loadavg_after'])}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "bench_export.json").write_text(json.dumps(dict(machine=facts, network_input=[height, width],
                                                               exports=exports, speed=speed), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
