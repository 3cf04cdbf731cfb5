"""The ONNX Runtime engine (dav2_ros/engines/onnxruntime_engine.py) behind `DepthEstimator(backend="onnxruntime")`.

On the CPU provider: parity with the official outputs on every parity case (bundled, and ../shared's when
present) at the cases' own sizes, exported into a cache folder on first use; the same FrameProcessor outputs as
the torch engine (depth, cloud; a batch of two frames through the dynamic batch); the cache reused by a second
engine and keyed by what changes the network; a file written by `dav2_export` run as given, and refused when it
holds other weights; the providers setting and its one-line refusals. The CUDA and TensorRT providers need a GPU
and onnxruntime-gpu: their tests are written against ONNX Runtime's documentation and skip here with the reason.
"""

from __future__ import annotations

import pathlib

import numpy as np
import pytest
import torch

from dav2_ros.engines import export as ex
from dav2_ros.engines import onnxruntime_engine as oe
from dav2_ros.engines.base import BackendUnavailable, EngineOptions
from dav2_ros.geometry.intrinsics import Intrinsics
from dav2_ros.engines.estimator import DepthEstimator
from dav2_ros.pipeline.processing import FrameProcessor, FrameRequest, ProcessingSettings
from estimator_fixtures import cached_estimator
from parity_cases import BUNDLED, SHARED, load_case
from project_paths import PARITY_DIR

ort = pytest.importorskip("onnxruntime", reason="onnxruntime is not installed (pip install '.[onnx]')")

BUNDLED_DIR = PARITY_DIR
PARITY_TOLERANCE = 1e-4  # max|ours - official| <= this * max|official|, as torch fp32
HAS_CUDA = torch.cuda.is_available()
GPU_PROVIDERS = {oe.TENSORRT, oe.CUDA} & set(ort.get_available_providers())


def _case_params() -> list:
    params = [pytest.param(p, id=f"bundled-{p.stem}") for p in BUNDLED]
    params += [pytest.param(p, id=f"shared-{p.stem}") for p in SHARED]
    if not SHARED:
        params.append(pytest.param(None, id="shared-cases", marks=pytest.mark.skip(
            reason="../shared/reference/cases is absent on this machine; only the bundled fixtures are checked")))
    return params


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory) -> pathlib.Path:
    """One engine cache for the module: each network size is exported once."""
    return tmp_path_factory.mktemp("engine_cache")


def _estimator(cache: pathlib.Path, encoder: str, model_type: str, max_depth: float = 20.0,
               backend: str = "onnxruntime", **options) -> DepthEstimator:
    key = (str(cache), encoder, model_type, max_depth, backend, tuple(sorted(options.items())))
    return cached_estimator(key, lambda: DepthEstimator.random(
        encoder=encoder, model_type=model_type, max_depth=max_depth, device="cpu", precision="fp32",
        preprocess="exact", backend=backend, engine_options=EngineOptions(cache_dir=cache, **options)))


@pytest.mark.parametrize("path", _case_params())
def test_matches_the_official_outputs(path: pathlib.Path, cache_dir: pathlib.Path) -> None:
    case = load_case(path)
    metric = case["max_depth"] > 0
    est = _estimator(cache_dir, case["encoder"], "metric" if metric else "relative",
                     case["max_depth"] if metric else 20.0)
    assert est.backend == "onnxruntime" and est.precision == "fp32"
    depth = est.infer(case["image_bgr"], case["input_size"], color_order="bgr")
    ref = case["depth"]
    assert depth.dtype == np.float32 and depth.shape == ref.shape
    error = float(np.abs(depth - ref).max())
    assert error <= PARITY_TOLERANCE * float(np.abs(ref).max()), \
        f"max abs diff {error:.3g} vs max {np.abs(ref).max():.3g}"


def test_describe_names_providers_and_cache(cache_dir: pathlib.Path) -> None:
    est = _estimator(cache_dir, "vits", "metric")
    line = est.describe_engine()
    assert f"ONNX Runtime {ort.__version__}" in line and "CPUExecutionProvider" in line and "fp32" in line
    assert str(cache_dir / "onnxruntime" / "models") in line


