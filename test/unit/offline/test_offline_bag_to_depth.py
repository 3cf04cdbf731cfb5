"""bag_to_depth on the real bags: outputs read back with rosbags and, independently, with mcap + mcap_ros2.

Every check compares against something computed outside the tool: the input bag's stamps, the
estimator run directly on the same decoded image, the CameraInfo's K, the depth image itself (for
the cloud's z). Stand-in weights at input_size 98 keep it quick; the numbers are not real depth.
"""

from __future__ import annotations

import json
import pathlib
from typing import Any

import numpy as np
import pytest
from mcap.reader import make_reader
from mcap_ros2.decoder import DecoderFactory

from bags import raw_messages, read_bag, stamp_ns, write_bag
from standin import offline_args, run_main, standin_params
from depth_expect import published_depth
from dav2_ros.conversions.compressed_codec import compressed_msg_to_array
from dav2_ros.conversions.image_codec import image_msg_to_array
from dav2_ros.engines.estimator import DepthEstimator
from dav2_ros.pipeline.settings import settings_from_file
from dav2_ros.offline import bag_to_depth
from project_paths import PROJECT_DIR

CONFIG = settings_from_file(PROJECT_DIR / "config" / "depth.yaml")

# bag -> (camera topic, output namespace, CameraInfo topic)
BAGS = {
    "fiducial_board_611": ("/camera/image_raw", "/camera", "/camera/camera_info"),
    "fiducial_board_611_raw": ("raspicam_node/camera/image/compressed", "/raspicam_node/camera",
                               "/raspicam_node/camera/camera_info"),
    "tum_rgbd": ("/camera/color/image_raw", "/camera/color", "/camera/color/camera_info"),
}


def run_tool(args: list[str]) -> tuple[int, str, str]:
    """bag_to_depth.main in this process; (exit code, stdout, stderr)."""
    return run_main(bag_to_depth, args)


