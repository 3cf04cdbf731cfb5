"""The overload, burst and soak scenarios: frames streamed into a NodeRig, and the figures of the run."""

from __future__ import annotations

import dataclasses
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np

from camera_frame import Camera
from node_harness import Arrival, stamp_key, wait_until
from node_rig import Diag, NodeRig, counter_delta
from rig_settings import OUTPUT_TIMEOUT_S
from run_measures import Percentiles, RssSampler


@dataclass
class StreamResult:
    """What one overload / burst / soak run did, in the node's own counters and as the client saw it."""

    scenario: str
    params: dict[str, Any]
    image_size: str
    sent: int
    node_in: int  # frames the node's callback received (the rest were lost before it: best-effort QoS)
    published: int  # depth images that reached the client
    dropped: int  # frames the node replaced with a newer one before processing (newest wins)
    rejected: int
    max_backlog: int  # most frames ever received but not yet published/dropped/rejected
    frame_interval_p50_s: Optional[float]  # time between outputs while saturated: the model's pace
    frame_interval_max_s: Optional[float]  # the slowest such interval (CPU contention shows here)
    latency: Percentiles  # arrival of depth/image minus the image stamp
    latency_start: Percentiles  # the first tenth of the published frames
    latency_end: Percentiles  # the last tenth
    # Latency minus the time since the previous output (~ this frame's own processing): how long the frame
    # waited before the model took it, while the camera was still streaming. With newest-wins it is at most
    # one camera period (plus scheduling), however slow the model is at the moment; a queue would grow it.
    waited: Percentiles
    node_stamp_age_p50_ms: Optional[float]  # the node's own figure (publish time minus stamp, last 10 s)
    rss_start_mb: float
    rss_end_mb: float
    rss_max_mb: float
    last_sent_stamp: tuple[int, int]
    last_published_stamp: Optional[tuple[int, int]]
    stamps_increasing: bool
    duration_s: float
    inference_p50_s: Optional[float] = None  # the node's own figure for the model alone (last 10 s)
    inference_start_ms: Optional[float] = None  # the node's inference p50 in the first tenth of the run
    inference_end_ms: Optional[float] = None  # ... and in the last tenth (CPU contention shows here)
    rss_timeline_mb: list[float] = field(default_factory=list)  # at 0, 10, 25, 50, 75, 100 % of the run
    drain_s: Optional[float] = None  # last publish -> last output
    notes: list[str] = field(default_factory=list)
    sent_stamps: list[tuple[int, int]] = field(default_factory=list, repr=False)

    @property
    def frame_s(self) -> float:
        """Seconds the node needs per frame: the pace of its outputs while saturated, else the model's time."""
        return max(self.frame_interval_p50_s or 0.0, self.inference_p50_s or 0.0)

    @property
    def slowest_frame_s(self) -> float:
        """The longest the node took for one frame during the run (at least `frame_s`)."""
        return max(self.frame_interval_max_s or 0.0, self.frame_s)

    @property
    def lost_before_node(self) -> int:
        return self.sent - self.node_in

    @property
    def rss_growth_mb(self) -> float:
        return self.rss_end_mb - self.rss_start_mb

    def as_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        del data["sent_stamps"]
        data.update(lost_before_node=self.lost_before_node, rss_growth_mb=self.rss_growth_mb, frame_s=self.frame_s,
                    slowest_frame_s=self.slowest_frame_s)
        return data


class Streamer:
    """Publishes frames at a fixed rate (absolute schedule, no drift) on a thread until stopped or
    `count` frames went out; every frame gets the wall-clock time of its publishing as stamp."""

    def __init__(self, rig: NodeRig, camera: Camera, rate_hz: float, count: Optional[int] = None,
                 jpeg: bool = False, with_info: bool = False) -> None:
        self._rig, self._camera, self._rate_hz, self._count, self._jpeg = rig, camera, rate_hz, count, jpeg
        self._with_info = with_info  # a CameraInfo with every frame, as camera drivers do
        self.sent: list[tuple[int, int]] = []
        self.sent_at: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="frame_streamer", daemon=True)
        self.late_s = 0.0  # worst lag behind the schedule (the client itself starved of CPU)

    def _run(self) -> None:
        start = time.monotonic()
        i = 0
        while not self._stop.is_set() and (self._count is None or i < self._count):
            due = start + i / self._rate_hz
            delay = due - time.monotonic()
            if delay > 0 and self._stop.wait(delay):
                break
            self.late_s = max(self.late_s, -delay)
            now = time.time()
            msg = self._camera.jpeg(now) if self._jpeg else self._camera.image(now)
            if self._with_info:
                self._rig.publish(self._camera.camera_info(now))
            self._rig.publish(msg)
            self.sent.append(stamp_key(msg.header.stamp))
            self.sent_at.append(time.monotonic())
            i += 1

    def start(self) -> "Streamer":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10.0)

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)

    @property
    def running(self) -> bool:
        """True until `count` frames went out or `stop` was called."""
        return self._thread.is_alive()