def test_frame_processor_outputs_equal_the_torch_engine(cache_dir: pathlib.Path) -> None:
    """Same FrameProcessor, same outputs: depth (NaN mask included) and cloud, also for two frames in one batch."""
    image = ex.bundled_frame()[:, :, ::-1].copy()  # rgb8 as a camera driver sends it
    camera = Intrinsics(fx=525.0, fy=525.0, cx=319.5, cy=239.5, width=640, height=480)
    settings = ProcessingSettings(input_size=98, min_depth=0.1, max_valid_depth=19.0)
    ours = FrameProcessor(_estimator(cache_dir, "vits", "metric"), settings)
    reference = FrameProcessor(_estimator(cache_dir, "vits", "metric", backend="torch"), settings)
    mirrored = image[:, ::-1].copy()
    requests = [FrameRequest(image, "rgb", camera), FrameRequest(mirrored, "rgb", camera)]
    for result, expected in zip(ours.process_batch(requests), reference.process_batch(requests)):
        assert result.timings["batch_size"] == 2.0
        assert result.depth.shape == (480, 640) and result.xyz.shape == (480, 640, 3)
        np.testing.assert_array_equal(np.isnan(result.depth), np.isnan(expected.depth))
        np.testing.assert_allclose(result.depth, expected.depth, rtol=0, atol=1e-4 * 20.0, equal_nan=True)
        np.testing.assert_allclose(result.xyz, expected.xyz, rtol=0, atol=1e-4 * 20.0, equal_nan=True)
    single = ours.process(image, "rgb", camera)
    np.testing.assert_allclose(single.depth, ours.process_batch(requests)[0].depth, rtol=0, atol=1e-5, equal_nan=True)


def test_the_cache_is_reused_and_keyed_by_the_network(tmp_path: pathlib.Path) -> None:
    image = ex.bundled_frame()
    first = _estimator(tmp_path, "vits", "metric", 20.0)
    first.infer(image, 70, "bgr")
    models = sorted((tmp_path / "onnxruntime" / "models").iterdir())
    assert [p.name.endswith("_70x98.onnx") for p in models] == [True]
    assert models[0].name.startswith("vits_metric_20m_")
    stamp = models[0].stat().st_mtime_ns
    again = DepthEstimator.random(encoder="vits", model_type="metric", max_depth=20.0, device="cpu", precision="fp32",
                                  preprocess="exact", backend="onnxruntime",
                                  engine_options=EngineOptions(cache_dir=tmp_path))
    np.testing.assert_array_equal(again.infer(image, 70, "bgr"), first.infer(image, 70, "bgr"))
    assert sorted((tmp_path / "onnxruntime" / "models").iterdir()) == models
    assert models[0].stat().st_mtime_ns == stamp  # read, not exported again
    other_scale = _estimator(tmp_path, "vits", "metric", 80.0)  # max_depth is in the graph: another file
    other_scale.infer(image, 70, "bgr")
    names = sorted(p.name for p in (tmp_path / "onnxruntime" / "models").iterdir())
    assert len(names) == 2 and any(n.startswith("vits_metric_80m_") for n in names)
    assert not [p for p in (tmp_path / "onnxruntime" / "models").iterdir() if p.name.startswith(".")]


def test_a_given_dav2_export_file_is_run_and_checked(tmp_path: pathlib.Path) -> None:
    network = _estimator(tmp_path / "ref", "vits", "relative", backend="torch").model
    metadata = ex.model_metadata("vits", "relative", 20.0, 70, 98, ex.weights_fingerprint(network), "stand-in")
    batch = ex.check_batch(ex.bundled_frame(), 70, 98)
    given = ex.export_checked(network, "onnx", 70, 98, tmp_path, "given_70x98", batch, metadata=metadata).path
    est = DepthEstimator.random(encoder="vits", model_type="relative", device="cpu", precision="fp32",
                                preprocess="exact", backend="onnxruntime",
                                engine_options=EngineOptions(cache_dir=tmp_path / "cache", onnx_model=given))
    depth = est.infer(ex.bundled_frame(), 70, "bgr")
    assert str(given) in est.describe_engine()
    assert not (tmp_path / "cache" / "onnxruntime" / "models").exists()  # the given file served; nothing exported
    torch_depth = _estimator(tmp_path / "ref", "vits", "relative", backend="torch").infer(ex.bundled_frame(), 70, "bgr")
    assert float(np.abs(depth - torch_depth).max()) <= PARITY_TOLERANCE * float(np.abs(torch_depth).max())
    with pytest.raises(BackendUnavailable, match=r"does not fit the loaded network: its weights is '[0-9a-f]{16}'"):
        DepthEstimator.random(encoder="vits", model_type="relative", device="cpu", precision="fp32", seed=5,
                              backend="onnxruntime", engine_options=EngineOptions(cache_dir=tmp_path, onnx_model=given))
    with pytest.raises(BackendUnavailable, match="its model_type is 'relative', the network's 'metric'"):
        DepthEstimator.random(encoder="vits", model_type="metric", device="cpu", precision="fp32",
                              backend="onnxruntime", engine_options=EngineOptions(cache_dir=tmp_path, onnx_model=given))
    with pytest.raises(BackendUnavailable, match="not found .write one with dav2_export"):
        DepthEstimator.random(encoder="vits", model_type="relative", device="cpu", precision="fp32",
                              backend="onnxruntime",
                              engine_options=EngineOptions(cache_dir=tmp_path, onnx_model=tmp_path / "nope.onnx"))


