"""Camera topic discovery and frame/CameraInfo pairing of the offline tool, on the real bags (no model)."""

from __future__ import annotations

import contextlib
import pathlib

import pytest

from bags import BagMessage, read_bag, write_bag
from dav2_ros.offline.bag_frames import Frame, FrameSource, Passthrough
from dav2_ros.offline.bag_io import BagError, open_reader, ros2_typestore
from dav2_ros.offline.camera_topics import camera_namespace, select_camera


def _select(bag: pathlib.Path, **kwargs):
    """select_camera on a bag, closing the reader."""
    with contextlib.closing(open_reader(bag)) as reader:
        return select_camera(reader, ros2_typestore(), **kwargs)


@pytest.mark.parametrize(
    ("topic", "compressed", "namespace"),
    [
        ("/camera/image_raw", False, "/camera"),
        ("/camera/image_raw/compressed", True, "/camera"),
        ("raspicam_node/camera/image/compressed", True, "/raspicam_node/camera"),
        ("/camera/color/image_raw", False, "/camera/color"),
        ("image", False, "/"),
        ("/compressed", True, "/"),
    ],
)
def test_camera_namespace(topic: str, compressed: bool, namespace: str) -> None:
    assert camera_namespace(topic, compressed) == namespace


def test_raw_topic_wins_over_its_own_compressed_transport(bags_dir: pathlib.Path) -> None:
    camera = _select(bags_dir / "fiducial_board_611")
    assert camera.image.topic == "/camera/image_raw"
    assert camera.info.topic == "/camera/camera_info"
    assert camera.namespace == "/camera"
    assert not camera.compressed


def test_quirky_ros1_bag_pairs_slashless_image_with_slashed_info(bags_dir: pathlib.Path) -> None:
    camera = _select(bags_dir / "fiducial_board_611_raw")
    assert camera.image.topic == "raspicam_node/camera/image/compressed"
    assert camera.compressed
    assert camera.info.topic == "/raspicam_node/camera/camera_info"
    assert camera.namespace == "/raspicam_node/camera"


def test_depth_image_topic_is_not_a_camera_candidate(bags_dir: pathlib.Path) -> None:
    camera = _select(bags_dir / "tum_rgbd")
    assert camera.image.topic == "/camera/color/image_raw"
    assert camera.info.topic == "/camera/color/camera_info"  # the sibling, not /camera/depth/camera_info


def test_explicit_topics_and_output_namespace(bags_dir: pathlib.Path) -> None:
    camera = _select(bags_dir / "fiducial_board_611", image_topic="camera/image_raw/compressed",
                     info_topic="camera/camera_info", output_namespace="out/")
    assert camera.image.topic == "/camera/image_raw/compressed"
    assert camera.info.topic == "/camera/camera_info"
    assert camera.namespace == "/out"


def test_unknown_explicit_topic_lists_the_candidates(bags_dir: pathlib.Path) -> None:
    with pytest.raises(BagError, match=r"/nope is not in bag .*/camera/image_raw \(Image\)"):
        _select(bags_dir / "fiducial_board_611", image_topic="/nope")
    with pytest.raises(BagError, match=r"CameraInfo topic /nope .*/camera/camera_info"):
        _select(bags_dir / "fiducial_board_611", info_topic="/nope")


def test_two_cameras_are_ambiguous(bags_dir: pathlib.Path, tmp_path: pathlib.Path) -> None:
    tum = read_bag(bags_dir / "tum_rgbd")
    fid = read_bag(bags_dir / "fiducial_board_611_raw")
    bag = write_bag(tmp_path / "two", sorted(tum + fid, key=lambda m: m.timestamp))
    with pytest.raises(BagError, match=r"several camera image topics .*--image-topic") as error:
        _select(bag)
    assert "/camera/color/image_raw (Image)" in str(error.value)
    assert "raspicam_node/camera/image/compressed (CompressedImage)" in str(error.value)
    camera = _select(bag, image_topic="/camera/color/image_raw")
    assert camera.info.topic == "/camera/color/camera_info"


def test_no_camera_topic_names_the_topics_present(bags_dir: pathlib.Path, tmp_path: pathlib.Path) -> None:
    infos = read_bag(bags_dir / "tum_rgbd", topics=["/camera/color/camera_info", "/camera/depth/image_raw"])
    bag = write_bag(tmp_path / "no_camera", infos)
    with pytest.raises(BagError, match=r"no camera image topic .* topics: .*/camera/depth/image_raw \(Image\)"):
        _select(bag)


