"""dav2_bags: bag_to_depth over many bags, in worker processes that each load the model once (or Ray actors).

    dav2_bags INPUT... -o OUTPUT_DIR [--list FILE] [--workers auto|N] [--threads auto|N] [--retries 2]
              [--overwrite] [--summary run.json] [--ray local|auto|ADDRESS] [every bag_to_depth option]

INPUT: a bag (rosbag2 folder, .mcap, .db3), a folder (every bag below it), or a glob (quote it; `**` allowed).
Each bag becomes the bag `bag_to_depth BAG -o OUTPUT_DIR/<its path>` would write (same options, same messages),
mirroring the bags' paths below their deepest common folder. Finished bags are skipped on the next run (see
`bag_batch` for what "finished" means); a bad bag fails alone, with its reason, and the run goes on.
Exit codes: 0 every bag done or skipped, 2 some bags failed, 1 nothing ran (bad options, no model), 130 Ctrl-C.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import dataclasses
import json
import logging
import multiprocessing
import os
import pathlib
import queue
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from tqdm import tqdm

from dav2_ros.command_line import run_command
from dav2_ros.offline import bag_to_depth
from dav2_ros.offline.bag_batch import (BagJob, BagResult, BatchError, ModelCache, classify, convert_one,
                                        find_bags, fingerprint, largest_first, plan_outputs, worker_args)
from dav2_ros.pipeline.settings import SettingsError

PROG = "dav2_bags"
EXIT_ERROR = 1
EXIT_SOME_FAILED = 2
EXIT_INTERRUPTED = 130
LOCK_NAME = ".dav2_bags.lock"
# Measured on the 2-core AMD EPYC (Zen 4) this was written on, shared with other jobs (benchmarks/bench_fleet.py,
# docs/fleet.md): 1 worker x 2 threads beat 2 workers x 1 thread in all three runs (input_size 70 and 266): two
# models load at once on the same cores, and two processes contend for cores already busy. So `auto` gives each
# worker two cores: 1 worker here, 8 on 16 cores.
CPU_THREADS_PER_WORKER = 2
LOG = logging.getLogger(PROG)


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface: the batch options, then bag_to_depth's own for every bag."""
    p = argparse.ArgumentParser(
        prog=PROG,
        description="Run bag_to_depth on many bags: each input bag becomes its own depth bag under OUTPUT_DIR, "
        "in worker processes (or Ray actors) that load the model once; finished bags are skipped on the next run.",
    )
    p.add_argument("inputs", nargs="*", metavar="INPUT",
                   help="bags (rosbag2 folders, .mcap, .db3), folders to search for bags, or glob patterns")
    p.add_argument("-o", "--output-dir", type=pathlib.Path, required=True,
                   help="folder of the output bags (mirrors the inputs' paths); with --ray, one every node sees")
    p.add_argument("--list", type=pathlib.Path, action="append", default=[], metavar="FILE", dest="list_files",
                   help="a file of inputs, one a line (relative to the file's folder; # comments); repeatable")
    p.add_argument("--overwrite", action="store_true", help="convert again bags whose output is already finished")
    p.add_argument("--retries", type=int, default=2,
                   help="further tries of a bag after a transient error (an OSError; never a corrupt bag); default 2")
    p.add_argument("--workers", default="auto",
                   help="bags converted at once: auto (one per GPU on CUDA, else one per CPU core / --threads), "
                        "or a number")
    p.add_argument("--threads", default="auto",
                   help="CPU inference threads per worker: auto (the cores shared among the workers) or a number "
                        "(sets the num_threads parameter)")
    p.add_argument("--ray", metavar="ADDRESS",
                   help="run on Ray: `local` (start Ray on this machine), `auto` (the running cluster) or a cluster "
                        "address; needs `pip install dav2_ros[fleet]`")
    p.add_argument("--summary", type=pathlib.Path, help="also write the run's summary as JSON to this file")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    bag_to_depth.add_conversion_options(p)  # each bag is converted with bag_to_depth's options
    return p


# ------------------------------------------------------------------------------------------- sizing
@dataclasses.dataclass(frozen=True)
class Plan:
    """How many workers, with how many threads each, on which devices."""

    workers: int
    threads: int | None  # inference threads of each worker (None: nothing ran)
    devices: tuple[str | None, ...]  # one per worker: a cuda:N of its own, or None (the options' device)


