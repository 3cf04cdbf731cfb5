"""Out of memory on one frame: recognised (torch.cuda.OutOfMemoryError, RuntimeError "out of memory",
MemoryError), reported, the CUDA cache emptied, and the next frame processed.

The CPU tests raise the real torch.cuda.OutOfMemoryError from a test double of the estimator (the
GPU failure is the only thing replaced); the real-GPU version fills the GPU from this process and is
skipped where there is no CUDA device.
"""

from __future__ import annotations

import re
import sys
import time
from types import SimpleNamespace

import pytest
import torch

from dav2_ros.engines.torch_runtime.device import is_out_of_memory, release_cached_memory
from estimator_spy import HostOnly

CUDA_OOM_TEXT = ("CUDA out of memory. Tried to allocate 20.00 GiB. GPU 0 has a total capacity of 7.63 GiB of "
                 "which 1.10 GiB is free.")


@pytest.mark.parametrize("error", [
    torch.cuda.OutOfMemoryError(CUDA_OOM_TEXT),
    RuntimeError("CUDA error: out of memory\nCUDA kernel errors might be asynchronously reported"),
    RuntimeError("CUDA error: CUBLAS_STATUS_ALLOC_FAILED when calling `cublasCreate(handle)`"),
    RuntimeError("[enforce fail at alloc_cpu.cpp:121] DefaultCPUAllocator: can't allocate memory: you tried to "
                 "allocate 96636764160 bytes. Error code 12 (Cannot allocate memory)"),
    MemoryError(),
], ids=["torch.cuda.OutOfMemoryError", "cuda-error-text", "cublas-alloc", "cpu-allocator", "MemoryError"])
def test_out_of_memory_errors_are_recognised(error):
    assert is_out_of_memory(error)


@pytest.mark.parametrize("error", [
    RuntimeError("The size of tensor a (37) must match the size of tensor b (38) at non-singleton dimension 3"),
    RuntimeError("CUDA error: device-side assert triggered"),
    ValueError("out of memory"),  # not a runtime failure: a programming error that only mentions memory
    KeyError("pretrained.cls_token"),
], ids=["shape-mismatch", "device-assert", "ValueError", "KeyError"])
def test_other_errors_are_not_taken_for_out_of_memory(error):
    assert not is_out_of_memory(error)


def test_releasing_the_cache_is_a_no_op_on_the_cpu():
    release_cached_memory(torch.device("cpu"))  # must not touch (or need) CUDA


# ------------------------------------------------------------------- the node's per-frame handler
class OutOfMemoryOnce(HostOnly):
    """Test double for the GPU failure only: the node's real estimator, except that its next `infer`
    raises `error` (once), as a CUDA allocation failure in the middle of a frame does."""

    def __init__(self, estimator, error: BaseException) -> None:
        self._estimator = estimator
        self.config = estimator.config
        self.device = estimator.device
        self._error: BaseException | None = error

    @property
    def last_timings(self) -> dict[str, float]:
        return self._estimator.last_timings

    def infer(self, image, input_size: int = 518, color_order: str = "rgb"):
        if self._error is not None:
            error, self._error = self._error, None
            raise error
        return self._estimator.infer(image, input_size, color_order)


NAMESPACE = "/dav2_robust_oom"


@pytest.fixture(scope="module")
def camera():
    from camera_frame import Camera

    return Camera.tum(width=160)


