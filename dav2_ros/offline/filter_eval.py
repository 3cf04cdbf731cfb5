"""Measuring the depth filters on real ground truth (used by benchmarks/bench_depth_filters.py and the tests).

Flying pixels: a ground-truth depth frame is made to look like the network's output -- averaged down to the grid
the network predicts at, then bilinear back up -- and the flying-pixel filter is scored on it: of the pixels
whose blurred depth is more than 10 % off the ground truth ("flying"), the share it removes; of the pixels at
least 8 px from any true depth edge ("far"), the share it keeps. The grids (for a 640x480 frame at input_size
518, network input 518x686): the DPT head's prediction grid is 8x the ViT patch grid (its last fusion block
upsamples the 4x-reassembled features once more), 296x392; the patch grid itself is 37x49.

Temporal: synthetic sequences from one real ground-truth frame (global scale jitter + per-pixel noise; an
object appearing; a camera driving towards the scene from the first frame, or starting and stopping after a
standstill), scored against the truth of each frame; the static scene over several noise seeds.
"""

from __future__ import annotations

import pathlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Optional

import cv2
import numpy as np

from dav2_ros.geometry.depth_filters import TemporalFilter, edge_mask, valid_depth
from dav2_ros.model.config import PATCH_SIZE

DPT_GRID_PER_PATCH = 8  # DPT head: patch grid x4 (reassemble) x2 (last fusion) before the final upsampling
#: A ground-truth pixel whose relative jump to an 8-neighbour exceeds this sits on a true depth edge.
TRUE_EDGE_JUMP = 0.05
OFF_FRACTION = 0.10  # "flying": blurred depth more than this far off the ground truth
FAR_FROM_EDGE_PX = 8.0


#: The ground-truth depth topic of the bundled TUM RGB-D bag (test/data/bags/tum_rgbd).
TUM_DEPTH_TOPIC = "/camera/depth/image_raw"


def load_ground_truth(bag: pathlib.Path, topic: str = TUM_DEPTH_TOPIC) -> list[np.ndarray]:
    """Every depth image (float32 meters, NaN where missing) on `topic` of a rosbag2, read with rosbags."""
    from dav2_ros.conversions.image_codec import depth_msg_to_array
    from dav2_ros.offline.bag_io import open_reader, read_messages, ros2_typestore

    typestore = ros2_typestore()
    reader = open_reader(pathlib.Path(bag))
    try:
        connections = [c for c in reader.connections if c.topic == topic]
        if not connections:
            raise ValueError(f"{bag} has no topic {topic}")
        return [depth_msg_to_array(typestore.deserialize_cdr(raw, c.msgtype)).astype(np.float32)
                for c, _, raw in read_messages(reader, connections)]
    finally:
        reader.close()


