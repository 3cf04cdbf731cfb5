"""The start-up warm-up runs on the worker thread, the one that runs every frame (cuBLAS/cuDNN handles, compiled
and captured graphs are per thread), and still ends the start-up: "model ready" comes after it, and a warm-up that
fails stops the node with its one-line reason and leaves no worker thread behind. The real node, in-process."""

from __future__ import annotations

import threading

import pytest

from node_harness import InProcessNode

pytestmark = pytest.mark.ros

PARAMS = {"allow_random_weights": True, "input_size": 70, "device": "cpu", "precision": "fp32",
          "weights_dir": "/nonexistent/dav2_weights", "warmup_width": 96, "warmup_height": 72}


def worker_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "dav2_frame_worker" and t.is_alive()]


def test_the_warm_up_runs_on_the_frame_worker_thread(monkeypatch):
    from dav2_ros.node import depth_node

    threads: list[str] = []
    real_warm_up = depth_node.warm_up

    def warm_up(processor, settings):  # the real warm-up; records the thread that runs it
        threads.append(threading.current_thread().name)
        return real_warm_up(processor, settings)

    monkeypatch.setattr(depth_node, "warm_up", warm_up)
    with InProcessNode(PARAMS, namespace="/dav2_warm_up_thread") as node:
        assert threads == ["dav2_frame_worker"]
        assert node.node._worker is not None and not node.node._worker.stopping


def test_a_failed_warm_up_stops_the_start_up_and_the_worker():
    from dav2_ros.pipeline.builders import StartupError

    before = len(worker_threads())
    # a 8192x16 frame is more elongated than the model takes: the warm-up's frame is refused
    with pytest.raises(StartupError, match=r"warm-up with a 8192x16 frame failed: .*more elongated"):
        with InProcessNode(dict(PARAMS, warmup_width=8192, warmup_height=16), namespace="/dav2_warm_up_fails"):
            pass
    assert len(worker_threads()) == before, "the start-up left a frame worker running"


def test_the_managed_node_warms_up_on_its_worker_and_leaves_no_worker_behind(tmp_path, monkeypatch):
    """configure starts the worker and warms up on it; the first activate keeps that thread; cleanup (also right
    after configure) and deactivate stop it: across the transitions exactly one worker runs while configured."""
    from dav2_ros.node import depth_node
    from dav2_ros.node.managed_depth_node import ManagedDepthNode
    from lifecycle_client import ACTIVATE, CLEANUP, CONFIGURE, DEACTIVATE, LifecycleClient
    from node_harness import DdsClient

    threads: list[str] = []
    real_warm_up = depth_node.warm_up

    def warm_up(processor, settings):
        threads.append(threading.current_thread().name)
        return real_warm_up(processor, settings)

    monkeypatch.setattr(depth_node, "warm_up", warm_up)
    before = len(worker_threads())
    params = dict(PARAMS, weights_dir=str(tmp_path))
    with InProcessNode(params, namespace="/dav2_warm_up_managed", node_type=ManagedDepthNode) as node, \
            DdsClient("dav2_warm_up_client") as client:
        lifecycle = LifecycleClient(client, node.fqn, 60.0)
        assert len(worker_threads()) == before  # unconfigured: nothing runs
        assert lifecycle.change_state(CONFIGURE)
        assert threads == ["dav2_frame_worker"] and len(worker_threads()) == before + 1
        assert lifecycle.change_state(CLEANUP)
        assert len(worker_threads()) == before, "cleanup left the configure's worker running"
        assert lifecycle.change_state(CONFIGURE) and lifecycle.change_state(ACTIVATE)
        assert len(worker_threads()) == before + 1, "activate started a second worker"
        assert lifecycle.change_state(DEACTIVATE)
        assert len(worker_threads()) == before
        assert lifecycle.change_state(ACTIVATE) and len(worker_threads()) == before + 1
        assert lifecycle.change_state(DEACTIVATE) and lifecycle.change_state(CLEANUP)
        assert len(worker_threads()) == before
        assert threads == ["dav2_frame_worker"] * 2
        lifecycle.close()