def _settle(rig: NodeRig, base: Diag, sent: list[tuple[int, int]], timeout: float = OUTPUT_TIMEOUT_S) -> Diag:
    """Once the publisher stopped: the first status with nothing in flight (the node drained what it
    received), after which every depth image the node counted for `sent` has reached the client."""
    final = rig.wait_diag(lambda d: d.backlog == 0 and d.frames_in > base.frames_in,
                          "all received frames accounted for", time.time() + 0.2, timeout)
    published = final.count("frames_out") - base.count("frames_out")
    keys = set(sent)
    wait_until(lambda: sum(a.stamp in keys for a in rig.depth.arrivals) >= published, timeout,
               f"{published} depth images at the client")
    return final


def _result(scenario: str, rig: NodeRig, camera: Camera, sent: list[tuple[int, int]], base: Diag, final: Diag,
            arrivals: list[Arrival], rss: RssSampler, t_first: float, t_end: float, started: float,
            last_publish: Optional[float] = None) -> StreamResult:
    """Figures of a run from the sent stamps, the depth arrivals for them and the node's counters."""
    sent_keys = set(sent)
    ours = [a for a in arrivals if a.stamp in sent_keys]
    ours.sort(key=lambda a: a.received)
    latencies = [a.latency_s for a in ours]
    tenth = max(1, len(ours) // 10)
    # only while the camera still streamed when the model took the next frame (after that, the newest is old)
    waited = [b.latency_s - (b.received - a.received) for a, b in zip(ours, ours[1:])
              if last_publish is None or a.received < last_publish]
    intervals = np.diff([a.received for a in ours])
    delta = counter_delta(base, final)
    diags = [d for d in rig.diags if d.stamp >= base.stamp and d.stamp <= final.stamp]
    ages = [float(d.values["stamp_age_p50_ms"]) for d in diags if d.values.get("stamp_age_p50_ms", "n/a") != "n/a"]
    inference = final.values.get("inference_p50_ms", "n/a")
    streaming = [float(d.values["inference_p50_ms"]) for d in diags
                 if d.values.get("inference_p50_ms", "n/a") != "n/a"
                 and (last_publish is None or d.stamp <= last_publish)]
    phase = max(1, len(streaming) // 10)
    run_samples = [(t, mb) for t, mb in rss.samples if started <= t <= t_end] or rss.samples
    timeline = [run_samples[min(len(run_samples) - 1, int(f * (len(run_samples) - 1)))][1]
                for f in (0.0, 0.1, 0.25, 0.5, 0.75, 1.0)]
    drain = None
    if last_publish is not None and ours:
        drain = max(0.0, ours[-1].received - last_publish)
    in_rss = [mb for t, mb in rss.samples if started <= t <= t_end] or [s[1] for s in rss.samples]
    return StreamResult(
        scenario=scenario,
        params={k: rig.params[k] for k in ("encoder", "input_size", "num_threads", "device") if k in rig.params},
        image_size=f"{camera.width}x{camera.height}",
        sent=len(sent),
        node_in=delta.get("frames_in", 0),
        published=len(ours),
        dropped=delta.get("frames_dropped", 0),
        rejected=delta.get("frames_rejected", 0),
        max_backlog=max((d.backlog for d in diags), default=0),
        frame_interval_p50_s=float(np.median(intervals)) if intervals.size else None,
        frame_interval_max_s=float(intervals.max()) if intervals.size else None,
        latency=Percentiles.of(latencies),
        latency_start=Percentiles.of(latencies[:tenth]),
        latency_end=Percentiles.of(latencies[-tenth:]),
        waited=Percentiles.of(waited),
        node_stamp_age_p50_ms=float(np.median(ages)) if ages else None,
        rss_start_mb=rss.at(t_first),
        rss_end_mb=in_rss[-1],
        rss_max_mb=max(in_rss),
        last_sent_stamp=sent[-1],
        last_published_stamp=ours[-1].stamp if ours else None,
        stamps_increasing=all(b.stamp > a.stamp for a, b in zip(ours, ours[1:])),
        duration_s=t_end - started,
        inference_p50_s=None if inference == "n/a" else float(inference) / 1e3,
        inference_start_ms=float(np.median(streaming[:phase])) if streaming else None,
        inference_end_ms=float(np.median(streaming[-phase:])) if streaming else None,
        rss_timeline_mb=[round(mb, 1) for mb in timeline],
        drain_s=drain,
        sent_stamps=list(sent),
    )


def _baseline(rig: NodeRig, camera: Camera) -> Diag:
    """One frame through the node (CameraInfo first), then an idle status to count from."""
    rig.publish(camera.camera_info(time.time()))
    sent = camera.jpeg(time.time()) if rig.transport == "compressed" else camera.image(time.time())
    rig.wait_outputs(sent)
    rig.depth.forget()
    return rig.wait_idle(time.time())


def run_stream(rig: NodeRig, camera: Camera, rate_hz: float, duration_s: float,
               scenario: str = "overload") -> StreamResult:
    """Publish `camera`'s frame at `rate_hz` for `duration_s` (CameraInfo at 1 Hz), then let the node drain."""
    base = _baseline(rig, camera)
    with RssSampler(rig.pid) as rss:
        started = time.monotonic()
        streamer = Streamer(rig, camera, rate_hz).start()
        stop_at = started + duration_s
        while time.monotonic() < stop_at:
            rig.publish(camera.camera_info(time.time()))
            time.sleep(min(1.0, max(0.0, stop_at - time.monotonic())))
        streamer.stop()
        last_publish = time.time()
        final = _settle(rig, base, streamer.sent)
        t_end = time.monotonic()
    # RSS "start": a fifth into the run, once the model has run a few frames (allocator warm-up)
    result = _result(scenario, rig, camera, streamer.sent, base, final, rig.depth.arrivals, rss,
                     started + duration_s / 5, t_end, started, last_publish)
    result.notes.append(f"rate {rate_hz:g} Hz for {duration_s:g} s; publisher lag max {streamer.late_s * 1e3:.0f} ms")
    rig.depth.forget()
    return result


def run_burst(rig: NodeRig, camera: Camera, count: int = 200) -> StreamResult:
    """Publish `count` frames back to back, as fast as the client can, then let the node drain."""
    base = _baseline(rig, camera)
    with RssSampler(rig.pid) as rss:
        started = time.monotonic()
        sent: list[tuple[int, int]] = []
        for _ in range(count):
            msg = camera.image(time.time())
            rig.publish(msg)
            sent.append(stamp_key(msg.header.stamp))
        last_publish = time.time()
        publish_s = time.monotonic() - started
        final = _settle(rig, base, sent)
        t_end = time.monotonic()
    result = _result("burst", rig, camera, sent, base, final, rig.depth.arrivals, rss, started, t_end, started,
                     last_publish)
    result.notes.append(f"{count} frames published in {publish_s:.2f} s")
    rig.depth.forget()
    return result


def run_soak(rig: NodeRig, camera: Camera, frames: int, rate_hz: float) -> StreamResult:
    """`frames` frames at `rate_hz` through the node with CameraInfo every 10th frame; RSS from after
    the first tenth (allocator warm-up) to the end."""
    base = _baseline(rig, camera)
    with RssSampler(rig.pid, period_s=1.0) as rss:
        started = time.monotonic()
        streamer = Streamer(rig, camera, rate_hz, count=frames).start()
        while streamer.running:
            rig.publish(camera.camera_info(time.time()))
            streamer.join(10.0 / rate_hz)
        last_publish = time.time()
        final = _settle(rig, base, streamer.sent)
        t_end = time.monotonic()
        warm = streamer.sent_at[len(streamer.sent_at) // 10] if streamer.sent_at else started
    result = _result("soak", rig, camera, streamer.sent, base, final, rig.depth.arrivals, rss, warm, t_end,
                     started, last_publish)
    result.notes.append(f"{frames} frames at {rate_hz:g} Hz; RSS right after start-up "
                        f"{rss.samples[0][1]:.0f} MB; publisher lag max {streamer.late_s * 1e3:.0f} ms")
    return result