def network_grids(height: int, width: int, input_size: int = 518) -> dict[str, tuple[int, int]]:
    """(rows, cols) of the DPT prediction grid and of the ViT patch grid for a frame of this size."""
    from dav2_ros.engines.preprocess import network_size  # numpy only

    rows, cols = network_size(height, width, input_size)
    patch = (rows // PATCH_SIZE, cols // PATCH_SIZE)
    return {"dpt": (patch[0] * DPT_GRID_PER_PATCH, patch[1] * DPT_GRID_PER_PATCH), "patch": patch}


def blur_like_network(depth: np.ndarray, grid: tuple[int, int]) -> np.ndarray:
    """Average `depth` down to `grid` (rows, cols) over its valid pixels only, then bilinear back up; NaN where
    a grid cell had no valid pixel (or interpolates from one)."""
    valid = valid_depth(depth)
    z = np.where(valid, depth, 0).astype(np.float32)
    size = (grid[1], grid[0])
    total = cv2.resize(z, size, interpolation=cv2.INTER_AREA)
    weight = cv2.resize(valid.astype(np.float32), size, interpolation=cv2.INTER_AREA)
    with np.errstate(divide="ignore", invalid="ignore"):
        coarse = np.where(weight > 1e-3, total / weight, np.nan).astype(np.float32)
    return cv2.resize(coarse, (depth.shape[1], depth.shape[0]), interpolation=cv2.INTER_LINEAR)


def distance_to_true_edges(gt: np.ndarray, jump: float = TRUE_EDGE_JUMP) -> np.ndarray:
    """Euclidean distance (px) of every pixel to the nearest ground-truth pixel on a depth edge (a relative
    jump above `jump` to a valid 8-neighbour)."""
    on_edge = ~edge_mask(gt, threshold=jump, dilation=0) & valid_depth(gt)
    free = np.where(on_edge, 0, 255).astype(np.uint8)
    return cv2.distanceTransform(free, cv2.DIST_L2, 5)


@dataclass(frozen=True)
class EdgeScore:
    """How the flying-pixel filter did on one blurred frame."""

    threshold: float
    dilation: int
    flying_removed: float  # share of the >10 %-off pixels removed
    far_kept: float  # share of the pixels >= 8 px from a true edge kept
    removed: float  # share of all valid blurred pixels removed
    flying: int
    far: int


def score_edges(gt: np.ndarray, blurred: np.ndarray, threshold: float, dilation: int,
                distance: Optional[np.ndarray] = None) -> EdgeScore:
    """Score ``edge_mask(blurred, threshold, dilation)`` against the ground truth (pixels valid in both)."""
    both = valid_depth(gt) & valid_depth(blurred)
    if distance is None:
        distance = distance_to_true_edges(gt)
    with np.errstate(divide="ignore", invalid="ignore"):
        flying = both & (np.abs(blurred - gt) > OFF_FRACTION * gt)
    far = both & (distance >= FAR_FROM_EDGE_PX)
    keep = edge_mask(blurred, threshold, dilation)
    return EdgeScore(threshold, dilation,
                     flying_removed=float((~keep & flying).sum() / max(flying.sum(), 1)),
                     far_kept=float((keep & far).sum() / max(far.sum(), 1)),
                     removed=float((~keep & both).sum() / max(both.sum(), 1)),
                     flying=int(flying.sum()), far=int(far.sum()))


# ------------------------------------------------------------------------------------------------ temporal
@dataclass
class Sequence:
    """Frames as the network might give them, with the truth of each."""

    frames: list[np.ndarray]
    truth: list[np.ndarray]


def static_sequence(gt: np.ndarray, count: int = 100, jitter: float = 0.05, noise: float = 0.005,
                    seed: int = 0) -> Sequence:
    """The same scene `count` times, each frame scaled by a uniform factor in 1 +- `jitter` and with per-pixel
    multiplicative Gaussian noise of `noise`."""
    rng = np.random.default_rng(seed)
    frames = [_observe(gt, rng, jitter, noise) for _ in range(count)]
    return Sequence(frames, [gt] * count)


def appearing_sequence(gt: np.ndarray, before: int = 20, after: int = 20, jitter: float = 0.05,
                       noise: float = 0.005, seed: int = 1) -> tuple[Sequence, np.ndarray]:
    """The static scene, then from frame `before` on a region (the centre quarter) at half its depth; returns
    the sequence and the region's mask."""
    rng = np.random.default_rng(seed)
    height, width = gt.shape
    region = np.zeros(gt.shape, dtype=bool)
    region[height // 4: 3 * height // 4, width // 4: 3 * width // 4] = True
    changed = np.where(region, gt * np.float32(0.5), gt).astype(np.float32)
    truth = [gt] * before + [changed] * after
    return Sequence([_observe(t, rng, jitter, noise) for t in truth], truth), region


def driving_sequence(gt: np.ndarray, count: int = 40, step_m: float = 0.03, jitter: float = 0.05,
                     noise: float = 0.005, seed: int = 2) -> Sequence:
    """The camera moving `step_m` per frame along its optical axis towards the scene (depth - k * step)."""
    rng = np.random.default_rng(seed)
    truth = [np.where(valid_depth(gt), gt - np.float32(k * step_m), np.nan).astype(np.float32)
             for k in range(count)]
    return Sequence([_observe(t, rng, jitter, noise) for t in truth], truth)


def start_stop_sequence(gt: np.ndarray, still: int = 20, moving: int = 40, after: int = 20, step_m: float = 0.03,
                        jitter: float = 0.05, noise: float = 0.005, seed: int = 3) -> Sequence:
    """`still` frames of the static scene, then `moving` frames of the camera driving `step_m` per frame towards
    it, then `after` frames standing where it stopped: the lag when motion starts and the overshoot when it stops."""
    rng = np.random.default_rng(seed)
    truth = [gt] * still + [np.where(valid_depth(gt), gt - np.float32(k * step_m), np.nan).astype(np.float32)
                            for k in range(1, moving + 1)]
    truth += [truth[-1]] * after
    return Sequence([_observe(t, rng, jitter, noise) for t in truth], truth)


def _observe(truth: np.ndarray, rng: np.random.Generator, jitter: float, noise: float) -> np.ndarray:
    scale = 1.0 + rng.uniform(-jitter, jitter)
    pixel = 1.0 + noise * rng.standard_normal(truth.shape)
    return (truth * scale * pixel).astype(np.float32)


def run_filter(mode: str, sequence: Sequence, period_s: float = 0.1) -> Iterator[np.ndarray]:
    """The filtered frames of `sequence` through a fresh ``TemporalFilter(mode)`` (stamps `period_s` apart)."""
    temporal = TemporalFilter(mode)  # type: ignore[arg-type]
    for k, frame in enumerate(sequence.frames):
        yield temporal.update(frame, stamp=k * period_s)


def coefficient_of_variation(frames: list[np.ndarray]) -> float:
    """The median over the pixels valid in every frame of the per-pixel std / mean over the frames."""
    stack = np.stack(frames)
    stack = stack[:, np.isfinite(stack).all(axis=0)]  # the pixels valid in every frame
    return float(np.median(stack.std(axis=0) / stack.mean(axis=0)))


def static_cv_cut(gt: np.ndarray, mode: str, seeds: range = range(10), count: int = 100, jitter: float = 0.05,
                  noise: float = 0.005) -> list[tuple[float, float]]:
    """(CV unfiltered, CV filtered) of the static sequence for each noise seed."""
    out = []
    for seed in seeds:
        static = static_sequence(gt, count=count, jitter=jitter, noise=noise, seed=seed)
        out.append((coefficient_of_variation(static.frames), coefficient_of_variation(list(run_filter(mode, static)))))
    return out


def signed_log_error(frame: np.ndarray, truth: np.ndarray) -> float:
    """The median of log(frame / truth) over the pixels valid in both: > 0 farther than the truth (the global
    scale's error, with its sign: a lag behind a camera approaching the scene reads > 0)."""
    both = valid_depth(frame) & valid_depth(truth)
    return float(np.median(np.log(frame[both] / truth[both])))


def median_error(frame: np.ndarray, truth: np.ndarray, where: Optional[np.ndarray] = None) -> float:
    """The median relative error |frame - truth| / truth over the pixels valid in both (and in `where`)."""
    both = valid_depth(frame) & valid_depth(truth)
    if where is not None:
        both &= where
    return float(np.median(np.abs(frame[both] - truth[both]) / truth[both]))