def cuda_devices(device: str | None) -> int:
    """GPUs this run would use: torch's CUDA device count when the device is auto/cuda (not a given cuda:N), else 0.
    Written against torch's documentation, not run here (the machine it was written on has no GPU)."""
    if device not in (None, "auto", "cuda"):
        return 0
    import torch  # only here: the driver otherwise needs no torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def plan_workers(workers: str, threads: str, bags: int, device: str | None, num_threads_param: int = 0,
                 cpus: int | None = None, gpus: int | None = None) -> Plan:
    """`--workers` and `--threads` made into numbers (see the options' help).

    Raises:
        BatchError: a value that is neither auto nor a positive number.
    """
    cpus = cpus or os.cpu_count() or 1
    gpus = cuda_devices(device) if gpus is None else gpus
    wanted_threads = None if threads == "auto" else _positive("--threads", threads)
    if workers == "auto":
        if gpus:
            count = gpus
        else:
            per_worker = wanted_threads or num_threads_param or CPU_THREADS_PER_WORKER
            count = max(1, cpus // per_worker)
    else:
        count = _positive("--workers", workers)
    count = max(1, min(count, bags))
    if wanted_threads is None:  # the num_threads parameter when given, else the cores shared out
        wanted_threads = num_threads_param or max(1, cpus // count)
    devices = tuple(f"cuda:{i % gpus}" for i in range(count)) if gpus else (None,) * count
    return Plan(count, wanted_threads, devices)


def _positive(option: str, text: str) -> int:
    """A positive integer option value."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise BatchError(f"{option} expects auto or a positive number, got {text!r}")
    return value


# ------------------------------------------------------------------------------------------- local workers
@dataclasses.dataclass
class _WorkerState:
    args: argparse.Namespace
    options: dict[str, Any]
    retries: int
    events: Any  # multiprocessing queue of progress events
    stop: Any  # multiprocessing event: stop after the current frame, start no bag
    cache: ModelCache
    name: str


_STATE: _WorkerState | None = None


def _init_worker(args: argparse.Namespace, options: dict[str, Any], retries: int, events: Any, stop: Any,
                 slots: Any, plan: Plan) -> None:
    """Worker process start: Ctrl-C is the driver's to handle (it sets `stop`), die with the driver, take a slot
    (its device and thread count), set up logging."""
    global _STATE
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _die_with_parent()
    slot = slots.get()
    name = f"worker {slot}"
    logging.basicConfig(level=logging.WARNING, format=f"{PROG} [{name}]: %(levelname)s: %(message)s")
    mine = worker_args(args, plan.threads, plan.devices[slot])
    _STATE = _WorkerState(mine, options, retries, events, stop, ModelCache(), name)


def _die_with_parent() -> None:
    """End this worker when the driver process dies (even by SIGKILL), so no orphan keeps writing: the kernel's
    parent-death signal on Linux, else a thread that watches the parent's pid."""
    parent = os.getppid()
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        if libc.prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0) == 0:
            if os.getppid() != parent:  # the driver died before the call
                os._exit(EXIT_INTERRUPTED)
            return
    except (OSError, AttributeError):
        pass

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(EXIT_INTERRUPTED)

    threading.Thread(target=watch, daemon=True).start()


class _QueueProgress:
    """A bag's frame progress, sent to the driver (tqdm's update/close interface)."""

    def __init__(self, events: Any, index: int, total: int) -> None:
        self._events, self._index = events, index
        events.put(("start", index, total))

    def update(self, n: int = 1) -> None:
        self._events.put(("frames", self._index, n))

    def close(self) -> None:
        pass


def _convert_in_worker(job: BagJob) -> BagResult:
    """The task of a worker process: one bag, with the worker's model."""
    state = _STATE
    assert state is not None, "worker not initialized"
    return convert_one(job, state.args, state.cache, state.options, state.retries,
                       progress=lambda total: _QueueProgress(state.events, job.index, total),
                       stop_requested=state.stop.is_set, worker=state.name)


def run_local(jobs: Sequence[BagJob], args: argparse.Namespace, options: dict[str, Any], retries: int, plan: Plan,
              on_result: Callable[[BagResult], None], on_event: Callable[[tuple], None]) -> bool:
    """Convert `jobs` in `plan.workers` spawned processes (largest bags first); False when a fatal error (the
    model does not load) stopped the run. Ctrl-C: the bags being converted stop after their current frame (their
    unfinished bag stays, redone next time), no other starts; a second Ctrl-C ends the workers at once."""
    context = multiprocessing.get_context("spawn")
    events, stop, slots = context.Queue(), context.Event(), context.Queue()
    for slot in range(plan.workers):
        slots.put(slot)
    ordered = largest_first(jobs)
    fatal = False
    with _sigint_sets(stop), concurrent.futures.ProcessPoolExecutor(
            plan.workers, mp_context=context, initializer=_init_worker,
            initargs=(args, options, retries, events, stop, slots, plan)) as pool:
        try:
            pending = {pool.submit(_convert_in_worker, job): job for job in ordered}
            while pending:
                done, _ = concurrent.futures.wait(pending, timeout=0.2,
                                                  return_when=concurrent.futures.FIRST_COMPLETED)
                _drain(events, on_event)
                for future in done:
                    job = pending.pop(future)
                    result = _result_of(future, job)
                    on_result(result)
                    if result.status == "fatal" and not fatal:
                        fatal = True
                        stop.set()
            _drain(events, on_event)
        except KeyboardInterrupt:  # the second Ctrl-C
            for process in list(getattr(pool, "_processes", {}).values()):
                process.kill()
            raise
    return not fatal


def _result_of(future: concurrent.futures.Future, job: BagJob) -> BagResult:
    """A finished task's result; a worker that died (killed, out of memory) fails its bag."""
    try:
        return future.result()
    except concurrent.futures.process.BrokenProcessPool as error:
        return BagResult(job.index, str(job.input), str(job.output), "failed",
                         f"the worker process died ({error or 'killed?'})")
    except concurrent.futures.CancelledError:
        return BagResult(job.index, str(job.input), str(job.output), "interrupted", "not started")


def _drain(events: Any, on_event: Callable[[tuple], None]) -> None:
    """Pass every waiting progress event on."""
    while True:
        try:
            on_event(events.get_nowait())
        except queue.Empty:
            return


@contextlib.contextmanager
def _sigint_sets(stop: Any) -> Iterator[None]:
    """The first Ctrl-C sets `stop`; the second raises KeyboardInterrupt."""
    def handle(signum: int, frame: object) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()
        print(f"\n{PROG}: stopping after the current frame of each bag (Ctrl-C again to stop at once)",
              file=sys.stderr)

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, handle)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


