"""The managed (lifecycle) node, driven through its real lifecycle services over DDS as nav2_lifecycle_manager
drives it: unconfigured -> inactive -> active -> inactive -> unconfigured -> finalized; no message on any output
while inactive, depth again after activate; configure fails on a missing checkpoint (the node stays unconfigured)
and succeeds once the file is there; the model's memory is handed back on cleanup (RSS of the node process).

The node runs as a subprocess (`python -m dav2_ros.node.managed_depth_node`), so its RSS is its own."""

from __future__ import annotations

import time

import numpy as np
import psutil
import pytest
import torch
from diagnostic_msgs.msg import DiagnosticArray
from sensor_msgs.msg import CameraInfo, Image, PointCloud2

from dav2_ros.model.config import ModelConfig
from dav2_ros.model.depth_anything_v2 import DepthAnythingV2
from lifecycle_client import (ACTIVATE, ACTIVE, CLEANUP, CONFIGURE, DEACTIVATE, INACTIVE, SHUTDOWN_FROM,
                              UNCONFIGURED, LifecycleClient)
from node_harness import DdsClient, NodeProcess, every, same_header, wait_until

pytestmark = pytest.mark.ros

MODULE = "dav2_ros.node.managed_depth_node"
NAMESPACE = "/dav2_lifecycle_test"
FQN = f"{NAMESPACE}/depth_node"
WIDTH, HEIGHT = 160, 120
PARAMS = {"device": "cpu", "precision": "fp32", "input_size": 70, "num_threads": 1, "warmup_width": WIDTH,
          "warmup_height": HEIGHT}
TIMEOUT_S = 120.0
QUIET_S = 3.0  # how long the outputs are watched while inactive (the node publishes 1 Hz diagnostics when active)
MiB = 1024 * 1024


def frame(sec: int) -> Image:
    pixels = np.random.default_rng(sec).integers(0, 256, size=(HEIGHT, WIDTH, 3), dtype=np.uint8)
    msg = Image(height=HEIGHT, width=WIDTH, encoding="rgb8", step=WIDTH * 3)
    msg.data = pixels.tobytes()
    msg.header.stamp.sec, msg.header.frame_id = sec, "lifecycle_optical"
    return msg


def camera_info() -> CameraInfo:
    info = CameraInfo(width=WIDTH, height=HEIGHT, distortion_model="plumb_bob")
    info.k = [100.0, 0.0, (WIDTH - 1) / 2, 0.0, 100.0, (HEIGHT - 1) / 2, 0.0, 0.0, 1.0]
    info.header.frame_id = "lifecycle_optical"
    return info


def write_checkpoint(path) -> None:
    """A vits metric state_dict (random init; the node only needs loadable weights of the right shapes)."""
    torch.manual_seed(0)
    torch.save(DepthAnythingV2(ModelConfig("vits", "metric")).state_dict(), path)


def rss(process: NodeProcess) -> int:
    return psutil.Process(process.process.pid).memory_info().rss


def settled_rss(process: NodeProcess, seconds: float = 1.0) -> int:
    """The RSS once a transition's frees have happened (sampled after a short pause)."""
    time.sleep(seconds)
    return rss(process)


def node_statuses(messages: list) -> list:
    return [status for msg in messages for status in msg.status if status.name.startswith(FQN)]


