"""FrameProcessor: depth validity, relative conversion, intrinsics scaling, cloud, preview and timings.

Most tests use a small stand-in estimator (a test double for the model, not for ROS) whose output is
a known function of the image, so every output can be checked exactly; one runs the real
DepthEstimator with random weights on the bundled camera frame.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from dav2_ros.geometry.backproject import backproject
from dav2_ros.geometry.intrinsics import Intrinsics, IntrinsicsError
from dav2_ros.conversions.pointcloud import pointcloud_fields
from dav2_ros.pipeline.processing import FrameProcessor, ProcessingSettings, cloud_colors
from estimator_spy import HostOnly


class ScriptedEstimator(HostOnly):
    """Returns a known function of the image's first channel: metric 0.05 + 25 * c/255 m, relative 10 * c/255."""

    def __init__(self, model_type: str = "metric", max_depth: float = 20.0) -> None:
        self.config = SimpleNamespace(encoder="vits", model_type=model_type, max_depth=max_depth)
        self.last_timings = {"preprocess": 0.0, "inference": 0.0, "postprocess": 0.0}
        self.calls: list[tuple[int, str]] = []
        self.last_output: np.ndarray | None = None

    def expected(self, image: np.ndarray) -> np.ndarray:
        channel = image[..., 0].astype(np.float32) / np.float32(255.0)
        if self.config.model_type == "metric":
            return np.float32(0.05) + np.float32(25.0) * channel
        return np.float32(10.0) * channel

    def infer(self, image: np.ndarray, input_size: int = 518, color_order: str = "rgb") -> np.ndarray:
        self.calls.append((input_size, color_order))
        self.last_timings = {"preprocess": 0.001, "inference": 0.002, "postprocess": 0.003}
        self.last_output = self.expected(image)
        return self.last_output


