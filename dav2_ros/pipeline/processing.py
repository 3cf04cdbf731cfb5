"""The ROS-free per-frame pipeline shared by the node and the offline tool: image -> depth, cloud, preview.

``FrameProcessor.process`` runs the estimator on a decoded image, turns its output into metric depth
(NaN outside the validity range), back-projects it with the intrinsics scaled to the depth image,
and colorizes it on request, timing every stage. It builds no messages (see ``conversions``).

Relative models give affine-invariant inverse depth ``r`` (larger = nearer). With a user-given
conversion, metric depth is ``1 / (relative_scale * r + relative_shift)`` -- the affine fit is done
in inverse-depth space, where the model's ambiguity lives -- and pixels whose converted inverse
depth is not positive are invalid (NaN). Without a conversion there is no metric depth and no cloud:
only ``relative``.

Metric depth then goes through the flying-pixel filter (``geometry.depth_filters.edge_mask``, computed on the
depth before the range mask so a jump into an out-of-range background counts; the same on the device path), and
through the frame's camera's ``TemporalFilter`` when the request carries one, before the cloud is made from it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import InitVar, dataclass

import numpy as np

from dav2_ros.errors import InputRejected
from dav2_ros.model.config import ColorOrder, input_size_problem
from dav2_ros.engines.base import EngineShapeError
from dav2_ros.geometry.backproject import backproject
from dav2_ros.geometry.colorize import Colormap, colorize_depth, depth_range_mask, robust_range
from dav2_ros.geometry.depth_filters import TemporalFilter, edge_mask, valid_depth
from dav2_ros.geometry.intrinsics import Intrinsics
from dav2_ros.pipeline.estimator_protocol import DevicePath, Estimator
from dav2_ros.pipeline.frames import Align, FrameOutcome, FrameRequest, FrameResult


#: Longest-to-shortest side ratio that ``FrameProcessor.process`` accepts. The network scales the
#: shorter side up to ``input_size`` and keeps the aspect, so its token count grows with the ratio
#: and attention cost with its square: a 1x300 image takes over a minute on a CPU, a 1x16384 one
#: exhausts memory. No camera comes near 8:1 (a 32:9 ultra-wide is 3.6:1).
MAX_ASPECT_RATIO = 8.0


@dataclass(frozen=True)
class ProcessingSettings:
    """Per-frame processing options (the node's parameters of the same names).

    Attributes:
        input_size: the network's input resolution (shorter side): an integer >= 14 (``input_size_problem``).
        min_depth: depths below this (meters) become NaN.
        max_valid_depth: depths above this become NaN; ``None``: the metric head's ``max_depth``
            (or no upper bound for converted relative depth). Also accepted as ``max_depth_valid=``.
        publish_cloud: compute ``xyz`` (needs intrinsics and metric depth).
        cloud_stride: keep every Nth row and column of the cloud (1 = all).
        colorize: default for ``process(colorize=None)``.
        colormap: ``"turbo"`` or ``"inferno"`` for the preview.
        relative_scale, relative_shift: relative models only; metric inverse depth =
            ``relative_scale * output + relative_shift``. ``relative_scale`` 0 or None: no conversion.
        flying_pixel_threshold: the flying-pixel filter's relative jump (``edge_mask``); 0: off.
        flying_pixel_dilation: its dilation in pixels.
    """

    input_size: int = 518
    min_depth: float = 0.1
    max_valid_depth: float | None = None
    publish_cloud: bool = True
    cloud_stride: int = 1
    colorize: bool = False
    colormap: Colormap = "turbo"
    relative_scale: float | None = None
    relative_shift: float = 0.0
    flying_pixel_threshold: float = 0.0
    flying_pixel_dilation: int = 1
    max_depth_valid: InitVar[float | None] = None

    def __post_init__(self, max_depth_valid: float | None) -> None:
        if max_depth_valid is not None:
            object.__setattr__(self, "max_valid_depth", max_depth_valid)
        if self.relative_scale == 0.0:
            object.__setattr__(self, "relative_scale", None)
        problem = self._problem()
        if problem:
            raise ValueError(f"invalid processing settings: {problem}")

    def _problem(self) -> str | None:
        """Why these settings cannot work, or None."""
        reason = input_size_problem(self.input_size)
        if reason:
            return f"input_size {reason}, got {self.input_size!r}"
        if not (math.isfinite(self.min_depth) and self.min_depth >= 0.0):
            return f"min_depth must be finite and >= 0, got {self.min_depth}"
        if self.max_valid_depth is not None and not self.max_valid_depth > self.min_depth:
            return f"max_valid_depth ({self.max_valid_depth}) must be above min_depth ({self.min_depth})"
        if isinstance(self.cloud_stride, bool) or not isinstance(self.cloud_stride, int) or self.cloud_stride < 1:
            return f"cloud_stride must be an integer >= 1, got {self.cloud_stride!r}"
        if self.colormap not in ("turbo", "inferno"):
            return f"colormap must be 'turbo' or 'inferno', got {self.colormap!r}"
        if self.relative_scale is not None and not (math.isfinite(self.relative_scale) and self.relative_scale > 0):
            return f"relative_scale must be > 0 (larger output = nearer), got {self.relative_scale}"
        if not math.isfinite(self.relative_shift):
            return f"relative_shift must be finite, got {self.relative_shift}"
        if not (math.isfinite(self.flying_pixel_threshold) and self.flying_pixel_threshold >= 0):
            return f"flying_pixel_threshold must be >= 0 (0 = off), got {self.flying_pixel_threshold}"
        if isinstance(self.flying_pixel_dilation, bool) or not isinstance(self.flying_pixel_dilation, int) \
                or self.flying_pixel_dilation < 0:
            return f"flying_pixel_dilation must be an integer >= 0, got {self.flying_pixel_dilation!r}"
        return None


def cloud_colors(image: np.ndarray, color_order: ColorOrder, stride: int = 1) -> np.ndarray:
    """The BGR colors of the cloud's points (``pointcloud_fields``' ``rgb``): the image at the kept pixels.

    A view, no copy: ``pointcloud_fields`` copies the bytes into the message anyway.
    """
    kept = image[::stride, ::stride]
    return kept[..., ::-1] if color_order == "rgb" else kept


def refuse_elongated(width: int, height: int) -> None:
    """InputRejected ``bad_aspect`` for an image more elongated than ``MAX_ASPECT_RATIO``: the network's cost
    grows without bound with the ratio. Checked before inference, and by the node before it looks for the
    camera's intrinsics (such an image is not a CameraInfo problem)."""
    if max(height, width) > MAX_ASPECT_RATIO * min(height, width):
        raise InputRejected(
            "bad_aspect",
            f"image is {width}x{height}, more elongated than {MAX_ASPECT_RATIO:g}:1; the model's cost grows "
            "with the aspect ratio, so such images are refused",
        )


