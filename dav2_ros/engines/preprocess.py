"""Image -> network input: the official pipeline bit for bit ("exact", numpy/cv2 float64) or on the device ("fast").

Mirrors `image2tensor` of `depth_anything_v2/dpt.py` and `Resize`, `NormalizeImage`, `PrepareForNet` of
`depth_anything_v2/util/transform.py` in the official code (github.com/DepthAnything/Depth-Anything-V2).
"""

from __future__ import annotations


import cv2
import numpy as np
import torch
import torch.nn.functional as F

from dav2_ros.model.config import COLOR_ORDERS, PATCH_SIZE, ColorOrder, PreprocessMode  # noqa: F401 -- re-exported


IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def network_size(height: int, width: int, input_size: int, multiple: int = PATCH_SIZE) -> tuple[int, int]:
    """The official 'lower_bound' resize target (rows, cols): aspect kept, shorter side >= input_size,
    each side np.round-ed to a multiple of 14 and rounded up instead when that fell below input_size."""
    scale = max(input_size / height, input_size / width)

    def constrain(x: float) -> int:
        y = int(np.round(x / multiple) * multiple)
        if y < input_size:
            y = int(np.ceil(x / multiple) * multiple)
        return y

    return constrain(scale * height), constrain(scale * width)


def check_image(image: np.ndarray) -> None:
    """Refuse anything but a non-empty uint8 HxWx3 array, with a message saying what was given."""
    if not isinstance(image, np.ndarray):
        raise TypeError(f"image must be a numpy array, got {type(image).__name__}")
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3 or image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(f"image must be uint8 HxWx3, got {image.dtype} with shape {image.shape}")


def check_color_order(color_order: str) -> None:
    """Refuse a channel order other than 'rgb' or 'bgr'."""
    if color_order not in COLOR_ORDERS:
        raise ValueError(f"color_order must be 'rgb' or 'bgr', got {color_order!r}")


def exact_preprocess(image: np.ndarray, input_size: int, color_order: ColorOrder) -> np.ndarray:
    """The official `image2tensor` on the CPU: RGB /255 (float64), INTER_CUBIC resize, ImageNet normalization,
    CHW float32. Returns a contiguous (3, h, w) float32 array with h, w multiples of 14."""
    rgb = cv2.cvtColor(image, cv2.COLOR_BGR2RGB) if color_order == "bgr" else image
    scaled = rgb / 255.0
    rows, cols = network_size(image.shape[0], image.shape[1], input_size)
    resized = cv2.resize(scaled, (cols, rows), interpolation=cv2.INTER_CUBIC)
    resized -= np.asarray(IMAGENET_MEAN)
    resized /= np.asarray(IMAGENET_STD)
    return np.ascontiguousarray(resized.transpose(2, 0, 1)).astype(np.float32)


class FastPreprocessor:
    """Uploads the uint8 image once and does channel order, resize (bicubic, no antialias) and normalization
    on the device in float32; on CUDA the upload goes through a reused pinned staging buffer.

    Args:
        device: where the network runs.
    """

    def __init__(self, device: torch.device) -> None:
        self.device = device
        std = torch.tensor(IMAGENET_STD, dtype=torch.float32)
        mean = torch.tensor(IMAGENET_MEAN, dtype=torch.float32)
        # (x / 255 - mean) / std == x * scale - shift, with x the 0..255 values.
        self._scale = (1.0 / (255.0 * std)).view(1, 3, 1, 1).to(device)
        self._shift = (mean / std).view(1, 3, 1, 1).to(device)
        self._staging: torch.Tensor | None = None

    def _upload(self, batch: np.ndarray) -> torch.Tensor:
        """uint8 (B, H, W, 3) host array -> the same on the device (one copy; pinned + async on CUDA)."""
        host = torch.from_numpy(batch)
        if self.device.type != "cuda":
            return host
        if self._staging is None or self._staging.shape != host.shape:
            self._staging = torch.empty(host.shape, dtype=torch.uint8, pin_memory=True)
        self._staging.copy_(host)
        return self._staging.to(self.device, non_blocking=True)

    def __call__(self, batch: np.ndarray, input_size: int, color_order: ColorOrder) -> torch.Tensor:
        """uint8 (B, H, W, 3) -> normalized float32 (B, 3, h, w) on the device, h and w as the exact mode picks."""
        rows, cols = network_size(batch.shape[1], batch.shape[2], input_size)
        x = self._upload(batch).permute(0, 3, 1, 2)
        if color_order == "bgr":
            x = x.flip(1)
        x = F.interpolate(x.float(), size=(rows, cols), mode="bicubic", align_corners=False, antialias=False)
        return x.mul_(self._scale).sub_(self._shift)
