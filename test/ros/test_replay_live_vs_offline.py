"""Each real bag replayed through the live node (sim time, real DDS) against bag_to_depth on the same bag:
the same frames, the same stamps, and the same depth (max abs diff printed; 0 expected: same code,
device, precision and thread count)."""

from __future__ import annotations

import contextlib
import io
import pathlib

import numpy as np
import pytest
from sensor_msgs.msg import CameraInfo, Image, PointCloud2

from bag_replayer import BagReplayer, record_outputs
from bags import looped, read_bag, stamp_ns, write_bag
from standin import offline_args, reliable_input_params, standin_params
from dav2_ros.offline import bag_to_depth
from node_harness import DdsClient, NodeProcess, Recorder, cloud_fields, image_array, wait_until

pytestmark = pytest.mark.ros

# bag -> (camera topic, CameraInfo topic, namespace the node runs in = bag_to_depth's output namespace,
#         transport, passes: the bag is replayed this many times with new stamps)
CASES = {
    "tum_rgbd": ("/camera/color/image_raw", "/camera/color/camera_info", "/camera/color", "raw", 5),
    "fiducial_board_611": ("/camera/image_raw", "/camera/camera_info", "/camera", "raw", 1),
    "fiducial_board_611_raw": ("raspicam_node/camera/image/compressed", "/raspicam_node/camera/camera_info",
                               "/raspicam_node/camera", "compressed", 1),
}
STARTUP_TIMEOUT_S = 180.0  # the node loads torch and builds the model on a shared 2-core machine


def absolute(topic: str) -> str:
    return topic if topic.startswith("/") else "/" + topic


def float_image(msg) -> np.ndarray:
    """A rosbags 32FC1 Image as an array (bytes + step, no package code)."""
    return np.frombuffer(bytes(msg.data), dtype=">f4" if msg.is_bigendian else "<f4").reshape(msg.height, msg.width)


def max_abs_diff(a: np.ndarray, b: np.ndarray) -> float:
    """Largest |a - b| over pixels valid in both; inf when the NaN (invalid) pixels differ."""
    if a.shape != b.shape or not np.array_equal(np.isnan(a), np.isnan(b)):
        return float("inf")
    valid = ~np.isnan(a)
    return float(np.max(np.abs(a[valid].astype(np.float64) - b[valid]))) if valid.any() else 0.0


def cloud_z(msg) -> np.ndarray:
    """z of a rosbags PointCloud2 (its z PointField's offset, little-endian float32)."""
    [z] = [f for f in msg.fields if f.name == "z"]
    raw = np.frombuffer(bytes(msg.data), dtype=np.uint8).reshape(msg.height, msg.row_step)
    points = raw[:, : msg.width * msg.point_step].reshape(msg.height, msg.width, msg.point_step)
    return np.frombuffer(points[..., z.offset:z.offset + 4].tobytes(), dtype="<f4").reshape(msg.height, msg.width)


def wait_for_every_stamp(recorder: Recorder, stamps: list[int], timeout: float = 30.0) -> None:
    """Until the recorder's topic has a message for every stamp."""
    wait_until(lambda: set(stamps) <= set(recorder.by_stamp()), timeout, f"{recorder.topic} for every frame")


@pytest.mark.parametrize("name", list(CASES))
def test_live_replay_equals_offline(name: str, bags_dir: pathlib.Path, tmp_path: pathlib.Path) -> None:
    camera, info, ns, transport, passes = CASES[name]
    bag = bags_dir / name
    if passes > 1:  # a short stream: the same frame with new stamps, 0.1 s apart
        bag = write_bag(tmp_path / "looped", looped(read_bag(bag), passes, period_ns=100_000_000))
    empty = tmp_path / "no_weights"
    empty.mkdir()
    params = {**standin_params(empty), "input_transport": transport}

    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        code = bag_to_depth.main([str(bag), "-o", str(tmp_path / "offline"), "--no-progress",
                                  *offline_args(params)])
    assert code == 0, out.getvalue()
    offline = {}
    for m in read_bag(tmp_path / "offline"):
        offline.setdefault(m.topic, []).append(m.msg)

    outputs = {f"{ns}/depth/image": Image, f"{ns}/depth/camera_info": CameraInfo, f"{ns}/points": PointCloud2}
    image_input = "image/compressed" if transport == "compressed" else "image"
    messages = read_bag(bag)
    node_params = {**params, "use_sim_time": True, **reliable_input_params(camera, info)}
    with NodeProcess(node_params, remaps={image_input: absolute(camera), "camera_info": info},
                     namespace=ns) as node, DdsClient("replay_client") as client:
        recorders = record_outputs(client, outputs)
        replayer = BagReplayer(client, camera, f"{ns}/depth/image", recorders)
        try:
            replayer.connect(messages, timeout=STARTUP_TIMEOUT_S)
            replayer.play_lockstep(messages, timeout=120.0)
            frames = [stamp_ns(m.msg) for m in messages if m.topic == camera]
            for topic in outputs:  # the cloud and CameraInfo follow the depth image
                wait_for_every_stamp(recorders[topic], frames)
        except AssertionError as error:
            raise AssertionError(f"{error}\nnode output:\n{node.output}") from None
    live = {topic: recorders[topic].messages for topic in outputs}

    assert sorted(offline) == sorted(live)
    for topic in outputs:  # same frames, same stamps, same frame_id, nothing extra
        assert [stamp_ns(m) for m in live[topic]] == [stamp_ns(m) for m in offline[topic]] == frames, topic
        assert [m.header.frame_id for m in live[topic]] == [m.header.frame_id for m in offline[topic]]
    diffs = [max_abs_diff(image_array(a), float_image(b))
             for a, b in zip(live[f"{ns}/depth/image"], offline[f"{ns}/depth/image"])]
    print(f"\n{name}: {len(frames)} frame(s), live vs offline depth max abs diff {max(diffs)} m, "
          f"resent {replayer.resent}")
    assert max(diffs) == 0.0
    for a, b in zip(live[f"{ns}/depth/camera_info"], offline[f"{ns}/depth/camera_info"]):
        assert (a.width, a.height) == (b.width, b.height)
        np.testing.assert_array_equal(a.k, b.k)
        np.testing.assert_array_equal(a.p, b.p)
    for a, b in zip(live[f"{ns}/points"], offline[f"{ns}/points"]):
        assert (a.height, a.width, a.point_step) == (b.height, b.width, b.point_step)
        live_xyz, offline_z = cloud_fields(a), cloud_z(b)
        np.testing.assert_array_equal(live_xyz["z"], offline_z)