def test_providers_default_per_device_and_refusals() -> None:
    everything = [oe.TENSORRT, oe.CUDA, oe.CPU]
    assert oe.resolve_providers((), "cpu", everything) == [oe.CPU]
    assert oe.resolve_providers((), "cuda", everything) == [oe.TENSORRT, oe.CUDA, oe.CPU]
    assert oe.resolve_providers((), "cuda", [oe.CUDA, oe.CPU]) == [oe.CUDA, oe.CPU]  # no TensorRT in this build
    assert oe.resolve_providers(("cuda", "CPUExecutionProvider"), "cuda", everything) == [oe.CUDA, oe.CPU]
    assert oe.resolve_precision("auto", [oe.TENSORRT, oe.CUDA, oe.CPU]) == "fp16"
    assert oe.resolve_precision("auto", [oe.CUDA, oe.CPU]) == "fp32"
    with pytest.raises(BackendUnavailable, match="pip install onnxruntime-gpu"):
        oe.resolve_providers((), "cuda", [oe.CPU])
    with pytest.raises(BackendUnavailable, match="execution provider tensorrt is not in this onnxruntime .*"
                                                 "pip install onnxruntime-gpu"):
        oe.resolve_providers(("tensorrt",), "cuda", [oe.CUDA, oe.CPU])
    with pytest.raises(BackendUnavailable, match="unknown onnxruntime execution provider 'vulkan'"):
        oe.resolve_providers(("vulkan",), "cpu", [oe.CPU])
    with pytest.raises(BackendUnavailable, match="needs device cuda, the device is cpu"):
        oe.resolve_providers(("cuda",), "cpu", everything)
    with pytest.raises(BackendUnavailable, match="fp16 through the TensorRT execution provider only"):
        oe.resolve_precision("fp16", [oe.CPU])


def test_fp16_on_the_cpu_is_refused_at_start() -> None:
    with pytest.raises(BackendUnavailable, match="fp16 through the TensorRT execution provider only"):
        DepthEstimator.random(encoder="vits", model_type="metric", device="cpu", precision="fp16",
                              backend="onnxruntime")


def test_not_installed_names_the_pip_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(__import__("sys").modules, "onnxruntime", None)  # what `import onnxruntime` sees uninstalled
    with pytest.raises(BackendUnavailable) as refused:
        oe.create_engine(_estimator(pathlib.Path("/nonexistent"), "vits", "metric", backend="torch").model,
                         torch.device("cpu"), "auto", EngineOptions())
    assert str(refused.value) == f"backend onnxruntime is not installed: {oe.PIP_COMMAND}"
    assert "\n" not in str(refused.value)


# ----- GPU providers (ONNX Runtime docs: execution-providers/TensorRT-ExecutionProvider, CUDA-ExecutionProvider) ---
GPU_SKIP = pytest.mark.skipif(not (HAS_CUDA and GPU_PROVIDERS), reason="needs a CUDA device and onnxruntime-gpu (this "
                              "machine has no GPU / a CPU-only onnxruntime); the providers are configured from "
                              "ONNX Runtime's documented options")


