"""Pinhole intrinsics read from a CameraInfo-like message, validated, and rescaled to another image size; and the
CameraInfo fields of the depth image from them (`camera_info_fields`): CameraInfo <-> Intrinsics in one module.

Works with any object that has CameraInfo's attributes: rclpy messages (``k`` is a numpy array,
``d`` an ``array('d')``), rosbags messages (numpy arrays) or a plain namespace with lists.

Scaling convention (``Intrinsics.scaled_to``): pixel-centre consistent,
``fx' = fx * sx`` and ``cx' = (cx + 0.5) * sx - 0.5`` (same for y). In ROS's pixel coordinates the
centre of pixel ``u`` is at ``u`` and the image spans ``[-0.5, W - 0.5]``; resizing the image by
``sx`` (cv2.resize, torch ``interpolate(align_corners=False)``, i.e. how depth maps and camera
images are actually resized) maps the continuous coordinate ``u`` to ``(u + 0.5) * sx - 0.5``, so
this is the K that projects a 3-D point onto the resized image (test_geometry_intrinsics checks it
against cv2.resize). image_proc's ``resize`` node (image_proc/src/resize.cpp: ``k[2] * scale_x``)
and depth_image_proc's point_cloud_xyzrgb resize path use ``cx * sx`` after that same cv::resize,
which is off by ``0.5 * (sx - 1)`` px (-0.25 px at half size): small next to calibration error,
but systematic, so we use the exact form.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from dav2_ros.errors import MAX_SIDE, InputRejected

#: Relative difference between the x and y scale factors above which ``scaled_to`` refuses: a
#: CameraInfo whose aspect ratio differs from the image's describes a crop, not a resize.
DEFAULT_ASPECT_TOLERANCE = 0.02


class IntrinsicsError(InputRejected):
    """A CameraInfo whose intrinsics cannot be used; ``reason`` is a counter key such as ``k_zero``."""


@dataclass(frozen=True)
class Intrinsics:
    """Pinhole intrinsics of a rectified image of ``width`` x ``height`` pixels (no skew, no distortion)."""

    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int

    def __post_init__(self) -> None:
        values = (self.fx, self.fy, self.cx, self.cy)
        if not all(math.isfinite(v) for v in values):
            raise IntrinsicsError("k_not_finite", f"intrinsics must be finite, got fx, fy, cx, cy = {values}")
        if self.fx <= 0.0 or self.fy <= 0.0:
            raise IntrinsicsError(
                "negative_focal" if min(self.fx, self.fy) < 0.0 else "zero_focal",
                f"focal lengths must be positive, got fx={self.fx}, fy={self.fy}",
            )
        _check_size(self.width, self.height)

    @classmethod
    def from_camera_info(cls, msg: Any, source: Literal["k", "p"] = "k") -> Intrinsics:
        """Read and validate the intrinsics of a CameraInfo-like message.

        Args:
            msg: has ``k`` (9 floats, row-major), ``p`` (12 floats, only for ``source="p"``),
                ``width``, ``height``; optional ``binning_x``/``binning_y`` and ``roi`` are applied
                the way image_geometry does (the image then is the ROI, divided by the binning).
            source: ``"k"`` (default) uses the camera matrix K, right for an unrectified image with
                negligible distortion; ``"p"`` uses the projection matrix P, right for a rectified
                image (``image_rect``), which is what depth_image_proc uses.

        Raises:
            IntrinsicsError: reasons ``k_bad_length``/``p_bad_length``, ``k_not_finite``/
                ``p_not_finite``, ``k_zero``/``p_zero`` (an uncalibrated driver's default),
                ``zero_focal``, ``negative_focal``, ``k_malformed``/``p_malformed`` (bottom row not 0 0 1, or skew),
                ``bad_size``, ``bad_binning``, ``bad_roi``.
        """
        matrix = _read_matrix(msg, source)
        if not np.all(np.isfinite(matrix)):
            raise IntrinsicsError(f"{source}_not_finite", f"CameraInfo.{source} has NaN or inf: {matrix.tolist()}")
        if not np.any(matrix):
            raise IntrinsicsError(f"{source}_zero", f"CameraInfo.{source} is all zeros (camera not calibrated?)")
        fx, skew, cx = matrix[0, 0], matrix[0, 1], matrix[0, 2]
        fy, cy = matrix[1, 1], matrix[1, 2]
        if fx <= 0.0 or fy <= 0.0:
            raise IntrinsicsError(
                "negative_focal" if min(fx, fy) < 0.0 else "zero_focal",
                f"CameraInfo.{source} has fx={fx}, fy={fy}; focal lengths must be positive",
            )
        if matrix[1, 0] != 0.0 or not np.allclose(matrix[2, :3], (0.0, 0.0, 1.0)) or abs(skew) > 1e-9 * fx:
            raise IntrinsicsError(
                f"{source}_malformed",
                f"CameraInfo.{source} is not a pinhole matrix [fx 0 cx; 0 fy cy; 0 0 1] "
                f"(skew and other off-diagonal terms are not supported): {matrix.tolist()}",
            )
        width, height = _as_int(msg.width, "width"), _as_int(msg.height, "height")
        _check_size(width, height)
        intr = cls(float(fx), float(fy), float(cx), float(cy), width, height)
        return _apply_roi_and_binning(intr, msg)

    def scaled_to(
        self, width: int, height: int, aspect_tolerance: float | None = DEFAULT_ASPECT_TOLERANCE
    ) -> Intrinsics:
        """These intrinsics for the same camera at another resolution (pixel-centre consistent, see module doc).

        Args:
            width, height: the target image size in pixels.
            aspect_tolerance: refuse (reason ``aspect_mismatch``) when the x and y scale factors
                differ by more than this fraction plus one pixel of rounding; ``None`` scales
                each axis independently whatever the ratio.
        """
        width, height = _as_int(width, "width"), _as_int(height, "height")
        _check_size(width, height)
        if width == self.width and height == self.height:
            return self
        sx, sy = width / self.width, height / self.height
        if aspect_tolerance is not None:
            rounding = 1.0 / min(width, height)
            if abs(sx - sy) / max(sx, sy) > aspect_tolerance + rounding:
                raise IntrinsicsError(
                    "aspect_mismatch",
                    f"CameraInfo is {self.width}x{self.height} but the image is {width}x{height}: "
                    f"scale factors {sx:.4f} (x) and {sy:.4f} (y) differ, so the CameraInfo "
                    f"does not describe this image (a crop?)",
                )
        return Intrinsics(
            fx=self.fx * sx,
            fy=self.fy * sy,
            cx=(self.cx + 0.5) * sx - 0.5,
            cy=(self.cy + 0.5) * sy - 0.5,
            width=width,
            height=height,
        )

    def k_matrix(self) -> list[float]:
        """The 3x3 camera matrix K, row-major (CameraInfo.k)."""
        return [self.fx, 0.0, self.cx, 0.0, self.fy, self.cy, 0.0, 0.0, 1.0]

    def p_matrix(self) -> list[float]:
        """The 3x4 projection matrix P of a monocular rectified camera (Tx = Ty = 0), row-major (CameraInfo.p)."""
        return [self.fx, 0.0, self.cx, 0.0, 0.0, self.fy, self.cy, 0.0, 0.0, 0.0, 1.0, 0.0]


def camera_info_fields(intr: Intrinsics) -> dict[str, Any]:
    """CameraInfo fields (``CameraInfo(header=h, **fields)``) for an image described by ``intr``: the depth image's.

    The depth image is treated as rectified, so the published CameraInfo has zero distortion, an identity R and
    ``P = [K | 0]``: depth_image_proc (which projects with P) and any consumer that reads K then see exactly the
    geometry this package used for its point cloud.

    Arrays are float64 numpy arrays, which both rclpy and rosbags message classes accept.
    """
    return {
        "width": intr.width,
        "height": intr.height,
        "distortion_model": "plumb_bob",
        "d": np.zeros(5, dtype=np.float64),
        "k": np.array(intr.k_matrix(), dtype=np.float64),
        "r": np.eye(3, dtype=np.float64).reshape(9),
        "p": np.array(intr.p_matrix(), dtype=np.float64),
        "binning_x": 0,
        "binning_y": 0,
    }


def distortion_is_nonzero(msg: Any) -> bool:
    """Whether a CameraInfo-like message carries distortion coefficients other than zero.

    The package treats its input as rectified (pinhole, no distortion); a caller that sees
    ``True`` should warn once that the image is assumed to be rectified. NaN counts as non-zero.
    """
    d = getattr(msg, "d", None)
    if d is None or len(d) == 0:
        return False
    try:
        coeffs = np.asarray(d, dtype=np.float64)
    except (TypeError, ValueError):
        return True
    return bool(np.any(coeffs != 0.0))


def _read_matrix(msg: Any, source: Literal["k", "p"]) -> np.ndarray:
    """K as 3x3 or the left 3x3 of P, float64; IntrinsicsError when absent or of the wrong length."""
    if source not in ("k", "p"):
        raise ValueError(f"source must be 'k' or 'p', got {source!r}")
    expected = 9 if source == "k" else 12
    raw = getattr(msg, source, None)
    try:
        values = np.asarray(raw, dtype=np.float64).ravel()
    except (TypeError, ValueError) as exc:
        raise IntrinsicsError(f"{source}_bad_length", f"CameraInfo.{source} is not a list of numbers: {exc}") from None
    if values.size != expected:
        raise IntrinsicsError(
            f"{source}_bad_length", f"CameraInfo.{source} has {values.size} values, expected {expected}"
        )
    return values.reshape(3, 3) if source == "k" else values.reshape(3, 4)[:, :3]


def _as_int(value: Any, name: str) -> int:
    """An image dimension as a Python int; IntrinsicsError(bad_size) for anything non-integral."""
    try:
        as_int = int(value)
    except (TypeError, ValueError, OverflowError):
        raise IntrinsicsError("bad_size", f"{name} must be an integer, got {value!r}") from None
    if as_int != value:
        raise IntrinsicsError("bad_size", f"{name} must be an integer, got {value!r}")
    return as_int


def _check_size(width: int, height: int) -> None:
    """IntrinsicsError(bad_size) unless 1 <= width, height <= MAX_SIDE."""
    if not (1 <= width <= MAX_SIDE and 1 <= height <= MAX_SIDE):
        raise IntrinsicsError(
            "bad_size", f"image size {width}x{height} is outside 1..{MAX_SIDE} pixels per side"
        )


def _apply_roi_and_binning(intr: Intrinsics, msg: Any) -> Intrinsics:
    """Intrinsics of the image a driver actually sends when CameraInfo declares an ROI and/or binning."""
    bin_x = _as_int(getattr(msg, "binning_x", 0) or 0, "binning_x")
    bin_y = _as_int(getattr(msg, "binning_y", 0) or 0, "binning_y")
    if bin_x < 0 or bin_y < 0:
        raise IntrinsicsError("bad_binning", f"binning must be >= 0, got {bin_x}x{bin_y}")
    bin_x, bin_y = max(bin_x, 1), max(bin_y, 1)
    roi = getattr(msg, "roi", None)
    x0 = y0 = 0
    roi_w, roi_h = intr.width, intr.height
    if roi is not None and int(getattr(roi, "width", 0)) > 0 and int(getattr(roi, "height", 0)) > 0:
        x0, y0 = int(roi.x_offset), int(roi.y_offset)
        roi_w, roi_h = int(roi.width), int(roi.height)
        if x0 < 0 or y0 < 0 or x0 + roi_w > intr.width or y0 + roi_h > intr.height:
            raise IntrinsicsError(
                "bad_roi",
                f"ROI {roi_w}x{roi_h}+{x0}+{y0} does not fit in the {intr.width}x{intr.height} image",
            )
    if (x0, y0, roi_w, roi_h, bin_x, bin_y) == (0, 0, intr.width, intr.height, 1, 1):
        return intr
    cropped = Intrinsics(intr.fx, intr.fy, intr.cx - x0, intr.cy - y0, roi_w, roi_h)
    if bin_x == 1 and bin_y == 1:
        return cropped
    if roi_w // bin_x < 1 or roi_h // bin_y < 1:
        raise IntrinsicsError("bad_binning", f"binning {bin_x}x{bin_y} leaves no pixels of {roi_w}x{roi_h}")
    # Binning averages bin_x x bin_y sensor pixels into one: an exact 1/bin scale, pixel-centre consistent.
    return Intrinsics(
        fx=cropped.fx / bin_x,
        fy=cropped.fy / bin_y,
        cx=(cropped.cx + 0.5) / bin_x - 0.5,
        cy=(cropped.cy + 0.5) / bin_y - 0.5,
        width=roi_w // bin_x,
        height=roi_h // bin_y,
    )