class FrameProcessor:
    """Runs one estimator with fixed ``ProcessingSettings`` on successive frames (one thread at a time).

    Args:
        estimator: a ``DepthEstimator`` (or anything that has what ``Estimator`` declares).
        settings: the per-frame options.
        on_device: run the metric path (preprocess, network, upsample, validity mask, back-projection) on
            the estimator's device with one upload and one download into reused buffers
            (``estimator.device_frame_path``, backend torch only). None (default): on CUDA only. Relative models
            always take the numpy path. With it, ``FrameResult.depth``/``xyz`` are views of buffers that the next
            ``process`` call overwrites: use (or copy) them before that, as the node and the offline tool do.
        cuda_graphs: on the device path, replay the frame's device work as a CUDA graph (CUDA only).
        max_geometries: frame geometries whose device buffers are kept at once (the number of cameras).
    """

    def __init__(self, estimator: Estimator, settings: ProcessingSettings, on_device: bool | None = None,
                 cuda_graphs: bool = False, max_geometries: int = 1) -> None:
        self.estimator = estimator
        self.settings = settings
        self.is_metric_model = estimator.config.model_type == "metric"
        if on_device is None:
            on_device = estimator.device.type == "cuda"
        self._device_path: DevicePath | None = None
        if on_device and estimator.backend != "torch":  # relative models included, though they would not use it
            raise ValueError(f"the on-device frame path runs backend torch only, not {estimator.backend}")
        if on_device and self.is_metric_model:
            max_depth = settings.max_valid_depth or float(estimator.config.max_depth)
            self._device_path = estimator.device_frame_path(min_depth=settings.min_depth, max_depth=max_depth,
                                                            cuda_graphs=cuda_graphs, max_geometries=max_geometries,
                                                            points=settings.publish_cloud,
                                                            edge_threshold=settings.flying_pixel_threshold,
                                                            edge_dilation=settings.flying_pixel_dilation)

    @property
    def publishes_metric_depth(self) -> bool:
        """Metric models always; relative models only with a conversion (``relative_scale``)."""
        return self.is_metric_model or self.settings.relative_scale is not None

    def process(
        self,
        image: np.ndarray,
        color_order: ColorOrder,
        intrinsics: Intrinsics | None = None,
        colorize: bool | None = None,
        align: Align | None = None,
        temporal: TemporalFilter | None = None,
        stamp: float | None = None,
        source: str | None = None,
        cloud_rgb: bool = False,
    ) -> FrameResult:
        """Depth (and cloud, preview) for one HxWx3 uint8 image; the depth has the image's size.

        Args:
            image: the decoded camera image (any strides; not modified).
            color_order: ``"rgb"`` or ``"bgr"``.
            intrinsics: the camera's intrinsics at any resolution of the same aspect ratio (they are
                scaled to the image), or None: no cloud and no ``depth_intrinsics``.
            colorize: compute ``colored``; None uses ``settings.colorize``.
            align: this frame's conversion from a sparse depth fit (``FrameRequest.align``).
            temporal: this camera's temporal filter (updated with the frame's depth before the cloud), or None.
            stamp, source: the frame's stamp (seconds) and camera identity (frame_id) for ``temporal``'s resets.
            cloud_rgb: give the cloud's colors (``FrameResult.colors``) with its points.

        Raises:
            InputRejected: ``bad_aspect``, an image more elongated than ``MAX_ASPECT_RATIO`` (the
                network's cost grows without bound with it).
            IntrinsicsError: the intrinsics cannot be scaled to the image (``aspect_mismatch``).
            Both are raised before inference, so a refused frame costs nothing.
            InputRejected: ``engine_compile_failed``, the engine could not compile the network for this frame's
                input shape (OpenVINO; remembered, so the next frame of that size is refused at once).
        """
        return self.process_request(FrameRequest(image, color_order, intrinsics, colorize, align, temporal, stamp,
                                                 source, cloud_rgb=cloud_rgb))

    def process_request(self, request: FrameRequest) -> FrameResult:
        """``process`` for one ``FrameRequest`` (e.g. a ``Camera``'s): its result, or its refusal raised."""
        outcome = self.process_batch([request])[0]
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    def process_batch(self, requests: Sequence[FrameRequest]) -> list[FrameOutcome]:
        """``process`` for several frames (several cameras): frames of one size and color order go through the
        network as one batch. A refused frame gives its exception in its place and does not stop the others.

        Every frame's timings are those of its batch (what the frame waited for), plus ``batch_size``. Results of
        the device path are views of buffers that the next call overwrites, as with ``process``.
        """
        start = time.perf_counter()
        outcomes: list[FrameOutcome | None] = [None] * len(requests)
        groups: dict[tuple, list[int]] = {}
        scaled: dict[int, Intrinsics | None] = {}
        for i, request in enumerate(requests):
            try:
                scaled[i] = self._check(request)
            except (InputRejected, ValueError) as error:  # IntrinsicsError is a ValueError
                outcomes[i] = error
                continue
            groups.setdefault((request.image.shape[:2], request.color_order), []).append(i)
        for (_, color_order), indices in groups.items():
            group = [requests[i] for i in indices]
            intrinsics = [scaled[i] for i in indices]
            try:
                if self._device_path is not None:
                    results = self._on_device(group, color_order, intrinsics)
                else:
                    results = self._on_host(group, color_order, intrinsics)
            except EngineShapeError as error:  # this frame size cannot be compiled by the engine: these frames only
                refused = InputRejected("engine_compile_failed", f"{error}; frames of this size are refused, "
                                        "others go on (another input_size or frame size may compile)")
                results = [refused] * len(indices)
            for i, result in zip(indices, results):
                outcomes[i] = result
        for request, outcome in zip(requests, outcomes):
            if isinstance(outcome, FrameResult):
                stage = time.perf_counter()
                if request.temporal is not None and outcome.depth is not None:
                    self._stabilize(outcome, request)
                outcome.timings["temporal"] = time.perf_counter() - stage
                stage = time.perf_counter()
                if self.settings.colorize if request.colorize is None else request.colorize:
                    outcome.colored = self._colorize(outcome.depth, outcome.relative)
                outcome.timings["colorize"] = time.perf_counter() - stage
                if request.cloud_rgb and outcome.xyz is not None:
                    outcome.colors = cloud_colors(request.image, request.color_order, self.settings.cloud_stride)
                outcome.timings["total"] = time.perf_counter() - start
        return outcomes  # type: ignore[return-value]

    def _check(self, request: FrameRequest) -> Intrinsics | None:
        """Refuse what the model cannot take before any inference; the intrinsics at the image's size."""
        height, width = request.image.shape[:2]
        refuse_elongated(width, height)
        return request.intrinsics.scaled_to(width, height) if request.intrinsics is not None else None

    def _on_host(self, requests: list[FrameRequest], color_order: ColorOrder,
                 intrinsics: list[Intrinsics | None]) -> list[FrameResult]:
        """Same-size frames: the estimator on the batch, then masking and back-projection with numpy per frame."""
        settings = self.settings
        images = [request.image for request in requests]
        if len(images) == 1:
            outputs = [self.estimator.infer(images[0], input_size=settings.input_size, color_order=color_order)]
        else:
            outputs = self.estimator.infer_batch(images, input_size=settings.input_size, color_order=color_order)
        batch_timings = {key: float(value) for key, value in self.estimator.last_timings.items()}
        results = []
        for output, depth_intrinsics, request in zip(outputs, intrinsics, requests):
            timings = dict(batch_timings, batch_size=float(len(images)))
            stage = time.perf_counter()
            depth, relative, counts = self._depth_from(output, request.align)
            timings["depth"] = time.perf_counter() - stage

            xyz = None
            stage = time.perf_counter()
            if settings.publish_cloud and request.cloud and depth is not None and depth_intrinsics is not None:
                xyz = backproject(depth, depth_intrinsics, settings.cloud_stride)
            timings["cloud"] = time.perf_counter() - stage
            results.append(FrameResult(depth, relative, depth_intrinsics, xyz, None, timings, *counts))
        return results

    def _on_device(self, requests: list[FrameRequest], color_order: ColorOrder,
                   intrinsics: list[Intrinsics | None]) -> list[FrameResult]:
        """Same-size metric frames on the estimator's device, as one batch. Timings: "preprocess" = the upload,
        "inference" = all device work (preprocessing, network, upsampling, mask, back-projection), "postprocess" =
        the download."""
        settings = self.settings
        cameras = [i if settings.publish_cloud and request.cloud else None for i, request in zip(intrinsics, requests)]
        frames = self._device_path.run_batch([r.image for r in requests], settings.input_size, color_order, cameras,
                                             settings.cloud_stride)
        results = []
        for frame, depth_intrinsics, request in zip(frames, intrinsics, requests):
            timings = {"preprocess": frame.timings["upload"], "inference": frame.timings["device"],
                       "postprocess": frame.timings["download"], "depth": 0.0, "cloud": 0.0,
                       "batch_size": float(len(frames))}
            if request.align is not None:  # the sparse scale correction, after the device work (in place)
                stage = time.perf_counter()
                self._rescale(frame.depth, frame.xyz, request.align(frame.depth))
                timings["depth"] = time.perf_counter() - stage
            counts = (frame.valid_pixels, frame.flying_pixels) if settings.flying_pixel_threshold > 0 else (None, None)
            results.append(FrameResult(frame.depth, None, depth_intrinsics, frame.xyz, None, timings, *counts))
        return results

    def _depth_from(self, output: np.ndarray, align: Align | None = None
                    ) -> tuple[np.ndarray | None, np.ndarray | None, tuple[int | None, int | None]]:
        """(metric depth with NaN outside the validity range and on flying pixels, relative inverse depth,
        (valid pixels before the flying-pixel filter, pixels it removed)) from the network output; ``align`` gives
        the frame's conversion (else ``relative_scale``/``relative_shift``)."""
        settings = self.settings
        output = np.asarray(output, dtype=np.float32)
        if self.is_metric_model:
            max_depth = settings.max_valid_depth or float(self.estimator.config.max_depth)
            keep = self._keep(output)
            depth = depth_range_mask(output, settings.min_depth, max_depth)  # a copy: infer's array stays intact
            if align is not None:  # the scale correction on the masked depth, as on the device path
                self._rescale(depth, None, align(depth))
            return depth, None, self._remove_flying(depth, keep)
        scale, shift = settings.relative_scale, settings.relative_shift
        if align is not None:
            scale, shift = align(output) or (None, 0.0)
        if scale is None:
            return None, output, (None, None)
        inverse = np.float32(scale) * output + np.float32(shift)
        with np.errstate(divide="ignore", invalid="ignore"):
            depth = np.where(inverse > 0, np.float32(1.0) / inverse, np.float32(np.nan)).astype(np.float32)
        keep = self._keep(depth)
        max_depth = settings.max_valid_depth if settings.max_valid_depth is not None else math.inf
        depth = depth_range_mask(depth, settings.min_depth, max_depth, inplace=True)
        return depth, output, self._remove_flying(depth, keep)

    def _keep(self, depth: np.ndarray) -> np.ndarray | None:
        """The flying-pixel filter's keep mask of the depth before range masking, or None when it is off."""
        settings = self.settings
        if settings.flying_pixel_threshold <= 0:
            return None
        return edge_mask(depth, settings.flying_pixel_threshold, settings.flying_pixel_dilation)

    @staticmethod
    def _remove_flying(depth: np.ndarray, keep: np.ndarray | None) -> tuple[int | None, int | None]:
        """NaN (in place) on the range-valid pixels that `keep` drops; (valid before, removed), or Nones."""
        if keep is None:
            return None, None
        valid = valid_depth(depth)
        removed = valid & ~keep
        depth[removed] = np.nan
        return int(valid.sum()), int(removed.sum())

    def _stabilize(self, result: FrameResult, request: FrameRequest) -> None:
        """The camera's temporal filter on the frame's depth; the cloud follows (scaled, or back-projected again)."""
        temporal = request.temporal
        assert temporal is not None and result.depth is not None
        result.depth = temporal.update(result.depth, stamp=request.stamp, source=request.source)
        if result.xyz is None:
            return
        if temporal.mode == "scale":
            result.xyz *= np.float32(temporal.last_scale)
        elif temporal.mode == "ema":
            assert result.depth_intrinsics is not None
            result.xyz = backproject(result.depth, result.depth_intrinsics, self.settings.cloud_stride)

    def _rescale(self, depth: np.ndarray, xyz: np.ndarray | None, conversion: tuple[float, float] | None) -> None:
        """A metric model's scale correction in place: depth and points x factor, then the validity range again."""
        if conversion is None or conversion[0] == 1.0:
            return
        factor = np.float32(conversion[0])
        depth *= factor
        max_depth = self.settings.max_valid_depth or float(self.estimator.config.max_depth)
        with np.errstate(invalid="ignore"):
            outside = (depth < self.settings.min_depth) | (depth > max_depth)
        depth[outside] = np.nan
        if xyz is not None:
            xyz *= factor
            stride = self.settings.cloud_stride
            xyz[np.isnan(depth[::stride, ::stride])] = np.nan

    def _colorize(self, depth: np.ndarray | None, relative: np.ndarray | None) -> np.ndarray:
        """The preview: metric depth over the fixed validity range (near = warm); else relative over its percentiles."""
        settings = self.settings
        if depth is not None:
            vmax = settings.max_valid_depth
            if vmax is None:
                vmax = float(self.estimator.config.max_depth) if self.is_metric_model else robust_range(depth)[1]
            return colorize_depth(depth, settings.min_depth, max(vmax, settings.min_depth), settings.colormap,
                                  reverse=True)
        assert relative is not None
        low, high = robust_range(relative)
        return colorize_depth(relative, low, high, settings.colormap)