def test_lifecycle_over_dds_from_a_missing_checkpoint_to_finalized(tmp_path):
    checkpoint = tmp_path / "depth_anything_v2_metric_hypersim_vits.pth"
    params = {**PARAMS, "checkpoint": str(checkpoint)}
    with NodeProcess(params, namespace=NAMESPACE, module=MODULE) as node, DdsClient("dav2_lifecycle_client") as client:
        lifecycle = LifecycleClient(client, FQN, TIMEOUT_S)
        outputs = {topic: client.collect(msg_type, f"{NAMESPACE}/{topic}")
                   for topic, msg_type in (("depth/image", Image), ("depth/camera_info", CameraInfo),
                                           ("points", PointCloud2), ("depth/colored", Image))}
        diagnostics = client.collect(DiagnosticArray, "/diagnostics")
        image_pub = client.publisher(Image, f"{NAMESPACE}/image")
        info_pub = client.publisher(CameraInfo, f"{NAMESPACE}/camera_info")

        def quiet_while_inactive(first_sec: int) -> None:
            """Frames published for QUIET_S seconds produce nothing on any output (and nobody subscribes)."""
            for recorder in (*outputs.values(), diagnostics):
                recorder.forget()
            deadline, sec = time.monotonic() + QUIET_S, first_sec
            while time.monotonic() < deadline:
                info_pub.publish(camera_info())
                image_pub.publish(frame(sec))
                sec += 1
                time.sleep(0.2)
            assert image_pub.get_subscription_count() == 0 and info_pub.get_subscription_count() == 0
            assert {topic: len(c.messages) for topic, c in outputs.items()} == {topic: 0 for topic in outputs}
            assert node_statuses(diagnostics.messages) == []

        assert lifecycle.get_state() == UNCONFIGURED
        rss_before = rss(node)

        # configure without the checkpoint: refused with the reason, still unconfigured
        assert lifecycle.change_state(CONFIGURE) is False
        assert lifecycle.get_state() == UNCONFIGURED
        refusal = node.wait_for_output(r"configure failed: ", 10.0)
        assert str(checkpoint) in refusal and "still unconfigured" in refusal

        # the file appears: configure succeeds, nothing published while inactive
        write_checkpoint(checkpoint)
        assert lifecycle.change_state(CONFIGURE, TIMEOUT_S) is True
        assert lifecycle.get_state() == INACTIVE
        rss_configured = settled_rss(node)
        quiet_while_inactive(100)

        # activate: subscribed and publishing again
        assert lifecycle.change_state(ACTIVATE) is True
        assert lifecycle.get_state() == ACTIVE
        client.wait_for_subscribers(image_pub, timeout=TIMEOUT_S)
        activated = time.monotonic()
        image = frame(200)
        info_pub.publish(camera_info())
        image_pub.publish(image)
        republish = every(0.5, lambda: (info_pub.publish(camera_info()), image_pub.publish(image)))
        depth = outputs["depth/image"].wait_for(lambda m: same_header(m, image), TIMEOUT_S, on_wait=republish)
        first_depth_s = time.monotonic() - activated
        outputs["points"].wait_for(lambda m: same_header(m, image), TIMEOUT_S, on_wait=republish)
        outputs["depth/colored"].wait_for(lambda m: same_header(m, image), TIMEOUT_S, on_wait=republish)
        wait_until(lambda: node_statuses(diagnostics.messages), 10.0, "the node's /diagnostics while active")
        assert (depth.height, depth.width, depth.encoding) == (HEIGHT, WIDTH, "32FC1")

        # deactivate: quiet again, the model stays (no reload on the next activate)
        assert lifecycle.change_state(DEACTIVATE) is True
        assert lifecycle.get_state() == INACTIVE
        quiet_while_inactive(300)

        # cleanup: the model's memory is handed back
        assert lifecycle.change_state(CLEANUP) is True
        assert lifecycle.get_state() == UNCONFIGURED
        rss_cleaned = settled_rss(node)

        # a second configure/cleanup cycle ends where the first did (nothing kept across cycles)
        assert lifecycle.change_state(CONFIGURE, TIMEOUT_S) is True
        rss_configured_again = settled_rss(node)
        assert lifecycle.change_state(CLEANUP) is True
        rss_cleaned_again = settled_rss(node)

        assert lifecycle.change_state(SHUTDOWN_FROM[UNCONFIGURED]) is True
        assert node.wait(30.0) == 0  # finalized: the process ends by itself
        lifecycle.close()
        output = node.output

    model_bytes = sum(t.numel() * t.element_size() for t in DepthAnythingV2(ModelConfig("vits", "metric")).state_dict()
                      .values())
    print(f"\nRSS (MiB): before configure {rss_before / MiB:.0f}, after configure {rss_configured / MiB:.0f}, after "
          f"cleanup {rss_cleaned / MiB:.0f}, configure again {rss_configured_again / MiB:.0f}, cleanup again "
          f"{rss_cleaned_again / MiB:.0f}; the vits weights are {model_bytes / MiB:.0f} MiB; first depth "
          f"{first_depth_s:.2f} s after activate")
    # The first configure also loads torch's libraries (imported on demand), which stay mapped: what cleanup must
    # hand back is the model, i.e. at least most of the weights' bytes, and a second cycle must end where the first did.
    assert rss_configured - rss_before > 0.8 * model_bytes, "configure did not load the model into this process"
    assert rss_configured - rss_cleaned > 0.8 * model_bytes, "cleanup did not hand the model's memory back"
    assert rss_configured_again - rss_cleaned_again > 0.8 * model_bytes
    assert rss_cleaned_again < rss_cleaned + 0.2 * model_bytes, "memory kept across configure/cleanup cycles"
    assert "Traceback" not in output