@pytest.fixture(scope="module")
def tool_args(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """Options every run shares: stand-in weights (an empty weights folder), CPU fp32, input_size 98."""
    empty = tmp_path_factory.mktemp("no_weights")
    return ["--no-progress", *offline_args(standin_params(empty))]


@pytest.fixture(scope="module")
def estimator() -> DepthEstimator:
    """The model the tool runs, built directly: the same stand-in weights (seed 0), CPU fp32, backend torch (as
    `standin_params`: compared bit for bit)."""
    return DepthEstimator.random(encoder="vits", model_type="metric", max_depth=CONFIG.max_depth,
                                 device="cpu", precision="fp32", backend="torch")


def expected_depth(estimator: DepthEstimator, camera_msg: Any) -> np.ndarray:
    """The estimator's output for this camera message, NaN outside the params file's validity range and on the
    flying pixels its filter drops."""
    if hasattr(camera_msg, "format"):
        image, order = compressed_msg_to_array(camera_msg)
    else:
        image, order = image_msg_to_array(camera_msg)
    raw = estimator.infer(image, input_size=98, color_order=order)
    return published_depth(raw, CONFIG.min_depth, CONFIG.max_valid_depth, CONFIG.flying_pixel_threshold,
                           CONFIG.flying_pixel_dilation)


@pytest.fixture(scope="module")
def converted(tmp_path_factory: pytest.TempPathFactory, bags_dir: pathlib.Path,
              tool_args: list[str]) -> dict[str, tuple[pathlib.Path, dict, str]]:
    """Each bundled bag converted once: bag name -> (output folder, summary JSON, printed summary)."""
    results = {}
    for name in BAGS:
        folder = tmp_path_factory.mktemp(name)
        code, out, err = run_tool([str(bags_dir / name), "-o", str(folder / "out"),
                                   "--summary-json", str(folder / "summary.json"), *tool_args])
        assert code == 0, f"{name}: exit {code}\n{out}\n{err}"
        results[name] = (folder / "out", json.loads((folder / "summary.json").read_text()), out)
    return results


def mcap_messages(bag: pathlib.Path) -> list[tuple[Any, Any, Any, Any]]:
    """(schema, channel, message, decoded) of every message of a one-file MCAP bag, decoded by mcap_ros2
    from the message definitions stored in the file."""
    [file] = sorted(bag.glob("*.mcap"))
    with file.open("rb") as stream:
        return list(make_reader(stream, decoder_factories=[DecoderFactory()]).iter_decoded_messages())


def float_image(msg: Any) -> np.ndarray:
    """A 32FC1 image from raw bytes and step (independent of the package's decoders)."""
    assert msg.encoding == "32FC1" and msg.step == 4 * msg.width
    dtype = ">f4" if msg.is_bigendian else "<f4"
    return np.frombuffer(bytes(msg.data), dtype=dtype).reshape(msg.height, msg.width)


def cloud_z(msg: Any) -> np.ndarray:
    """The z field of an organized PointCloud2, located through its PointFields."""
    [z] = [f for f in msg.fields if f.name == "z"]
    raw = np.frombuffer(bytes(msg.data), dtype=np.uint8).reshape(msg.height, msg.row_step)
    points = raw[:, : msg.width * msg.point_step].reshape(msg.height, msg.width, msg.point_step)
    return np.frombuffer(points[..., z.offset:z.offset + 4].tobytes(), dtype="<f4").reshape(msg.height, msg.width)


@pytest.mark.parametrize("name", list(BAGS))
def test_outputs_read_back_with_rosbags(name: str, converted: dict, bags_dir: pathlib.Path,
                                        estimator: DepthEstimator) -> None:
    camera_topic, ns, info_topic = BAGS[name]
    output, summary, printed = converted[name]
    [camera] = read_bag(bags_dir / name, topics=[camera_topic])
    infos = read_bag(bags_dir / name, topics=[info_topic])
    messages = read_bag(output)
    topics = sorted({m.topic for m in messages})
    assert topics == [f"{ns}/depth/camera_info", f"{ns}/depth/image", f"{ns}/points"]
    for m in messages:  # one frame: every output carries its header and its bag time
        assert stamp_ns(m.msg) == stamp_ns(camera.msg)
        assert m.msg.header.frame_id == camera.msg.header.frame_id
        assert m.timestamp == camera.timestamp
    depth = next(m.msg for m in messages if m.topic == f"{ns}/depth/image")
    np.testing.assert_array_equal(float_image(depth), expected_depth(estimator, camera.msg))  # shape too
    info = next(m.msg for m in messages if m.topic == f"{ns}/depth/camera_info")
    source_k = np.asarray(infos[-1].msg.k)
    assert (info.width, info.height) == (depth.width, depth.height) == (infos[-1].msg.width, infos[-1].msg.height)
    np.testing.assert_allclose(info.k, source_k)  # the depth image has the camera image's size
    np.testing.assert_allclose(info.p, np.c_[source_k.reshape(3, 3), np.zeros(3)].reshape(-1))
    cloud = next(m.msg for m in messages if m.topic == f"{ns}/points")
    assert (cloud.height, cloud.width) == (depth.height, depth.width)
    np.testing.assert_array_equal(cloud_z(cloud), float_image(depth))
    assert summary["frames_read"] == summary["depth_written"] == summary["clouds_written"] == 1
    assert summary["failures"] == {} and summary["clouds_skipped"] == {}
    assert set(summary["latency_ms"]) == {"mean", "p50", "p90", "p99"} and summary["latency_ms"]["p50"] > 0
    assert "1 of 1 read" in printed and "failures: none" in printed


@pytest.mark.parametrize("name", list(BAGS))
def test_outputs_read_back_independently_with_mcap(name: str, converted: dict) -> None:
    _, ns, _ = BAGS[name]
    output, _, _ = converted[name]
    via_rosbags = {m.topic: m for m in read_bag(output)}
    via_mcap = mcap_messages(output)
    assert sorted(channel.topic for _, channel, _, _ in via_mcap) == sorted(via_rosbags)
    for schema, channel, message, decoded in via_mcap:
        expected = via_rosbags[channel.topic]
        assert message.log_time == expected.timestamp
        assert decoded.header.stamp.sec * 10**9 + decoded.header.stamp.nanosec == stamp_ns(expected.msg)
        assert schema.name == expected.msgtype
    depth = next(decoded for _, channel, _, decoded in via_mcap if channel.topic == f"{ns}/depth/image")
    np.testing.assert_array_equal(float_image(depth), float_image(via_rosbags[f"{ns}/depth/image"].msg))


def test_quirky_bag_uses_camera_info_recorded_before_the_frame(converted: dict, bags_dir: pathlib.Path) -> None:
    # fiducial_board_611_raw: 32 CameraInfos, none stamped like the image, all recorded before it.
    _, summary, printed = converted["fiducial_board_611_raw"]
    [camera] = read_bag(bags_dir / "fiducial_board_611_raw", topics=["raspicam_node/camera/image/compressed"])
    infos = read_bag(bags_dir / "fiducial_board_611_raw", topics=["/raspicam_node/camera/camera_info"])
    assert all(stamp_ns(i.msg) != stamp_ns(camera.msg) for i in infos)
    assert summary["info_topic"] == "/raspicam_node/camera/camera_info"
    assert summary["clouds_written"] == 1
    assert "/raspicam_node/camera/points x1" in printed


def test_sqlite3_output_with_input_copy_and_colored(tmp_path: pathlib.Path, bags_dir: pathlib.Path,
                                                    tool_args: list[str], estimator: DepthEstimator) -> None:
    output = tmp_path / "out"
    code, out, err = run_tool([str(bags_dir / "tum_rgbd"), "-o", str(output), "--storage", "sqlite3",
                               "--copy-input", "--colored", *tool_args])
    assert code == 0, out + err
    assert sorted(p.suffix for p in output.iterdir()) == [".db3", ".yaml"]
    inputs = raw_messages(bags_dir / "tum_rgbd")
    copied = raw_messages(output)
    assert set(copied) == set(inputs) | {
        "/camera/color/depth/image", "/camera/color/depth/camera_info", "/camera/color/points",
        "/camera/color/depth/colored"}
    for topic, recorded in inputs.items():  # copied byte for byte, same bag time
        assert copied[topic] == recorded
    messages = {m.topic: m for m in read_bag(output)}
    colored = messages["/camera/color/depth/colored"].msg
    assert (colored.encoding, colored.height, colored.width) == ("bgr8", 480, 640)
    [camera] = read_bag(bags_dir / "tum_rgbd", topics=["/camera/color/image_raw"])
    np.testing.assert_array_equal(float_image(messages["/camera/color/depth/image"].msg),
                                  expected_depth(estimator, camera.msg))


def test_no_camera_info_writes_depth_without_cloud(tmp_path: pathlib.Path, bags_dir: pathlib.Path,
                                                   tool_args: list[str]) -> None:
    bag = write_bag(tmp_path / "no_info", read_bag(bags_dir / "tum_rgbd", topics=["/camera/color/image_raw"]))
    code, out, err = run_tool([str(bag), "-o", str(tmp_path / "out"), "--summary-json",
                               str(tmp_path / "summary.json"), *tool_args])
    assert code == 0, out + err
    assert [m.topic for m in read_bag(tmp_path / "out")] == ["/camera/color/depth/image"]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["depth_written"] == 1 and summary["clouds_written"] == 0
    assert summary["clouds_skipped"] == {"the bag has no CameraInfo for this camera": 1}
    assert "no point cloud for 1 frame(s): the bag has no CameraInfo for this camera" in out
    assert "CameraInfo none (the bag has no CameraInfo topic: depth only, no point cloud)" in out


def test_refuses_to_overwrite_unless_told(tmp_path: pathlib.Path, bags_dir: pathlib.Path,
                                          tool_args: list[str]) -> None:
    output = tmp_path / "out"
    output.mkdir()
    (output / "metadata.yaml").write_text("precious: true\n")
    code, out, err = run_tool([str(bags_dir / "tum_rgbd"), "-o", str(output), *tool_args])
    assert code == 1
    assert err.strip() == f"bag_to_depth: error: output {output} already exists; pass --overwrite to replace it"
    assert (output / "metadata.yaml").read_text() == "precious: true\n"
    code, out, err = run_tool([str(bags_dir / "tum_rgbd"), "-o", str(output), "--overwrite", *tool_args])
    assert code == 0, out + err
    assert {m.topic for m in read_bag(output)} == {
        "/camera/color/depth/image", "/camera/color/depth/camera_info", "/camera/color/points"}


def test_overwrite_never_deletes_a_folder_that_is_not_a_bag(tmp_path: pathlib.Path, bags_dir: pathlib.Path,
                                                            tool_args: list[str]) -> None:
    output = tmp_path / "home"
    output.mkdir()
    (output / "notes.txt").write_text("keep me")
    code, _, err = run_tool([str(bags_dir / "tum_rgbd"), "-o", str(output), "--overwrite", *tool_args])
    assert code == 1 and "not part of a bag (notes.txt); not deleting it" in err
    assert (output / "notes.txt").read_text() == "keep me"


def test_output_may_not_replace_the_input(tmp_path: pathlib.Path, bags_dir: pathlib.Path,
                                          tool_args: list[str]) -> None:
    bag = write_bag(tmp_path / "in", read_bag(bags_dir / "tum_rgbd"))
    code, _, err = run_tool([str(bag), "-o", str(bag), "--overwrite", *tool_args])
    assert code == 1 and "would replace the input bag" in err
    assert read_bag(bag)


def test_params_file_and_overrides(tmp_path: pathlib.Path, bags_dir: pathlib.Path, tool_args: list[str]) -> None:
    params = tmp_path / "params.yaml"
    params.write_text("/**:\n  ros__parameters:\n    input_size: 140\n    cloud_stride: 4\n    use_sim_time: true\n")
    summary_path = tmp_path / "summary.json"
    code, out, err = run_tool([str(bags_dir / "tum_rgbd"), "-o", str(tmp_path / "out"), "--params-file", str(params),
                               "--summary-json", str(summary_path), *tool_args, "--input-size", "112"])
    assert code == 0, out + err
    assert json.loads(summary_path.read_text())["model"]["input_size"] == "112"  # the option beats the file
    cloud = next(m.msg for m in read_bag(tmp_path / "out") if m.topic == "/camera/color/points")
    assert (cloud.height, cloud.width) == (120, 160)  # cloud_stride 4 from the file


def test_invalid_parameter_is_refused_with_the_reason(tmp_path: pathlib.Path, bags_dir: pathlib.Path,
                                                      tool_args: list[str]) -> None:
    code, _, err = run_tool([str(bags_dir / "tum_rgbd"), "-o", str(tmp_path / "out"), *tool_args,
                             "--input-size", "100"])
    assert code == 1
    assert err.strip() == ("bag_to_depth: error: parameter input_size=100 refused: "
                           "must be a multiple of 14 (the ViT patch size)")
    assert not (tmp_path / "out").exists()


def test_relative_model_writes_relative_depth_only(tmp_path: pathlib.Path, bags_dir: pathlib.Path,
                                                   tool_args: list[str]) -> None:
    code, out, err = run_tool([str(bags_dir / "tum_rgbd"), "-o", str(tmp_path / "out"), *tool_args,
                               "--model-type", "relative"])
    assert code == 0, out + err
    [relative] = read_bag(tmp_path / "out")
    assert relative.topic == "/camera/color/depth/relative"
    assert (relative.msg.encoding, relative.msg.height, relative.msg.width) == ("32FC1", 480, 640)
    expected = DepthEstimator.random(encoder="vits", model_type="relative", device="cpu", precision="fp32",
                                     backend="torch")
    [camera] = read_bag(bags_dir / "tum_rgbd", topics=["/camera/color/image_raw"])
    image, order = image_msg_to_array(camera.msg)
    np.testing.assert_array_equal(float_image(relative.msg), expected.infer(image, input_size=98, color_order=order))
    assert "only <ns>/depth/relative (unitless inverse depth) is written" in out
