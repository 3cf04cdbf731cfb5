"""config/fastdds_large_data.xml over real Fast DDS (the rmw_fastrtps wheels): two processes, a publisher of a 15 MB
PointCloud2 and a raw subscriber, each started with its own environment (docs/large_data.md).

* profile on both sides (FASTDDS_DEFAULT_PROFILES_FILE + ROS_AUTOMATIC_DISCOVERY_RANGE=SYSTEM_DEFAULT): delivered,
  and the participant holds no UDP/TCP socket (shared memory only: nothing can leave the host);
* unfragmented: gdb counts the publisher's calls of SharedMemTransport::send (one per RTPS message) while it
  publishes: a few with the profile, hundreds (64 KB fragments) with the plain LOCALHOST setup, and hundreds with
  the profile under ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST (rmw_fastrtps appends its own 64 KB transports);
* mixed (one side with the profile, the other plain LOCALHOST): they never discover each other, either way round.

This file is also the child program: `python test_large_data_transport.py pub|sub SIZE_MB COUNT`.
"""

import json
import os
import pathlib
import shutil
import subprocess
import sys
import time
import xml.etree.ElementTree as ElementTree

import pytest

PROFILE = pathlib.Path(__file__).resolve().parents[2] / "config" / "fastdds_large_data.xml"
pytestmark = pytest.mark.ros
SIZE_MB = 15.0
MATCH_TIMEOUT_S = 20.0
MIXED_WAIT_S = 6.0
SHM_SEND = ("eprosima::fastdds::rtps::SharedMemTransport::send(std::vector<eprosima::fastdds::rtps::NetworkBuffer, "
            "std::allocator<eprosima::fastdds::rtps::NetworkBuffer> > const&, unsigned int, "
            "eprosima::fastdds::rtps::LocatorsIterator*, eprosima::fastdds::rtps::LocatorsIterator*, "
            "std::chrono::time_point<std::chrono::_V2::steady_clock, std::chrono::duration<long, "
            "std::ratio<1l, 1000000000l> > > const&)")
# gdb: count the calls of SHM_SEND (a breakpoint that never stops), write their times when the program exits.
GDB_COUNTER = """
import gdb, json, time
hits = []
class Count(gdb.Breakpoint):
    def stop(self):
        hits.append(time.monotonic())
        return False
gdb.execute("set pagination off")
gdb.execute("set breakpoint pending on")
Count({spec!r})
gdb.execute("run")
open({out!r}, "w").write(json.dumps(hits))
"""


