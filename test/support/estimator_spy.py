"""Test doubles of the estimator for tests of what calls it.

- `HostOnly`: what a double needs besides `config`/`last_timings`/`infer` to be the pipeline's `Estimator`
  (dav2_ros.pipeline.processing): a CPU `device`, a `backend` name, and no on-device frame path.
- `EstimatorSpy`: a spy on the real DepthEstimator: it forwards every call unchanged (not a stand-in) and records
  each one as (batch size, image height x width, input size); `before_call` lets a test hold a call.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, Callable, NoReturn, Optional

if TYPE_CHECKING:
    from dav2_ros.engines.estimator import DepthEstimator


class HostOnly:
    """The rest of the `Estimator` protocol for a double that runs on the host: `FrameProcessor` takes its numpy
    path (the device is the CPU), and refuses `on_device=True` (the backend is not torch)."""

    device: Any = SimpleNamespace(type="cpu")
    backend = "test-double"

    def device_frame_path(self, **options: Any) -> NoReturn:
        raise ValueError(f"{type(self).__name__} is a test double: it has no on-device frame path")


class EstimatorSpy(HostOnly):
    """Forwards `infer`/`infer_batch` to `inner`, recording `calls`; `batches` is their batch sizes. The device
    path does not call `infer`, so the spy has none (`HostOnly`), whatever `inner` has."""

    def __init__(self, inner: DepthEstimator, before_call: Optional[Callable[[int], None]] = None) -> None:
        self.inner, self.config, self.device = inner, inner.config, inner.device
        self.calls: list[tuple[int, tuple[int, int], int]] = []
        self._before_call = before_call

    @property
    def batches(self) -> list[int]:
        return [size for size, _, _ in self.calls]

    @property
    def last_timings(self) -> dict[str, float]:
        return self.inner.last_timings

    def _record(self, size: int, shape: tuple[int, int], input_size: int) -> None:
        self.calls.append((size, shape, input_size))
        if self._before_call is not None:
            self._before_call(size)

    def infer(self, image, input_size=518, color_order="rgb"):
        self._record(1, image.shape[:2], input_size)
        return self.inner.infer(image, input_size, color_order)

    def infer_batch(self, images, input_size=518, color_order="rgb"):
        self._record(len(images), images[0].shape[:2], input_size)
        return self.inner.infer_batch(images, input_size, color_order)
