"""dav2_bags: many bags in worker processes give what bag_to_depth gives on each bag alone; bad bags fail alone with
their reason; finished bags are skipped; a killed run resumes; transient errors are retried; Ray (when installed)
follows the same rules.

The bundled real bags, copied into a tree in tmp_path, plus variants written with rosbags: a truncated copy, one
without a camera topic, one without CameraInfo, and 40-frame streams for the interrupted run. Stand-in weights at
input_size 70, backend torch fp32 (bit-exact between processes).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import time

import pytest

from bags import looped, raw_messages, read_bag, write_bag
from standin import offline_args, run_main, standin_params
from dav2_ros.offline import bag_batch, bag_to_depth, fleet
from dav2_ros.offline.bag_batch import BagJob, BatchError, ModelCache
from project_paths import PROJECT_DIR

GOOD = {"a/fiducial_board_611": "fiducial_board_611", "a/fiducial_board_611_raw": "fiducial_board_611_raw",
        "b/c/tum_rgbd": "tum_rgbd"}


@pytest.fixture(scope="module")
def standin(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """bag_to_depth's options for quick, deterministic runs (stand-in weights, CPU torch fp32, input_size 70)."""
    return ["--no-progress", *offline_args(standin_params(tmp_path_factory.mktemp("no_weights"), input_size=70))]


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory, bags_dir: pathlib.Path) -> pathlib.Path:
    """The bags to convert: the three real ones, in sub-folders, and three bad or odd ones."""
    root = tmp_path_factory.mktemp("bags")
    for rel, name in GOOD.items():
        shutil.copytree(bags_dir / name, root / rel)
    bad = root / "bad"
    shutil.copytree(bags_dir / "tum_rgbd", bad / "truncated")
    [mcap] = (bad / "truncated").glob("*.mcap")
    data = mcap.read_bytes()
    mcap.write_bytes(data[: len(data) * 2 // 3])
    write_bag(bad / "no_camera", read_bag(bags_dir / "fiducial_board_611_raw",
                                          topics=["/raspicam_node/camera/camera_info"]))
    write_bag(bad / "no_info", read_bag(bags_dir / "tum_rgbd", topics=["/camera/color/image_raw"]))
    return root


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory, tree: pathlib.Path, standin: list[str]) -> dict[str, dict]:
    """bag_to_depth run on each good bag (and the one without CameraInfo) alone: rel path -> its messages."""
    out = tmp_path_factory.mktemp("reference")
    found = {}
    for rel in [*GOOD, "bad/no_info"]:
        code, stdout, stderr = run_main(bag_to_depth, [str(tree / rel), "-o", str(out / rel), *standin])
        assert code == 0, stdout + stderr
        found[rel] = raw_messages(out / rel)
    return found


@pytest.fixture(scope="module")
def first_run(tmp_path_factory: pytest.TempPathFactory, tree: pathlib.Path,
              standin: list[str]) -> tuple[pathlib.Path, int, str, dict]:
    """dav2_bags on the whole tree with two workers: (output folder, exit code, stdout, summary JSON)."""
    out = tmp_path_factory.mktemp("fleet") / "out"
    summary = out.parent / "summary.json"
    code, stdout, stderr = run_main(fleet, [str(tree), "-o", str(out), "--workers", "2", "--summary", str(summary),
                                            *standin])
    assert "Traceback" not in stderr, stderr
    return out, code, stdout, json.loads(summary.read_text())


def test_outputs_equal_bag_to_depth_on_each_bag_alone(first_run: tuple, reference: dict[str, dict]) -> None:
    out, _, _, summary = first_run
    for rel, expected in reference.items():  # same topics, counts, bag times and CDR bytes (depth, cloud, info)
        got = raw_messages(out / rel)  # the inputs' paths below their common folder
        assert got == expected, rel
        assert sum(len(m) for m in got.values()) > 0
    assert summary["workers"] == 2 and summary["threads_per_worker"] == 1
    results = {pathlib.Path(r["input"]).name: r for r in summary["results"]}
    assert all(results[name]["status"] == "done" and results[name]["frames"] == 1 for name in GOOD.values())
    [file] = (out / "b" / "c" / "tum_rgbd").glob("*.mcap")  # named as bag_to_depth names it
    assert file.name == "tum_rgbd.mcap"
    assert not list(out.rglob(bag_batch.PARTIAL_DIR))  # nothing unfinished is left
    marker = json.loads((out / "b" / "c" / "tum_rgbd.done.json").read_text())
    assert marker["summary"]["depth_written"] == 1 and marker["input_bytes"] > 0


def test_bad_bags_fail_alone_with_their_reason(first_run: tuple) -> None:
    out, code, stdout, summary = first_run
    assert code == fleet.EXIT_SOME_FAILED
    assert summary["bags"] == {"total": 6, "done": 4, "skipped": 0, "failed": 2, "interrupted": 0}
    reasons = {pathlib.Path(f["input"]).name: f["reason"] for f in summary["failures"]}
    assert set(reasons) == {"truncated", "no_camera"}
    assert "cannot open bag" in reasons["truncated"] or "cannot read bag" in reasons["truncated"]
    assert "no camera image topic" in reasons["no_camera"]
    results = {pathlib.Path(r["input"]).name: r for r in summary["results"]}
    assert results["truncated"]["attempts"] == 1  # a corrupt bag is not retried
    assert results["no_info"]["status"] == "done"  # as bag_to_depth: depth without clouds, said in a note
    assert results["no_info"]["notes"] == ["no point cloud for 1 frame(s): the bag has no CameraInfo for this camera"]
    assert not (out / "bad" / "truncated").exists() and not (out / "bad" / "truncated.done.json").exists()
    assert "FAILED:   " in stdout and "4 done, 0 skipped (already finished), 2 failed" in stdout
    assert summary["frames"] == 4 and summary["frames_per_s"] > 0


def test_second_run_skips_what_is_done_and_options_change_needs_overwrite(
        first_run: tuple, tree: pathlib.Path, standin: list[str]) -> None:
    out = first_run[0]
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*.mcap")}
    code, stdout, _ = run_main(fleet, [str(tree), "-o", str(out), *standin])
    assert code == fleet.EXIT_SOME_FAILED  # the two bad bags fail again
    assert "0 done, 4 skipped (already finished), 2 failed" in stdout
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*.mcap")} == before
    one = str(tree / "b" / "c" / "tum_rgbd")
    code, stdout, _ = run_main(fleet, [one, "-o", str(out / "b" / "c"), "--colored", *standin])
    assert code == fleet.EXIT_SOME_FAILED and "made with other options; pass --overwrite" in stdout


def test_overwrite_redoes_a_finished_bag(tmp_path: pathlib.Path, tree: pathlib.Path, standin: list[str],
                                         reference: dict[str, dict]) -> None:
    bag = str(tree / "b" / "c" / "tum_rgbd")
    out = tmp_path / "out"
    assert run_main(fleet, [bag, "-o", str(out), *standin])[0] == 0
    code, stdout, _ = run_main(fleet, [bag, "-o", str(out), "--overwrite", *standin])
    assert code == 0 and "1 done, 0 skipped" in stdout
    assert raw_messages(out / "tum_rgbd") == reference["b/c/tum_rgbd"]


def test_killed_run_resumes_and_completes(tmp_path: pathlib.Path, bags_dir: pathlib.Path,
                                          standin: list[str]) -> None:
    frame = read_bag(bags_dir / "tum_rgbd", topics=["/camera/color/image_raw", "/camera/color/camera_info"])
    inputs = tmp_path / "in"
    streams = [write_bag(inputs / f"stream_{i}", looped(frame, 40, period_ns=10**8, start_ns=(i + 1) * 10**12))
               for i in range(3)]
    out = tmp_path / "out"
    command = [sys.executable, "-m", "dav2_ros.offline.fleet", str(inputs), "-o", str(out), "--workers", "1",
               *standin]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(PROJECT_DIR), os.environ.get("PYTHONPATH")]))}
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=str(PROJECT_DIR))
    try:
        deadline = time.monotonic() + 180.0
        while not list(out.glob("*.done.json")):
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "no bag finished within 180 s"
            time.sleep(0.05)
        process.send_signal(signal.SIGKILL)  # the driver dies at once; its worker dies with it
        process.communicate(timeout=30.0)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    time.sleep(1.0)  # the worker's parent-death signal
    assert len(list(out.glob("*.done.json"))) < 3, "the run ended before it was killed: make the streams longer"
    # the resumed run: in a fresh process, which also shows that no Ray module is imported without --ray
    resumed = subprocess.run([sys.executable, "-c", "import sys; from dav2_ros.offline import fleet; "
                              "code = fleet.main(sys.argv[1:]); assert 'ray' not in sys.modules; sys.exit(code)",
                              *command[3:]], capture_output=True, text=True, env=env, cwd=str(PROJECT_DIR),
                             timeout=300)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    done = len([line for line in resumed.stdout.splitlines() if "done," in line])
    assert done == 1 and "skipped (already finished)" in resumed.stdout
    assert not list(out.rglob(bag_batch.PARTIAL_DIR))
    for stream in streams:  # every bag complete and equal to bag_to_depth on it alone
        expected = tmp_path / "expected" / stream.name
        assert run_main(bag_to_depth, [str(stream), "-o", str(expected), *standin])[0] == 0
        assert raw_messages(out / stream.name) == raw_messages(expected), stream.name
        assert len(raw_messages(expected)["/camera/color/depth/image"]) == 40