@pytest.fixture
def image() -> np.ndarray:
    """24x32: values 0..255 in channel 0 so metric depths span 0.05..25.05 m."""
    v, u = np.mgrid[0:24, 0:32]
    first = ((v * 32 + u) * 255 // (24 * 32 - 1)).astype(np.uint8)
    return np.dstack([first, np.full_like(first, 7), np.full_like(first, 9)])


CAMERA = Intrinsics(fx=64.0, fy=64.0, cx=31.5, cy=23.5, width=64, height=48)  # twice the image size


def test_metric_depth_is_the_model_output_with_nan_outside_the_validity_range(image):
    estimator = ScriptedEstimator()
    settings = ProcessingSettings(input_size=98, min_depth=0.5, max_valid_depth=15.0)
    result = FrameProcessor(estimator, settings).process(image, "bgr", CAMERA)
    raw = estimator.expected(image)
    valid = (raw >= 0.5) & (raw <= 15.0)
    assert result.depth.shape == (24, 32) and result.depth.dtype == np.float32
    assert 0 < valid.sum() < valid.size
    np.testing.assert_array_equal(np.isnan(result.depth), ~valid)
    np.testing.assert_array_equal(result.depth[valid], raw[valid])
    assert result.relative is None
    assert estimator.calls == [(98, "bgr")]
    np.testing.assert_array_equal(estimator.last_output, raw)  # infer's array is not modified


def test_intrinsics_are_scaled_to_the_depth_image_and_used_for_the_cloud(image):
    result = FrameProcessor(ScriptedEstimator(), ProcessingSettings()).process(image, "rgb", CAMERA)
    assert result.depth_intrinsics == Intrinsics(32.0, 32.0, 15.5, 11.5, 32, 24)
    assert result.xyz.shape == (24, 32, 3)
    np.testing.assert_array_equal(result.xyz, backproject(result.depth, result.depth_intrinsics))
    # One pixel by hand: u=20, v=10.
    z = result.depth[10, 20]
    np.testing.assert_allclose(result.xyz[10, 20], [(20 - 15.5) * z / 32.0, (10 - 11.5) * z / 32.0, z], rtol=1e-6)
    assert np.isnan(result.xyz[np.isnan(result.depth)]).all()


def test_cloud_stride_and_switches(image):
    strided = FrameProcessor(ScriptedEstimator(), ProcessingSettings(cloud_stride=5)).process(image, "rgb", CAMERA)
    assert strided.xyz.shape == (5, 7, 3)
    np.testing.assert_array_equal(strided.xyz, backproject(strided.depth, strided.depth_intrinsics)[::5, ::5])
    no_cloud_settings = ProcessingSettings(publish_cloud=False)
    no_cloud = FrameProcessor(ScriptedEstimator(), no_cloud_settings).process(image, "rgb", CAMERA)
    assert no_cloud.xyz is None and no_cloud.depth_intrinsics is not None
    no_info = FrameProcessor(ScriptedEstimator(), ProcessingSettings()).process(image, "rgb", None)
    assert no_info.xyz is None and no_info.depth_intrinsics is None and no_info.depth is not None


def test_cloud_colors_are_the_kept_pixels_in_bgr(image):
    rgb = np.ascontiguousarray(image)
    colors = cloud_colors(rgb, "rgb", 5)
    np.testing.assert_array_equal(colors, rgb[::5, ::5, ::-1])
    np.testing.assert_array_equal(cloud_colors(rgb, "bgr", 5), rgb[::5, ::5])
    result = FrameProcessor(ScriptedEstimator(), ProcessingSettings(cloud_stride=5)).process(rgb, "rgb", CAMERA)
    fields = pointcloud_fields(result.xyz, colors)  # a strided view is accepted as is
    red = np.frombuffer(fields["data"], np.uint8).reshape(5, 7, 32)[..., 18]
    np.testing.assert_array_equal(red, rgb[::5, ::5, 0])


def test_the_result_carries_the_clouds_colors_when_asked(image):
    """cloud_rgb: the result has the kept pixels' BGR colors beside its points, so outputs need only the result;
    without points (no intrinsics, cloud off) or without cloud_rgb there are none."""
    rgb = np.ascontiguousarray(image)
    processor = FrameProcessor(ScriptedEstimator(), ProcessingSettings(cloud_stride=5))
    colored = processor.process(rgb, "rgb", CAMERA, cloud_rgb=True)
    np.testing.assert_array_equal(colored.colors, rgb[::5, ::5, ::-1])
    assert colored.colors.shape[:2] == colored.xyz.shape[:2]
    assert processor.process(rgb, "rgb", CAMERA).colors is None
    assert processor.process(rgb, "rgb", None, cloud_rgb=True).colors is None


def test_max_valid_depth_defaults_to_the_heads_max_depth(image):
    result = FrameProcessor(ScriptedEstimator(max_depth=20.0), ProcessingSettings(min_depth=0.0)).process(image, "rgb")
    raw = ScriptedEstimator().expected(image)
    np.testing.assert_array_equal(np.isnan(result.depth), raw > 20.0)


def test_aspect_mismatch_is_raised_before_inference(image):
    estimator = ScriptedEstimator()
    wide = Intrinsics(64.0, 64.0, 31.5, 17.5, 64, 36)
    with pytest.raises(IntrinsicsError) as err:
        FrameProcessor(estimator, ProcessingSettings()).process(image, "rgb", wide)
    assert err.value.reason == "aspect_mismatch"
    assert estimator.calls == []


def test_relative_model_without_conversion_publishes_only_relative(image):
    estimator = ScriptedEstimator("relative")
    processor = FrameProcessor(estimator, ProcessingSettings())
    assert not processor.publishes_metric_depth
    result = processor.process(image, "rgb", CAMERA, colorize=True)
    assert result.depth is None and result.xyz is None
    np.testing.assert_array_equal(result.relative, estimator.expected(image))
    assert result.colored.shape == (24, 32, 3)
    assert result.depth_intrinsics is not None  # known, but nothing metric to pair it with


def test_relative_conversion_is_inverse_of_affine_inverse_depth(image):
    estimator = ScriptedEstimator("relative")
    settings = ProcessingSettings(relative_scale=0.5, relative_shift=-1.0, min_depth=0.0, max_valid_depth=100.0)
    processor = FrameProcessor(estimator, settings)
    assert processor.publishes_metric_depth
    result = processor.process(image, "rgb", CAMERA)
    relative = estimator.expected(image)
    np.testing.assert_array_equal(result.relative, relative)
    # By hand: r = 10 -> 1 / (0.5 * 10 - 1) = 0.25 m; r = 2 -> NaN (inverse depth 0); r < 2 -> NaN (negative).
    inverse = 0.5 * relative.astype(np.float64) - 1.0
    expected = np.where(inverse > 0, 1.0 / np.where(inverse > 0, inverse, 1.0), np.nan)
    expected[expected > 100.0] = np.nan
    np.testing.assert_allclose(result.depth, expected, rtol=1e-6, equal_nan=True)
    assert result.depth[-1, -1] == pytest.approx(0.25)
    assert np.isnan(result.depth[0, 0])
    np.testing.assert_array_equal(result.xyz, backproject(result.depth, result.depth_intrinsics))


def test_colorize_follows_the_argument_then_the_setting(image):
    processor = FrameProcessor(ScriptedEstimator(), ProcessingSettings(colorize=True))
    assert processor.process(image, "rgb").colored.shape == (24, 32, 3)
    assert processor.process(image, "rgb", colorize=False).colored is None
    off = FrameProcessor(ScriptedEstimator(), ProcessingSettings(min_depth=0.5, max_valid_depth=15.0))
    assert off.process(image, "rgb").colored is None
    colored = off.process(image, "rgb", colorize=True).colored
    invalid = np.isnan(off.process(image, "rgb").depth)
    assert not colored[invalid].any() and colored[~invalid].any(axis=-1).all()


def test_timings_cover_every_stage(image):
    result = FrameProcessor(ScriptedEstimator(), ProcessingSettings()).process(image, "rgb", CAMERA, colorize=True)
    assert set(result.timings) == {"preprocess", "inference", "postprocess", "depth", "temporal", "cloud", "colorize",
                                   "total", "batch_size"}
    assert result.timings["inference"] == 0.002 and result.timings["batch_size"] == 1.0
    assert all(value >= 0.0 for value in result.timings.values())
    assert result.timings["total"] >= result.timings["cloud"] + result.timings["colorize"]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"input_size": 10},
        {"input_size": 98.0},
        {"min_depth": -1.0},
        {"min_depth": 5.0, "max_valid_depth": 5.0},
        {"cloud_stride": 0},
        {"relative_scale": -2.0},
        {"relative_scale": float("nan")},
        {"relative_shift": float("inf")},
        {"colormap": "jet"},
    ],
)
def test_invalid_settings_are_refused_with_a_reason(kwargs):
    with pytest.raises(ValueError, match="invalid processing settings"):
        ProcessingSettings(**kwargs)