@pytest.mark.gpu
@GPU_SKIP
@pytest.mark.parametrize("providers,precision,tolerance", [
    (("cuda",), "fp32", 1e-3),  # max error x max|ref|
    (("tensorrt", "cuda"), "fp16", 0.02),  # mean relative error
])
def test_gpu_providers_match_the_official_output(providers, precision, tolerance, tmp_path: pathlib.Path) -> None:
    if oe.TENSORRT in [oe.PROVIDER_ALIASES[p] for p in providers] and oe.TENSORRT not in GPU_PROVIDERS:
        pytest.skip("this onnxruntime-gpu build has no TensorRT execution provider")
    case = load_case(BUNDLED_DIR / "tum_metric20_vits_518.npz")
    est = DepthEstimator.random(encoder="vits", model_type="metric", max_depth=20.0, device="cuda", precision=precision,
                                preprocess="exact", backend="onnxruntime",
                                engine_options=EngineOptions(cache_dir=tmp_path, onnx_providers=providers))
    assert est.precision == precision
    depth = est.infer(case["image_bgr"], 518, "bgr")
    ref = case["depth"]
    if precision == "fp32":
        assert float(np.abs(depth - ref).max()) <= tolerance * float(np.abs(ref).max())
    else:
        assert float(np.abs(depth - ref).mean() / np.abs(ref).mean()) <= tolerance
        assert any((tmp_path / "onnxruntime" / "tensorrt").iterdir())  # the engine cache a restart reads


# ----- the node's settings and the offline tool -------------------------------------------------------------------
def test_providers_parameter() -> None:
    from dav2_ros.pipeline.settings import ONNX_PROVIDER_ALIASES, NodeSettings, SettingsError

    assert set(ONNX_PROVIDER_ALIASES) == set(oe.PROVIDER_ALIASES)
    settings = NodeSettings.from_params({"backend": "onnxruntime", "onnxruntime.providers": ["tensorrt", "cuda", "cpu"],
                                         "onnxruntime.model": "/models/vits_518x686.onnx"})
    assert settings.onnxruntime_providers == ("tensorrt", "cuda", "cpu")
    assert settings.onnxruntime_model == "/models/vits_518x686.onnx"
    assert NodeSettings().onnxruntime_providers == () and NodeSettings().onnxruntime_model == ""
    with pytest.raises(SettingsError, match="'vulkan' is not an execution provider"):
        NodeSettings.from_params({"onnxruntime.providers": ["vulkan"]})