# ----------------------------------------------------------------------------------------------- the child program
def inet_sockets() -> int:
    """How many of this process's sockets are UDP or TCP (IPv4 or IPv6)."""
    inodes = set()
    for fd in pathlib.Path("/proc/self/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    count = 0
    for table in ("udp", "udp6", "tcp", "tcp6"):
        path = pathlib.Path("/proc/net") / table
        if path.exists():
            count += sum(1 for line in path.read_text().splitlines()[1:] if line.split()[9] in inodes)
    return count


def child(role: str, size_mb: float, count: int) -> None:
    """pub: wait for a subscriber, publish `count` clouds of `size_mb` MB one second apart (a JSON line before each);
    sub: receive them raw, then one JSON line with the sizes and this process's UDP/TCP socket count."""
    import rclpy
    from rclpy.node import Node
    from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import PointCloud2

    qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1, reliability=ReliabilityPolicy.RELIABLE)
    rclpy.init()
    node = Node(f"large_data_{role}")
    try:
        if role == "pub":
            publisher = node.create_publisher(PointCloud2, "large_data_probe", qos)
            msg = PointCloud2(height=1, width=int(size_mb * 1e6) // 16, point_step=16)
            msg.row_step = msg.width * msg.point_step
            msg.data = bytes(msg.row_step)
            deadline = time.monotonic() + MATCH_TIMEOUT_S
            while publisher.get_subscription_count() == 0 and time.monotonic() < deadline:
                time.sleep(0.05)
            print(json.dumps({"matched": publisher.get_subscription_count()}), flush=True)
            if publisher.get_subscription_count() == 0:
                return
            time.sleep(1.0)
            for _ in range(count):
                print(json.dumps({"publish_at": time.monotonic()}), flush=True)
                publisher.publish(msg)
                time.sleep(1.0)
        else:
            sizes: list[int] = []
            node.create_subscription(PointCloud2, "large_data_probe", lambda raw: sizes.append(len(raw)), qos,
                                     raw=True)
            deadline = time.monotonic() + float(os.environ.get("LARGE_DATA_PROBE_WAIT_S", "60"))
            while len(sizes) < count and time.monotonic() < deadline:
                rclpy.spin_once(node, timeout_sec=0.1)
            print(json.dumps({"sizes": sizes, "inet_sockets": inet_sockets()}), flush=True)
    finally:
        node.destroy_node()
        rclpy.try_shutdown()


# ----------------------------------------------------------------------------------------------- the tests
def profile_env(**extra: str) -> dict:
    """The environment docs/large_data.md gives the node and its consumers."""
    return {**os.environ, "FASTDDS_DEFAULT_PROFILES_FILE": str(PROFILE),
            "ROS_AUTOMATIC_DISCOVERY_RANGE": "SYSTEM_DEFAULT", **extra}


def localhost_env(**extra: str) -> dict:
    """A plain participant of this test run: LOCALHOST, no profile."""
    env = dict(os.environ, ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST", **extra)
    env.pop("FASTDDS_DEFAULT_PROFILES_FILE", None)
    env.pop("FASTDDS_BUILTIN_TRANSPORTS", None)
    return env


def run_pair(pub_env: dict, sub_env: dict, count: int = 2, gdb_hits: pathlib.Path = None) -> tuple[list, dict]:
    """The publisher's JSON lines and the subscriber's result; with `gdb_hits`, the publisher runs under gdb, which
    writes there the times of its SharedMemTransport::send calls."""
    cmd = [sys.executable, __file__]
    sub = subprocess.Popen(cmd + ["sub", str(SIZE_MB), str(count)], env=sub_env, stdout=subprocess.PIPE, text=True)
    pub_cmd = cmd + ["pub", str(SIZE_MB), str(count)]
    if gdb_hits is not None:
        script = gdb_hits.with_suffix(".py")
        script.write_text(GDB_COUNTER.format(spec=SHM_SEND, out=str(gdb_hits)))
        pub_cmd = ["gdb", "-q", "-batch", "-x", str(script), "--args"] + pub_cmd
    try:
        pub = subprocess.run(pub_cmd, env=pub_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                             timeout=120)
        out, _ = sub.communicate(timeout=90)
    finally:
        sub.kill()
    pub_lines = [json.loads(line) for line in pub.stdout.splitlines() if line.startswith("{")]
    (result,) = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    return pub_lines, result


def test_the_profile_is_shared_memory_only_and_sized_for_the_clouds():
    """Before any process runs with it under SYSTEM_DEFAULT: no UDP/TCP transport (so no multicast, nothing leaves
    the host), builtin transports off, room for a 1280x720 colored cloud (29.5 MB) unfragmented and for a few in
    flight; installed beside the YAML presets."""
    namespace = {"dds": "http://www.eprosima.com"}
    root = ElementTree.parse(PROFILE).getroot()
    descriptors = root.findall("dds:profiles/dds:transport_descriptors/dds:transport_descriptor", namespace)
    assert [d.findtext("dds:type", namespaces=namespace) for d in descriptors] == ["SHM"]
    (participant,) = root.findall("dds:profiles/dds:participant", namespace)
    assert participant.get("is_default_profile") == "true"
    assert participant.findtext("dds:rtps/dds:useBuiltinTransports", namespaces=namespace) == "false"
    used = [e.text for e in participant.findall("dds:rtps/dds:userTransports/dds:transport_id", namespace)]
    assert used == [descriptors[0].findtext("dds:transport_id", namespaces=namespace)]
    max_message = int(descriptors[0].findtext("dds:maxMessageSize", namespaces=namespace))
    segment = int(descriptors[0].findtext("dds:segment_size", namespaces=namespace))
    assert max_message >= 1280 * 720 * 32 + 1024 and segment >= 4 * max_message
    setup = (PROFILE.parents[1] / "setup.py").read_text()
    assert 'glob("config/*.xml")' in setup


def test_a_15mb_cloud_crosses_with_the_profile_on_both_sides_and_no_socket_is_opened():
    pub_lines, result = run_pair(profile_env(), profile_env())
    assert pub_lines[0] == {"matched": 1}
    assert len(result["sizes"]) == 2 and all(SIZE_MB * 1e6 < size < SIZE_MB * 1e6 + 1000 for size in result["sizes"])
    assert result["inet_sockets"] == 0, "the profile's participant opened a UDP/TCP socket"


def _shm_sends_per_sample(pub_env: dict, tmp_path: pathlib.Path, name: str) -> list[int]:
    hits_path = tmp_path / f"{name}.json"
    pub_lines, result = run_pair(pub_env, pub_env if "FASTDDS_DEFAULT_PROFILES_FILE" in pub_env else localhost_env(),
                                 gdb_hits=hits_path)
    assert len(result["sizes"]) == 2, (name, pub_lines, result)
    hits = json.loads(hits_path.read_text())
    starts = [line["publish_at"] for line in pub_lines if "publish_at" in line]
    return [sum(1 for t in hits if start <= t < start + 0.9) for start in starts]


def test_the_profile_sends_a_15mb_sample_whole_where_localhost_fragments_it(tmp_path):
    """SharedMemTransport::send calls of the publisher in the 0.9 s after each publish (the sample plus a
    heartbeat or two; 64 KB fragments would be 230 or more)."""
    if shutil.which("gdb") is None:
        pytest.skip("gdb is not installed")
    whole = _shm_sends_per_sample(profile_env(), tmp_path, "profile")
    fragmented = _shm_sends_per_sample(localhost_env(), tmp_path, "localhost")
    overridden = _shm_sends_per_sample(profile_env(ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST"), tmp_path, "overridden")
    print(f"\nSHM sends per 15 MB sample: profile {whole}, LOCALHOST {fragmented}, profile + LOCALHOST {overridden}")
    assert max(whole) <= 10
    assert min(fragmented) >= 200 and min(overridden) >= 200


def test_a_participant_with_the_profile_and_one_without_never_discover_each_other():
    """The profile has no UDP; a LOCALHOST participant discovers over UDP only (its SHM multicast is cleared by
    rmw_fastrtps): no fallback, either way round. Every consumer needs the profile."""
    wait = {"LARGE_DATA_PROBE_WAIT_S": str(MIXED_WAIT_S)}
    for pub_env, sub_env in ((profile_env(), localhost_env(**wait)), (localhost_env(), profile_env(**wait))):
        start = time.monotonic()
        pub_lines, result = run_pair(pub_env, sub_env, count=1)
        assert pub_lines == [{"matched": 0}] and result["sizes"] == [], (pub_lines, result)
        assert time.monotonic() - start < MATCH_TIMEOUT_S + 30


if __name__ == "__main__":
    child(sys.argv[1], float(sys.argv[2]), int(sys.argv[3]))
