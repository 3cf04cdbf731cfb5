"""dav2_bags on Ray: one task per bag, run by actors that keep the model loaded from bag to bag.

Imported only with `--ray` (Ray is the optional `fleet` extra: `pip install dav2_ros[fleet]`). Every node must
have dav2_ros installed (the same version) and see the inputs and OUTPUT_DIR at the same paths (a shared file
system): the driver decides what to skip from the done-markers there, the actors write the bags there, with the
rules of `bag_batch` (partial folder, marker, rename; retries of transient errors inside the actor).

Sizing (`--workers auto`): one actor per GPU of the cluster (`num_gpus=1` each; Ray sets CUDA_VISIBLE_DEVICES,
so each actor's `cuda` is its own GPU) when the cluster has GPUs and the device is auto/cuda; else the cluster's
CPUs divided by the threads per actor (`num_cpus` each). The GPU path follows Ray's documentation and has not
been run (the machine this was written on has no GPU).
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
from collections.abc import Callable, Sequence
from typing import Any

import ray
from ray.util import ActorPool

from dav2_ros.offline.bag_batch import (BagJob, BagResult, BatchError, ModelCache, convert_one, largest_first,
                                        worker_args)
from dav2_ros.offline.fleet import Plan, plan_workers
from dav2_ros.pipeline.settings import NodeSettings

LOG = logging.getLogger("dav2_bags")


class BagActor:
    """A Ray actor: the options, and the model once its first bag has loaded it."""

    def __init__(self, args: argparse.Namespace, options: dict[str, Any], retries: int, threads: int | None,
                 name: str) -> None:
        self._args = worker_args(args, threads, None)
        self._options, self._retries, self._name = options, retries, name
        self._cache = ModelCache()

    def convert(self, job: BagJob) -> BagResult:
        """One bag (never raises for a bad bag; see `convert_one`)."""
        return convert_one(job, self._args, self._cache, self._options, self._retries, worker=self._name)


def connect(address: str) -> bool:
    """Start (`local`) or join (`auto`, an address) a Ray cluster; True when this call started Ray."""
    if ray.is_initialized():
        return False
    ray.init(address=address, logging_level=logging.WARNING, include_dashboard=False, ignore_reinit_error=True)
    return True


def plan_actors(workers: str, threads: str, bags: int, settings: NodeSettings,
                resources: dict[str, float]) -> tuple[Plan, bool]:
    """Actors, threads per actor, and whether each gets a GPU, from the cluster's resources (`plan_workers`'s
    rules on the cluster's CPUs and GPUs; Ray gives each actor its GPU, so no actor is named a cuda:N)."""
    gpus = int(resources.get("GPU", 0)) if settings.device in ("auto", "cuda") else 0
    cpus = int(resources.get("CPU", 1))
    plan = plan_workers(workers, threads, bags, settings.device, settings.num_threads, cpus=max(1, cpus), gpus=gpus)
    return dataclasses.replace(plan, devices=(None,) * plan.workers), bool(gpus)


def run_ray(jobs: Sequence[BagJob], args: argparse.Namespace, options: dict[str, Any], retries: int, address: str,
            workers: str, threads: str, settings: NodeSettings,
            on_result: Callable[[BagResult], None]) -> tuple[Plan, bool]:
    """Convert `jobs` on Ray actors (largest bags first); returns the plan and False when a fatal error (the
    model does not load) stopped the run. Bags not submitted by then are reported as not started."""
    try:
        started_here = connect(address)
    except (ConnectionError, RuntimeError, ValueError) as error:
        raise BatchError(f"cannot connect to Ray at {address!r}: {error}") from None
    try:
        plan, with_gpu = plan_actors(workers, threads, len(jobs), settings, ray.cluster_resources())
        actor = ray.remote(num_cpus=plan.threads or 1, num_gpus=1 if with_gpu else 0)(BagActor)
        actors = [actor.remote(args, options, retries, plan.threads, f"actor {i}") for i in range(plan.workers)]
        pool = ActorPool(actors)
        waiting = largest_first(jobs)
        ok = True
        while waiting and pool.has_free():
            job = waiting.pop(0)
            pool.submit(lambda a, j: a.convert.remote(j), job)
        while pool.has_next():
            result = pool.get_next_unordered()
            on_result(result)
            if result.status == "fatal":
                ok = False
                waiting.clear()
            if waiting:
                job = waiting.pop(0)
                pool.submit(lambda a, j: a.convert.remote(j), job)
        return plan, ok
    finally:
        if started_here:
            ray.shutdown()