def test_bag_to_depth_on_onnxruntime_gives_the_torch_messages(tmp_path: pathlib.Path, bags_dir: pathlib.Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """The offline tool (the node's settings, builders and FrameProcessor) on a real bag: backend onnxruntime
    writes the same topics and message layouts as backend torch, with the same depth and cloud."""
    from bags import read_bag
    from standin import offline_args, standin_params
    from dav2_ros.offline import bag_to_depth

    monkeypatch.setenv("DAV2_ENGINE_CACHE", str(tmp_path / "engine_cache"))
    (tmp_path / "no_weights").mkdir()
    messages = {}
    for backend in ("torch", "onnxruntime"):
        params = dict(standin_params(tmp_path / "no_weights"), backend=backend)
        params["onnxruntime.providers"] = "[cpu]"
        out = tmp_path / backend
        assert bag_to_depth.main([str(bags_dir / "tum_rgbd"), "-o", str(out), "--no-progress",
                                  *offline_args(params)]) == 0
        messages[backend] = {m.topic: m.msg for m in read_bag(out)}
    assert any((tmp_path / "engine_cache" / "onnxruntime" / "models").glob("*_98x126.onnx"))
    ours, theirs = messages["onnxruntime"], messages["torch"]
    assert sorted(ours) == sorted(theirs) and "/camera/color/points" in ours
    depth = {k: np.frombuffer(m["/camera/color/depth/image"].data, np.float32) for k, m in messages.items()}
    assert ours["/camera/color/depth/image"].encoding == theirs["/camera/color/depth/image"].encoding == "32FC1"
    np.testing.assert_array_equal(np.isnan(depth["onnxruntime"]), np.isnan(depth["torch"]))
    np.testing.assert_allclose(depth["onnxruntime"], depth["torch"], rtol=0, atol=1e-4 * 20.0, equal_nan=True)
    cloud, reference = ours["/camera/color/points"], theirs["/camera/color/points"]
    assert (cloud.height, cloud.width, cloud.point_step, cloud.row_step, cloud.is_dense) == \
        (reference.height, reference.width, reference.point_step, reference.row_step, reference.is_dense)
    assert [(f.name, f.offset, f.datatype) for f in cloud.fields] == \
        [(f.name, f.offset, f.datatype) for f in reference.fields]
    np.testing.assert_allclose(np.frombuffer(cloud.data, np.float32), np.frombuffer(reference.data, np.float32),
                               rtol=0, atol=1e-4 * 20.0, equal_nan=True)


# ----- the real node --------------------------------------------------------------------------------------------
# reliable input: raw 1280x720 frames (2.7 MB) over best effort can be lost in DDS fragmentation
NODE_DEMO = {"allow_random_weights": True, "input_size": 98, "device": "cpu", "precision": "fp32",
             "qos.input_reliability": "reliable",
             "backend": "onnxruntime", "num_threads": 1}
NODE_STARTUP_S = 300.0  # the warm-up frame's size is exported (and checked) during the start on a loaded CPU


@pytest.mark.ros
def test_node_runs_backend_onnxruntime(bags_dir: pathlib.Path, tmp_path: pathlib.Path) -> None:
    """The node process with backend onnxruntime: the start-up log names the engine, the warm-up size is exported
    into the cache, and a camera frame of another size gets its depth (exported on that frame) with the input's
    header and the node's layout."""
    import copy

    from bags import read_topics
    from node_harness import DdsClient, NodeProcess, same_header
    from sensor_msgs.msg import Image

    (tmp_path / "weights").mkdir()
    # 1280x720 -> 98x168
    image: Image = read_topics(bags_dir / "fiducial_board_611", as_rclpy=True)["/camera/image_raw"][0]
    namespace = "/dav2_onnxruntime"
    env = {"DAV2_WEIGHTS_DIR": str(tmp_path / "weights"), "DAV2_ENGINE_CACHE": str(tmp_path / "cache")}
    with NodeProcess(NODE_DEMO, namespace=namespace, env=env) as node, DdsClient("dav2_onnxruntime_client") as client:
        node.wait_for_output("listening on", NODE_STARTUP_S)
        assert "ONNX Runtime" in node.wait_for_output(r"engine: ", 5.0)
        models = tmp_path / "cache" / "onnxruntime" / "models"
        assert [p.name.rsplit("_", 1)[1] for p in models.glob("*.onnx")] == ["98x126.onnx"]  # the 640x480 warm-up
        publisher = client.publisher(Image, f"{namespace}/image")
        depth = client.collect(Image, f"{namespace}/depth/image")
        client.wait_for_subscribers(publisher)
        frame = copy.deepcopy(image)
        publisher.publish(frame)
        message = depth.wait_for(lambda m: same_header(m, frame), NODE_STARTUP_S,
                                 on_wait=lambda: publisher.publish(frame))
        assert (message.encoding, message.height, message.width) == ("32FC1", 720, 1280)
        height, width = ex.network_shape(1280, 720, 98)
        assert sorted(p.name.rsplit("_", 1)[1] for p in models.glob("*.onnx")) == ["98x126.onnx",
                                                                                   f"{height}x{width}.onnx"]
    assert "Traceback" not in node.output


@pytest.mark.ros
def test_node_refuses_a_gpu_provider_without_cuda_in_one_line(tmp_path: pathlib.Path) -> None:
    from node_harness import NodeProcess

    (tmp_path / "weights").mkdir()
    params = dict(NODE_DEMO, **{"onnxruntime.providers": ["cuda"]})
    node = NodeProcess(params, env={"DAV2_WEIGHTS_DIR": str(tmp_path / "weights"),
                                    "DAV2_ENGINE_CACHE": str(tmp_path / "cache")}).start()
    code = node.wait(NODE_STARTUP_S)
    assert code == 1, node.output
    assert "Traceback" not in node.output
    assert "execution provider cuda" in node.output, node.output


def test_a_size_that_cannot_be_exported_fails_alone(tmp_path: pathlib.Path) -> None:
    """A network input size the export refuses raises EngineShapeError (the node rejects those frames with the
    reason and a counter), is not tried again, and other sizes keep working."""
    from dav2_ros.engines.base import EngineShapeError

    network = _estimator(tmp_path, "vits", "metric", backend="torch").model
    engine = oe.create_engine(network, torch.device("cpu"), "auto", EngineOptions(cache_dir=tmp_path))
    bad = np.zeros((1, 3, 100, 140), np.float32)  # not multiples of 14
    for _ in range(2):
        with pytest.raises(EngineShapeError, match="not a network input size"):
            engine.run(bad)
    good = ex.check_batch(ex.bundled_frame(), 70, 98)
    assert engine.run(good).shape == (1, 70, 98) and engine.shapes == [(70, 98)]


def test_export_without_its_packages_names_the_pip_command(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(ex.ExportError) as refused:
        ex.require("onnx")
    assert str(refused.value).startswith("onnx export needs the Python package 'onnxruntime', which is not installed: "
                                         "pip install onnx onnxruntime")
    monkeypatch.setitem(sys.modules, "openvino", None)
    with pytest.raises(ex.ExportError, match="pip install openvino"):
        ex.require("openvino")