def test_settings_aliases():
    assert ProcessingSettings(max_depth_valid=7.0).max_valid_depth == 7.0
    assert ProcessingSettings(relative_scale=0.0).relative_scale is None


def test_real_estimator_on_the_bundled_camera_frame(bags_dir):
    estimator_module = pytest.importorskip("dav2_ros.engines.estimator",
                                           reason="torch / the model package not available")
    typesys = pytest.importorskip("rosbags.typesys", reason="rosbags is needed to read the test bag")
    highlevel = pytest.importorskip("rosbags.highlevel", reason="rosbags is needed to read the test bag")
    from dav2_ros.conversions.image_codec import image_msg_to_array

    store = typesys.get_typestore(typesys.Stores.ROS2_HUMBLE)
    with highlevel.AnyReader([bags_dir / "fiducial_board_611"], default_typestore=store) as reader:
        msgs = {c.topic: reader.deserialize(raw, c.msgtype) for c, _, raw in reader.messages()}
    image, order = image_msg_to_array(msgs["/camera/image_raw"])
    camera = Intrinsics.from_camera_info(msgs["/camera/camera_info"])

    estimator = estimator_module.DepthEstimator.random(encoder="vits", model_type="metric", max_depth=20.0,
                                                       device="cpu", precision="fp32")
    settings = ProcessingSettings(input_size=98, min_depth=0.1, max_valid_depth=20.0, cloud_stride=4)
    result = FrameProcessor(estimator, settings).process(image, order, camera, colorize=True)

    assert result.depth.shape == (720, 1280) and result.depth.dtype == np.float32
    finite = result.depth[np.isfinite(result.depth)]
    assert finite.size > 0 and finite.min() >= 0.1 and finite.max() <= 20.0
    assert result.depth_intrinsics == camera  # the image is at the CameraInfo's size
    assert result.xyz.shape == (180, 320, 3)
    np.testing.assert_array_equal(result.xyz, backproject(result.depth, camera, 4))
    assert result.colored.shape == (720, 1280, 3)
    assert result.timings["inference"] > 0.0