@pytest.mark.parametrize("reach", [UNCONFIGURED, INACTIVE, ACTIVE], ids=["unconfigured", "inactive", "active"])
def test_shutdown_from_any_state_finalizes(tmp_path, reach):
    params = {**PARAMS, "allow_random_weights": True, "weights_dir": str(tmp_path)}
    namespace = f"{NAMESPACE}_shutdown"
    with NodeProcess(params, namespace=namespace, module=MODULE) as node, DdsClient("dav2_lifecycle_client") as client:
        lifecycle = LifecycleClient(client, f"{namespace}/depth_node", TIMEOUT_S)
        for transition, state in ((CONFIGURE, INACTIVE), (ACTIVATE, ACTIVE)):
            if lifecycle.get_state() == reach:
                break
            assert lifecycle.change_state(transition, TIMEOUT_S) is True
            assert lifecycle.get_state() == state
        assert lifecycle.change_state(SHUTDOWN_FROM[reach]) is True
        # finalized: the process ends by itself (a bound, not a timing: the worker and the model are freed first)
        assert node.wait(30.0) == 0
        lifecycle.close()
        assert "finalized: exiting" in node.output and "Traceback" not in node.output


def test_invalid_parameter_still_ends_the_process_with_code_1():
    """Parameters are checked at construction, as in the plain node: the process exits 1 with the reason."""
    with NodeProcess({**PARAMS, "input_size": 100}, namespace=f"{NAMESPACE}_bad", module=MODULE) as node:
        assert node.wait(60.0) == 1
    assert "cannot start: invalid parameter" in node.output and "input_size" in node.output


def test_deactivate_drops_the_frame_in_flight_and_keeps_the_model(tmp_path):
    """A frame inside the model when deactivate comes is not published; the next activate serves frames with the
    same model object (no reload). In-process, so the test can hold the frame in the model (an estimator spy)."""
    import threading

    from dav2_ros.node.managed_depth_node import ManagedDepthNode
    from dav2_ros.pipeline.processing import FrameProcessor
    from estimator_spy import EstimatorSpy
    from node_harness import InProcessNode

    namespace = f"{NAMESPACE}_in_flight"
    params = {**PARAMS, "allow_random_weights": True, "weights_dir": str(tmp_path)}
    entered, release = threading.Event(), threading.Event()

    def gate(batch_size: int) -> None:
        entered.set()
        assert release.wait(TIMEOUT_S), "the test never released the frame"

    with InProcessNode(params, namespace=namespace, node_type=ManagedDepthNode) as node, \
            DdsClient("dav2_lifecycle_client") as client:
        lifecycle = LifecycleClient(client, node.fqn, TIMEOUT_S)
        depth = client.collect(Image, f"{namespace}/depth/image")
        image_pub = client.publisher(Image, f"{namespace}/image")
        assert lifecycle.change_state(CONFIGURE, TIMEOUT_S) and lifecycle.change_state(ACTIVATE)
        model = node.node._estimator
        spy = EstimatorSpy(model, before_call=gate)
        node.node._processor = FrameProcessor(spy, node.node._processor.settings)
        client.wait_for_subscribers(image_pub, timeout=TIMEOUT_S)

        wait_until(lambda: entered.is_set() or image_pub.publish(frame(1)) or time.sleep(0.2), TIMEOUT_S,
                   "frame 1 inside the model")
        deactivating = lifecycle.request_change(DEACTIVATE)
        time.sleep(0.5)  # deactivate waits for the worker, which holds frame 1
        assert not deactivating.done()
        release.set()
        assert lifecycle.result(deactivating) is True
        time.sleep(1.0)  # frame 1's outputs, if published, would have come within milliseconds
        assert [m.header.stamp.sec for m in depth.messages] == []

        assert lifecycle.change_state(ACTIVATE) is True
        assert node.node._estimator is model  # kept across deactivate/activate
        image = frame(2)
        depth.wait_for(lambda m: same_header(m, image), TIMEOUT_S, on_wait=every(0.5, lambda: image_pub.publish(image)))
        assert 1 not in [m.header.stamp.sec for m in depth.messages]
        lifecycle.close()