# ------------------------------------------------------------------------------------------- progress and summary
class Progress:
    """Two bars on stderr: bags (finished of all) and frames (of the bags started so far)."""

    def __init__(self, bags: int, enabled: bool) -> None:
        self._bags = tqdm(total=bags, unit="bag", desc="bags", disable=not enabled, file=sys.stderr, position=0,
                          dynamic_ncols=True)
        self._frames = tqdm(total=0, unit="frame", desc="frames", disable=not enabled, file=sys.stderr,
                            position=1, dynamic_ncols=True)
        self._reported: set[int] = set()  # bags that sent frame events

    def event(self, event: tuple) -> None:
        """("start", bag index, frames in it) or ("frames", bag index, n)."""
        kind, index, value = event
        if kind == "start":
            self._frames.total = (self._frames.total or 0) + value
            self._frames.refresh()
        else:
            self._reported.add(index)
            self._frames.update(value)

    def bag_done(self, result: BagResult) -> None:
        """A bag finished (any status)."""
        if result.index not in self._reported and result.frames:  # no frame events (Ray): count at the end
            self._frames.total = (self._frames.total or 0) + result.frames
            self._frames.update(result.frames)
        self._bags.update(1)
        if result.status in ("failed", "fatal"):
            self._bags.write(f"{PROG}: {result.input}: FAILED: {result.reason}", file=sys.stderr)

    def close(self) -> None:
        self._frames.close()
        self._bags.close()


def summarize(results: Sequence[BagResult], seconds: float, mode: str, plan: Plan,
              output_dir: pathlib.Path) -> dict[str, Any]:
    """The run's summary as plain values (bags by status, frames, rates, failures with reasons, each bag)."""
    by_status = {status: sum(r.status == status for r in results)
                 for status in ("done", "skipped", "failed", "interrupted")}
    by_status["failed"] += sum(r.status == "fatal" for r in results)
    frames = sum(r.frames for r in results if r.status != "skipped")
    converted = by_status["done"]
    return {
        "tool": PROG, "mode": mode, "output_dir": str(output_dir), "workers": plan.workers,
        "threads_per_worker": plan.threads, "bags": {"total": len(results), **by_status},
        "frames": frames, "seconds": seconds, "frames_per_s": frames / seconds if seconds > 0 else 0.0,
        "bags_per_s": converted / seconds if seconds > 0 else 0.0,
        "model_load_s": [r.model_load_s for r in results if r.model_load_s > 0],
        "failures": [{"input": r.input, "reason": r.reason} for r in results if r.status in ("failed", "fatal")],
        "results": [r.to_dict() for r in sorted(results, key=lambda r: r.index)],
    }