def test_transient_errors_are_retried(tmp_path: pathlib.Path, tree: pathlib.Path, standin: list[str],
                                      monkeypatch: pytest.MonkeyPatch, reference: dict[str, dict]) -> None:
    args = fleet.build_parser().parse_args([str(tree), "-o", str(tmp_path), *standin])
    options = bag_batch.fingerprint(args)
    real_run, calls = bag_to_depth.run, []

    def flaky(*a, **k):  # the first try meets a network file system hiccup
        calls.append(1)
        if len(calls) == 1:
            raise OSError(5, "Input/output error")
        return real_run(*a, **k)

    monkeypatch.setattr(bag_to_depth, "run", flaky)
    monkeypatch.setattr(bag_batch, "RETRY_DELAY_S", 0.0)
    job = BagJob(0, tree / "b" / "c" / "tum_rgbd", tmp_path / "tum_rgbd")
    result = bag_batch.convert_one(job, args, ModelCache(), options, retries=2)
    assert (result.status, result.attempts) == ("done", 2)
    assert raw_messages(job.output) == reference["b/c/tum_rgbd"]
    calls.clear()
    job = BagJob(1, tree / "b" / "c" / "tum_rgbd", tmp_path / "again")
    result = bag_batch.convert_one(job, args, ModelCache(), options, retries=0)
    assert (result.status, result.attempts) == ("failed", 1)
    assert "OSError: [Errno 5] Input/output error" in result.reason


