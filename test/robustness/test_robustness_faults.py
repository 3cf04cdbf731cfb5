"""Stream faults against the real node over DDS: CameraInfo arriving only after the first images,
CameraInfo stopping, the camera switching resolution, images changing size mid-stream, and the image
topic going silent and coming back. Every output is checked against the frame it belongs to (size,
stamp, depth CameraInfo, cloud equal to an independent back-projection); the log stays clean."""

from __future__ import annotations

import re
import time

import pytest

from camera_frame import Camera
from node_rig import NodeRig, counter_delta

pytestmark = pytest.mark.ros

SILENCE_S = 7.0  # longer than the node's stale-input threshold (diagnostics.STALE_INPUT_S = 5 s)


@pytest.fixture(scope="module")
def camera() -> Camera:
    return Camera.tum(width=160)


@pytest.fixture(scope="module")
def rig():
    """A node that has not seen any CameraInfo yet (the first test relies on it)."""
    rig = NodeRig("/dav2_robust_faults").start()
    try:
        yield rig
    finally:
        rig.close()


def test_camera_info_arriving_after_the_first_images(rig, camera):
    base = rig.wait_idle(time.time())
    early = []
    for _ in range(3):
        frame = camera.image(time.time())
        rig.publish(frame)
        depth, _, _ = rig.wait_outputs(frame, cloud=False)
        camera.check_outputs(frame, depth)
        early.append(frame)
    after = rig.wait_idle(time.time(), base.frames_in + 3)
    assert counter_delta(base, after).get("cloud_skipped.no_camera_info", 0) >= 3
    for frame in early:
        assert rig.outputs_for(frame.header.stamp) == ["depth/image"]
    said = re.findall(r"no CameraInfo received yet on /dav2_robust_faults/camera_info: publishing "
                      r"/dav2_robust_faults/depth/image only", rig.log)
    assert len(said) == 1, "the missing CameraInfo must be said exactly once"

    rig.publish(camera.camera_info(time.time()))
    rig.wait_for_log(r"first CameraInfo on /dav2_robust_faults/camera_info: 160x120")  # it has landed
    frame = camera.image(time.time())
    rig.publish(frame)
    camera.check_outputs(frame, *rig.wait_outputs(frame))


def test_camera_info_stopping_keeps_the_last_one(rig, camera):
    rig.publish(camera.camera_info(time.time()))
    time.sleep(0.4)
    for _ in range(5):  # no CameraInfo any more: the clouds keep using the last one
        frame = camera.image(time.time())
        rig.publish(frame)
        camera.check_outputs(frame, *rig.wait_outputs(frame))


def test_camera_switching_resolution_mid_stream(rig, camera):
    """160x120 -> 320x240 (CameraInfo and images); a frame meeting the old CameraInfo gets it scaled,
    which for the same camera is exactly the new one, so every cloud is right whatever the order."""
    bigger = Camera.tum(width=320)
    for _ in range(3):
        stamp = time.time()
        rig.publish(bigger.camera_info(stamp))
        frame = bigger.image(stamp)
        rig.publish(frame)
        depth, info, cloud = rig.wait_outputs(frame)
        bigger.check_outputs(frame, depth, info, cloud)
    for _ in range(2):  # and back
        stamp = time.time()
        rig.publish(camera.camera_info(stamp))
        time.sleep(0.4)
        frame = camera.image(stamp)
        rig.publish(frame)
        camera.check_outputs(frame, *rig.wait_outputs(frame))


def test_image_size_changing_mid_stream_with_one_camera_info(rig, camera):
    rig.publish(camera.camera_info(time.time()))
    time.sleep(0.4)
    sizes = [Camera.tum(width=w) for w in (320, 160, 480, 96, 160)]
    for sized in sizes:
        frame = sized.image(time.time())
        rig.publish(frame)
        depth, info, cloud = rig.wait_outputs(frame)
        sized.check_outputs(frame, depth, info, cloud)  # K scaled from the 160x120 CameraInfo to each size
    rig.wait_for_log(r"CameraInfo is 160x120 but images are 480x360: scaling K to the image size "
                     r"\(fx 131\.2 -> 393\.8\)")


def test_image_topic_silent_then_back(rig, camera):
    frame = camera.image(time.time())
    rig.publish(frame)
    rig.wait_outputs(frame)
    silent_from = time.time()
    stale = rig.wait_diag(lambda d: d.message.startswith("no image for"), "the stale-input warning",
                          after=silent_from, timeout=SILENCE_S + 10.0)
    assert stale.level == 1, stale  # WARN
    assert int(re.match(r"no image for (\d+) s", stale.message).group(1)) >= 5
    time.sleep(max(0.0, silent_from + SILENCE_S - time.time()))

    back_at = time.time()
    for _ in range(3):
        frame = camera.image(time.time())
        rig.publish(frame)
        camera.check_outputs(frame, *rig.wait_outputs(frame))
    ok = rig.wait_diag(lambda d: d.message == "publishing", "the status back to OK", after=back_at)
    assert ok.level == 0, ok


def test_faults_left_a_clean_log(rig):
    rig.assert_clean_log()
    assert rig.process.process.poll() is None
    assert rig.stop_node() == 0
    rig.assert_clean_log()