def format_run_summary(summary: dict[str, Any]) -> str:
    """The closing summary for people."""
    bags = summary["bags"]
    threads = summary["threads_per_worker"]
    how = (f"{summary['mode']}, {summary['workers']} worker(s) x {threads} thread(s)" if summary["workers"]
           else "nothing to convert")
    lines = [
        f"{PROG} summary",
        f"  bags:     {bags['total']}: {bags['done']} done, {bags['skipped']} skipped (already finished), "
        f"{bags['failed']} failed" + (f", {bags['interrupted']} interrupted" if bags["interrupted"] else ""),
        f"  frames:   {summary['frames']} in {summary['seconds']:.1f} s: {summary['frames_per_s']:.2f} frames/s, "
        f"{summary['bags_per_s']:.3f} bags/s ({how})",
        f"  output:   {summary['output_dir']}",
    ]
    for failure in summary["failures"]:
        lines.append(f"  FAILED:   {failure['input']}: {failure['reason']}")
    for result in summary["results"]:
        for note in result["notes"]:
            lines.append(f"  note:     {result['input']}: {note}")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------- main
@contextlib.contextmanager
def output_lock(output_dir: pathlib.Path) -> Iterator[None]:
    """Hold OUTPUT_DIR/.dav2_bags.lock for the run: a second run on the same folder stops at once (the kernel
    drops the lock when the process dies, however it dies)."""
    import fcntl

    output_dir.mkdir(parents=True, exist_ok=True)
    with open(output_dir / LOCK_NAME, "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise BatchError(f"another {PROG} run is writing to {output_dir} (it holds {LOCK_NAME})") from None
        lock.write(f"{os.getpid()}\n")
        lock.flush()
        yield


def run(args: argparse.Namespace) -> int:
    """The whole batch; raises BatchError/SettingsError for problems found before any bag."""
    started = time.perf_counter()
    if args.retries < 0:
        raise BatchError(f"--retries must be 0 or more, got {args.retries}")
    output_dir = args.output_dir
    bags = find_bags(args.inputs, args.list_files, exclude=[output_dir])
    if not bags:
        raise BatchError("no input: give bags, folders or glob patterns (or --list FILE)")
    settings = bag_to_depth.tool_settings(args)  # reads the params file and checks every option once, here
    options = fingerprint(args, settings)
    with output_lock(output_dir):
        jobs = plan_outputs(bags, output_dir)
        results: list[BagResult] = []
        todo = []
        for job in jobs:
            action, why = classify(job, options["sha256"], args.overwrite)
            if action == "skip":
                results.append(BagResult(job.index, str(job.input), str(job.output), "skipped", why))
            elif action == "conflict":
                results.append(BagResult(job.index, str(job.input), str(job.output), "failed", why))
            else:
                todo.append(dataclasses.replace(job, replace=args.overwrite))
        mode = f"ray {args.ray}" if args.ray else "local"
        plan = Plan(0, None, ())
        progress = Progress(len(jobs), not args.no_progress)
        for result in results:
            progress.bag_done(result)

        def finished(result: BagResult) -> None:
            results.append(result)
            progress.bag_done(result)

        ok, interrupted = True, False
        try:
            if todo and args.ray:
                from dav2_ros.offline.fleet_ray import run_ray  # Ray is imported only here

                plan, ok = run_ray(todo, args, options, args.retries, args.ray, args.workers, args.threads,
                                   settings, finished)
            elif todo:
                plan = plan_workers(args.workers, args.threads, len(todo), settings.device, settings.num_threads)
                ok = run_local(todo, args, options, args.retries, plan, finished, progress.event)
        except KeyboardInterrupt:
            interrupted = True
        finally:
            progress.close()
    seen = {r.index for r in results}
    results += [BagResult(j.index, str(j.input), str(j.output), "interrupted", "not started")
                for j in jobs if j.index not in seen]
    summary = summarize(results, time.perf_counter() - started, mode, plan, output_dir)
    print(format_run_summary(summary))
    if args.summary is not None:
        args.summary.write_text(json.dumps(summary, indent=2) + "\n")
    fatal = [r for r in results if r.status == "fatal"]
    if fatal:
        print(f"{PROG}: error: {fatal[0].reason}", file=sys.stderr)
        return EXIT_ERROR
    if interrupted or summary["bags"]["interrupted"]:
        return EXIT_INTERRUPTED
    return EXIT_SOME_FAILED if summary["bags"]["failed"] or not ok else 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `dav2_bags` console script."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format=f"{PROG}: %(levelname)s: %(message)s")
    return run_command(PROG, lambda: run(args), errors=(BatchError, SettingsError),
                       interrupted="interrupted before the first bag")


if __name__ == "__main__":
    sys.exit(main())