def test_finding_bags_and_their_outputs(tmp_path: pathlib.Path, tree: pathlib.Path) -> None:
    everything = bag_batch.find_bags([str(tree)])
    assert [p.relative_to(tree).as_posix() for p in everything] == [
        "a/fiducial_board_611", "a/fiducial_board_611_raw", "b/c/tum_rgbd", "bad/no_camera", "bad/no_info",
        "bad/truncated"]
    [mcap] = (tree / "b" / "c" / "tum_rgbd").glob("*.mcap")
    single = tmp_path / "single" / "take1.mcap"
    single.parent.mkdir()
    shutil.copy(mcap, single)
    listed = tmp_path / "bags.txt"
    listed.write_text(f"# a list\nsingle/take1.mcap\n{tree / 'a' / 'fiducial_board_611'}\n\n")
    found = bag_batch.find_bags([str(tree / "a" / "*_raw"), str(tree / "a" / "fiducial_board_611")], [listed])
    assert found == [tree / "a" / "fiducial_board_611_raw", tree / "a" / "fiducial_board_611", single.resolve()]
    jobs = bag_batch.plan_outputs(found, tmp_path / "out")
    root = pathlib.Path(os.path.commonpath([str(tree / "a"), str(single.parent)]))  # the deepest common folder
    assert [j.output for j in jobs] == [tmp_path / "out" / (tree / "a").relative_to(root) / "fiducial_board_611_raw",
                                        tmp_path / "out" / (tree / "a").relative_to(root) / "fiducial_board_611",
                                        tmp_path / "out" / single.parent.relative_to(root) / "take1"]
    assert bag_batch.find_bags([str(tree)], exclude=[tree / "bad"])[-1] == tree / "b" / "c" / "tum_rgbd"
    with pytest.raises(BatchError, match="does not exist"):
        bag_batch.find_bags([str(tmp_path / "nowhere")])
    with pytest.raises(BatchError, match="matches no bag"):
        bag_batch.find_bags([str(tmp_path / "nowhere*")])
    twin = tree / "a" / "fiducial_board_611.mcap"
    with pytest.raises(BatchError, match="would both be written to"):
        bag_batch.plan_outputs([tree / "a" / "fiducial_board_611", twin], tmp_path / "out")