# ------------------------------------------------------------------- the Estimator protocol's device path
class DeviceEstimator(ScriptedEstimator):
    """A CUDA estimator of backend torch as the protocol declares it: its device path (a stand-in that gives the
    scripted depth, and the cameras it was given as points) is built by its own `device_frame_path`."""

    def __init__(self, model_type: str = "metric", backend: str = "torch") -> None:
        super().__init__(model_type)
        self.device = SimpleNamespace(type="cuda")
        self.backend = backend
        self.path_options: list[dict] = []
        self.cameras: list = []

    def device_frame_path(self, **options):
        self.path_options.append(options)
        estimator = self

        class Path:
            def run_batch(self, images, input_size, color_order, cameras, stride=1):
                estimator.cameras.append(list(cameras))
                return [SimpleNamespace(depth=estimator.expected(image), xyz=None, valid_pixels=0, flying_pixels=0,
                                        timings={"upload": 0.1, "device": 0.2, "download": 0.3}) for image in images]

        return Path()


def test_the_device_path_is_the_estimators_own(image):
    estimator = DeviceEstimator()
    settings = ProcessingSettings(min_depth=0.2, max_valid_depth=15.0, cloud_stride=2, flying_pixel_threshold=0.05,
                                  flying_pixel_dilation=2)
    processor = FrameProcessor(estimator, settings, cuda_graphs=True, max_geometries=3)  # on_device: CUDA
    assert estimator.path_options == [dict(min_depth=0.2, max_depth=15.0, cuda_graphs=True, max_geometries=3,
                                           points=True, edge_threshold=0.05, edge_dilation=2)]
    result = processor.process(image, "rgb", CAMERA)
    assert estimator.calls == []  # not infer: the device path
    assert estimator.cameras == [[CAMERA.scaled_to(32, 24)]]  # the intrinsics at the image's size, as they are
    assert result.timings["inference"] == 0.2 and result.depth_intrinsics == CAMERA.scaled_to(32, 24)
    np.testing.assert_array_equal(result.depth, estimator.expected(image))


def test_the_device_path_is_for_metric_models_of_backend_torch():
    relative = DeviceEstimator("relative")
    FrameProcessor(relative, ProcessingSettings())
    assert relative.path_options == []  # relative models take the numpy path
    assert FrameProcessor(DeviceEstimator(), ProcessingSettings(), on_device=False)._device_path is None
    for model_type in ("metric", "relative"):
        with pytest.raises(ValueError, match="runs backend torch only, not openvino"):
            FrameProcessor(DeviceEstimator(model_type, backend="openvino"), ProcessingSettings(), on_device=True)


def test_importing_the_frame_path_loads_no_torch():
    """pipeline/ holds estimators but imports no engine runtime: torch loads with the estimator, not before (the
    node names a missing checkpoint before torch loads)."""
    import subprocess
    import sys

    from project_paths import PROJECT_DIR

    modules = ["dav2_ros.pipeline.processing", "dav2_ros.pipeline.builders", "dav2_ros.pipeline.settings"]
    code = ("import importlib, sys\n"
            f"for name in {modules!r}: importlib.import_module(name)\n"
            "print(sorted(m for m in sys.modules if m == 'torch' or m.startswith('dav2_ros.engines.torch')))\n")
    result = subprocess.run([sys.executable, "-c", code], cwd=PROJECT_DIR, capture_output=True, text=True,
                            timeout=120, check=True)
    assert result.stdout.strip() == "[]", result.stdout + result.stderr