def test_no_camera_info_is_not_an_error(bags_dir: pathlib.Path, tmp_path: pathlib.Path) -> None:
    bag = write_bag(tmp_path / "no_info", read_bag(bags_dir / "tum_rgbd", topics=["/camera/color/image_raw"]))
    camera = _select(bag)
    assert camera.info is None
    assert "no CameraInfo" in camera.info_note


def _frames(bag: pathlib.Path, copy_input: bool = False) -> list[Frame | Passthrough]:
    with contextlib.closing(open_reader(bag)) as reader:
        camera = select_camera(reader, ros2_typestore())
        return list(FrameSource(reader, camera, ros2_typestore(), copy_input=copy_input))


def test_frame_gets_latest_camera_info_recorded_before_it(bags_dir: pathlib.Path) -> None:
    # 32 CameraInfos, none with the image's stamp; the image is recorded after all of them.
    items = _frames(bags_dir / "fiducial_board_611_raw")
    assert len(items) == 1 and isinstance(items[0], Frame)
    infos = read_bag(bags_dir / "fiducial_board_611_raw", topics=["/raspicam_node/camera/camera_info"])
    assert len(infos) == 32
    assert items[0].camera_info.header.stamp == infos[-1].msg.header.stamp


def test_camera_info_with_the_same_bag_time_counts_even_when_recorded_after(
    bags_dir: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    messages = read_bag(bags_dir / "tum_rgbd", topics=["/camera/color/image_raw", "/camera/color/camera_info"])
    image = next(m for m in messages if m.topic.endswith("image_raw"))
    info = next(m for m in messages if m.topic.endswith("camera_info"))
    assert image.timestamp == info.timestamp
    bag = write_bag(tmp_path / "info_after", [image, info])  # same bag time, info written second
    [frame] = [item for item in _frames(bag) if isinstance(item, Frame)]
    assert frame.camera_info is not None


def test_camera_info_recorded_after_the_frame_is_not_used(bags_dir: pathlib.Path, tmp_path: pathlib.Path) -> None:
    messages = read_bag(bags_dir / "tum_rgbd", topics=["/camera/color/image_raw", "/camera/color/camera_info"])
    image = next(m for m in messages if m.topic.endswith("image_raw"))
    info = next(m for m in messages if m.topic.endswith("camera_info"))
    late = BagMessage(info.topic, info.msgtype, info.timestamp + 1, info.msg)
    bag = write_bag(tmp_path / "info_late", [image, late])
    [frame] = [item for item in _frames(bag) if isinstance(item, Frame)]
    assert frame.camera_info is None


def test_copy_input_yields_every_message_in_time_order(bags_dir: pathlib.Path) -> None:
    items = _frames(bags_dir / "tum_rgbd", copy_input=True)
    copied = [item for item in items if isinstance(item, Passthrough)]
    assert sorted(p.connection.topic for p in copied) == [
        "/camera/color/camera_info", "/camera/color/image_raw", "/camera/depth/camera_info", "/camera/depth/image_raw"]
    assert sum(isinstance(item, Frame) for item in items) == 1
    stamps = [item.timestamp for item in items]
    assert stamps == sorted(stamps)


@pytest.mark.parametrize("damage", ["truncate", "garble", "empty"])
def test_damaged_bag_is_one_bag_error(bags_dir: pathlib.Path, tmp_path: pathlib.Path, damage: str) -> None:
    source = bags_dir / "tum_rgbd" / "tum_rgbd_testready.mcap"
    data = bytearray(source.read_bytes())
    if damage == "truncate":
        data = data[: len(data) // 2]
    elif damage == "garble":
        for i in range(64, len(data), 1009):
            data[i] ^= 0xFF
    else:
        data = bytearray()
    target = tmp_path / "broken.mcap"
    target.write_bytes(bytes(data))
    with pytest.raises(BagError, match=r"broken\.mcap"):
        with contextlib.closing(open_reader(target)) as reader:
            list(FrameSource(reader, select_camera(reader, ros2_typestore()), ros2_typestore(), copy_input=True))