def test_workers_and_threads() -> None:
    plan = fleet.plan_workers("auto", "auto", bags=6, device="cpu", cpus=2, gpus=0)  # measured: 1 x 2 beats 2 x 1
    assert (plan.workers, plan.threads) == (1, 2)
    plan = fleet.plan_workers("auto", "auto", bags=20, device="cpu", cpus=16, gpus=0)
    assert (plan.workers, plan.threads) == (8, 2)
    assert fleet.plan_workers("auto", "auto", bags=1, device="cpu", cpus=16, gpus=0).threads == 16  # one bag
    assert fleet.plan_workers("auto", "1", bags=6, device="cpu", cpus=2, gpus=0).workers == 2
    assert fleet.plan_workers("auto", "2", bags=6, device="cpu", cpus=8, gpus=0).workers == 4
    assert fleet.plan_workers("3", "auto", bags=6, device="cpu", cpus=2, gpus=0).workers == 3
    plan = fleet.plan_workers("auto", "auto", bags=6, device="auto", cpus=16, gpus=2)  # one worker per GPU
    assert (plan.workers, plan.devices, plan.threads) == (2, ("cuda:0", "cuda:1"), 8)
    plan = fleet.plan_workers("auto", "auto", bags=6, device="cpu", cpus=2, gpus=0, num_threads_param=2)
    assert (plan.workers, plan.threads) == (1, 2)
    with pytest.raises(BatchError, match="--workers expects auto or a positive number"):
        fleet.plan_workers("0", "auto", bags=1, device="cpu", cpus=2, gpus=0)


def test_bad_options_stop_before_any_bag(tmp_path: pathlib.Path, tree: pathlib.Path, standin: list[str]) -> None:
    code, _, err = run_main(fleet, [str(tmp_path / "nowhere"), "-o", str(tmp_path / "out"), *standin])
    assert code == fleet.EXIT_ERROR and err.strip() == f"dav2_bags: error: input {tmp_path / 'nowhere'} does not exist"
    code, _, err = run_main(fleet, [str(tree / "a"), "-o", str(tmp_path / "out"), *standin, "--param",
                                    "input_size=71"])  # not a multiple of 14: refused once, before any worker starts
    assert code == fleet.EXIT_ERROR and "input_size" in err and not (tmp_path / "out").exists()


def test_parser_shares_bag_to_depth_options() -> None:
    """Every option of bag_to_depth's conversion is dav2_bags' too, with the same default."""
    single = argparse.ArgumentParser()
    bag_to_depth.add_conversion_options(single)
    shared = {a.dest: a.default for a in single._actions if a.dest != "help"}
    batch = {a.dest: a.default for a in fleet.build_parser()._actions}
    assert shared.items() <= batch.items()


@pytest.mark.skipif(importlib.util.find_spec("ray") is None,
                    reason="Ray is not installed (pip install dav2_ros[fleet])")
def test_ray_local_gives_the_same_outputs_and_skips(tmp_path: pathlib.Path, tree: pathlib.Path,
                                                    standin: list[str], reference: dict[str, dict]) -> None:
    out = tmp_path / "out"
    inputs = [str(tree / "a"), str(tree / "bad" / "truncated")]
    code, stdout, err = run_main(fleet, [*inputs, "-o", str(out), "--ray", "local", "--workers", "2", *standin])
    assert code == fleet.EXIT_SOME_FAILED, stdout + err
    assert "2 done, 0 skipped (already finished), 1 failed" in stdout and "ray local, 2 worker(s)" in stdout
    assert "truncated" in stdout.split("FAILED:")[1]
    for rel in ("a/fiducial_board_611", "a/fiducial_board_611_raw"):
        assert raw_messages(out / "a" / pathlib.Path(rel).name) == reference[rel]
    code, stdout, _ = run_main(fleet, [*inputs, "-o", str(out), "--ray", "local", *standin])
    assert code == fleet.EXIT_SOME_FAILED and "0 done, 2 skipped" in stdout