@pytest.fixture(scope="module")
def live(camera):
    """The real node in this process (so its estimator can be wrapped) and a DDS client around it."""
    from diagnostic_msgs.msg import DiagnosticArray
    from sensor_msgs.msg import CameraInfo, Image, PointCloud2

    from node_harness import DdsClient, InProcessNode
    from rig_settings import BASE_PARAMS

    # reliable input: each frame (and the one CameraInfo) is published once and must arrive
    params = dict(BASE_PARAMS, **{"qos.input_reliability": "reliable"})
    with InProcessNode(params, namespace=NAMESPACE) as node, DdsClient("dav2_oom_client") as client:
        rig = SimpleNamespace(
            node=node, client=client,
            image_pub=client.publisher(Image, f"{NAMESPACE}/image"),
            info_pub=client.publisher(CameraInfo, f"{NAMESPACE}/camera_info"),
            depth=client.collect(Image, f"{NAMESPACE}/depth/image"),
            info=client.collect(CameraInfo, f"{NAMESPACE}/depth/camera_info"),
            points=client.collect(PointCloud2, f"{NAMESPACE}/points"),
            diagnostics=client.collect(DiagnosticArray, "/diagnostics"),
        )
        client.wait_for_subscribers(rig.image_pub)
        client.wait_for_subscribers(rig.info_pub)
        client.wait_for_publishers(f"{NAMESPACE}/points")
        rig.info_pub.publish(camera.camera_info(time.time()))
        time.sleep(0.4)
        yield rig


def _counters(rig, after: float) -> dict[str, int] | None:
    """The node's counters from its latest /diagnostics published after wall time `after`, once idle."""
    for array in reversed(rig.diagnostics.messages):
        if array.header.stamp.sec + array.header.stamp.nanosec * 1e-9 < after:
            return None
        for status in array.status:
            if status.name.startswith(f"{rig.node.fqn}:"):
                values = {kv.key: kv.value for kv in status.values}
                counts = {k: int(v) for k, v in values.items() if k.startswith(("frames_", "rejected."))}
                if counts["frames_in"] == counts["frames_out"] + counts["frames_dropped"] + counts["frames_rejected"]:
                    return counts
    return None


def _send_and_settle(rig, frame) -> tuple[dict[str, int], dict[str, int]]:
    """The node's counters before and after `frame` went through its worker."""
    from node_harness import wait_until

    now = time.time()
    before = wait_until(lambda: _counters(rig, now), 30.0, "idle diagnostics")
    sent_at = time.time()
    rig.image_pub.publish(frame)
    after = wait_until(lambda: (c := _counters(rig, sent_at)) and c["frames_in"] > before["frames_in"] and c,
                       60.0, "the frame accounted for in /diagnostics")
    return before, after


def _next_frame_is_right(rig, camera) -> None:
    from node_harness import same_header

    good = camera.image(time.time())
    rig.image_pub.publish(good)
    outputs = [c.wait_for(lambda m: same_header(m, good), 60.0, on_wait=None)
               for c in (rig.depth, rig.info, rig.points)]
    camera.check_outputs(good, *outputs)


OOM_CASES = {
    "torch.cuda.OutOfMemoryError": (lambda: torch.cuda.OutOfMemoryError(CUDA_OOM_TEXT), "out_of_memory",
                                    r"\[ERROR\].*frame skipped: out of memory on cpu at input_size 70 "
                                    r"\(OutOfMemoryError: CUDA out of memory\. Tried to allocate 20\.00 GiB\. GPU 0 "
                                    r"has a total capacity.*\); carrying on with the next frame"),
    "RuntimeError shape mismatch": (lambda: RuntimeError("The size of tensor a (37) must match the size of tensor b"),
                                    "internal_error", r"\[ERROR\].*frame failed with RuntimeError: The size of tensor"),
    "RuntimeError 'CUDA error: out of memory'": (lambda: RuntimeError("CUDA error: out of memory"), "out_of_memory",
                                                 r"\[ERROR\].*frame skipped: out of memory on cpu at input_size 70 "
                                                 r"\(RuntimeError: CUDA error: out of memory\)"),
}
_LAST_ERROR_LOG: dict[str, float] = {}


@pytest.mark.ros
@pytest.mark.parametrize("case", list(OOM_CASES))
def test_an_error_in_one_frame_is_counted_said_and_the_next_frame_is_right(live, camera, case, capfd, monkeypatch):
    from dav2_ros.engines.torch_runtime import device as device_module
    from dav2_ros.node.depth_node import WARN_PERIOD_S
    from dav2_ros.pipeline.processing import FrameProcessor
    from node_harness import wait_until

    make_error, reason, log_pattern = OOM_CASES[case]
    released, handling = [], []

    def release(device) -> None:  # the real one empties the CUDA cache; record where it was called from
        released.append(str(device))
        handling.append(sys.exc_info()[1])  # an exception being handled would pin the failed frame's tensors

    monkeypatch.setattr(device_module, "release_cached_memory", release)
    wait = _LAST_ERROR_LOG.get(reason, 0.0) + WARN_PERIOD_S + 0.3 - time.monotonic()
    if wait > 0:  # the node says each kind at most once per period
        time.sleep(wait)

    node = live.node.node
    real = node._processor
    node._processor = FrameProcessor(OutOfMemoryOnce(node._estimator, make_error()), real.settings)
    try:
        frame = camera.image(time.time())
        before, after = _send_and_settle(live, frame)
    finally:
        node._processor = real
    _LAST_ERROR_LOG[reason] = time.monotonic()

    assert after.get(f"rejected.{reason}", 0) - before.get(f"rejected.{reason}", 0) == 1
    assert after["frames_out"] == before["frames_out"]
    assert not [m for c in (live.depth, live.info, live.points) for m in c.messages
                if m.header.stamp == frame.header.stamp], "something was published for the failed frame"
    assert released == (["cpu"] if reason == "out_of_memory" else [])
    assert handling == [None] * len(released), "the cache was emptied inside the except block that caught the error"
    logged = wait_until(lambda: re.search(log_pattern, capfd.readouterr().err), 10.0, "the node's error line")
    assert "Traceback" not in logged.string
    _next_frame_is_right(live, camera)


@pytest.mark.ros
@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(),
                    reason="no CUDA device on this machine: the real out-of-memory path needs a GPU")
def test_real_cuda_out_of_memory_on_one_frame_then_the_node_carries_on():
    """The node on the GPU; this process takes all free GPU memory and the node is asked for input_size
    1540, so the next frame's activations do not fit. That frame is counted and said; once the memory is
    back and input_size is 518 again, the following frame is right."""
    from camera_frame import Camera
    from node_rig import NodeRig, counter_delta

    camera = Camera.tum(width=640)
    params = {"device": "cuda", "precision": "fp16", "input_size": 518, "num_threads": 0}
    with NodeRig("/dav2_robust_cuda_oom", params) as rig:
        rig.publish(camera.camera_info(time.time()))
        time.sleep(0.4)
        frame = camera.image(time.time())
        rig.publish(frame)
        camera.check_outputs(frame, *rig.wait_outputs(frame))
        assert all(r.successful for r in rig.client.set_parameters(rig.fqn, {"input_size": 1540}))
        hog, chunk = [], 1 << 30
        while chunk >= 1 << 20:
            try:
                hog.append(torch.empty(chunk, dtype=torch.uint8, device="cuda"))
            except torch.cuda.OutOfMemoryError:
                chunk //= 2
        base = rig.wait_idle(time.time())
        frame = camera.image(time.time())
        sent_at = time.time()
        rig.publish(frame)
        after = rig.wait_idle(sent_at, base.frames_in + 1, resend=lambda: rig.publish(frame))
        del hog
        torch.cuda.empty_cache()
        delta = counter_delta(base, after)
        assert delta.get("rejected.out_of_memory", 0) >= 1 and "frames_out" not in delta, delta
        rig.wait_for_log(r"frame skipped: out of memory on cuda(:\d)? at input_size 1540 .*emptied the CUDA cache")
        assert all(r.successful for r in rig.client.set_parameters(rig.fqn, {"input_size": 518}))
        frame = camera.image(time.time())
        rig.publish(frame)
        camera.check_outputs(frame, *rig.wait_outputs(frame))
        rig.assert_clean_log(allowed_errors=[r"frame skipped: out of memory on cuda"])
