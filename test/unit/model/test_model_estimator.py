"""DepthEstimator API and preprocessing: official resize rule, bit-exact exact mode, fast mode, batching, checks."""

from __future__ import annotations


import cv2
import numpy as np
import pytest
import torch

from dav2_ros.engines.estimator import DepthEstimator
from dav2_ros.engines.preprocess import FastPreprocessor, exact_preprocess, network_size
from parity_cases import case_image
from project_paths import PARITY_DIR

FIXTURE = PARITY_DIR / "tum_small_vits_518.npz"


@pytest.fixture(scope="module")
def frame_bgr() -> np.ndarray:
    return case_image(FIXTURE)


@pytest.mark.parametrize(("height", "width", "input_size", "expected"), [
    (480, 640, 518, (518, 686)),   # 690.7 -> 686 (np.round to 49 patches)
    (240, 320, 518, (518, 686)),   # upscaled
    (720, 1280, 518, (518, 924)),
    (640, 480, 518, (686, 518)),   # portrait
    (480, 640, 308, (308, 406)),
    (480, 640, 505, (518, 672)),   # 505 / 14 rounds to 36 * 14 = 504 < 505: rounded up to 518 instead
])
def test_network_size_is_official_lower_bound(height: int, width: int, input_size: int, expected: tuple) -> None:
    assert network_size(height, width, input_size) == expected


def official_image2tensor(raw_bgr: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """The official transform chain written out (cvtColor /255, INTER_CUBIC, (x - mean) / std, CHW float32)."""
    image = cv2.cvtColor(raw_bgr, cv2.COLOR_BGR2RGB) / 255.0
    image = cv2.resize(image, (cols, rows), interpolation=cv2.INTER_CUBIC)
    image = (image - [0.485, 0.456, 0.406]) / [0.229, 0.224, 0.225]
    return np.ascontiguousarray(np.transpose(image, (2, 0, 1))).astype(np.float32)


def test_exact_preprocess_is_bit_exact(frame_bgr: np.ndarray) -> None:
    ours = exact_preprocess(frame_bgr, 518, "bgr")
    np.testing.assert_array_equal(ours, official_image2tensor(frame_bgr, 518, 686))
    rgb = np.ascontiguousarray(frame_bgr[..., ::-1])
    np.testing.assert_array_equal(exact_preprocess(rgb, 518, "rgb"), ours)


def test_fast_preprocess_close_to_exact(frame_bgr: np.ndarray) -> None:
    fast = FastPreprocessor(torch.device("cpu"))(frame_bgr[None], 518, "bgr")[0].numpy()
    exact = exact_preprocess(frame_bgr, 518, "bgr")
    assert fast.shape == exact.shape == (3, 518, 686)
    interior = np.s_[:, 8:-8, 8:-8]  # cv2 reflects at the border, torch replicates
    assert np.abs(fast[interior] - exact[interior]).max() < 1e-3
    assert np.abs(fast - exact).mean() < 1e-3


def test_infer_output_contract(exact_vits: DepthEstimator) -> None:
    image = np.random.default_rng(1).integers(0, 256, size=(37, 53, 3), dtype=np.uint8)
    depth = exact_vits.infer(image, input_size=98, color_order="rgb")
    assert depth.shape == (37, 53) and depth.dtype == np.float32 and depth.flags.c_contiguous
    assert np.isfinite(depth).all() and (depth > 0).all() and (depth < 20.0).all()
    assert set(exact_vits.last_timings) == {"preprocess", "inference", "postprocess"}
    assert all(v >= 0 for v in exact_vits.last_timings.values()) and exact_vits.last_timings["inference"] > 0
    assert (exact_vits.config.encoder, exact_vits.config.model_type) == ("vits", "metric")
    assert (exact_vits.device.type, exact_vits.precision, exact_vits.preprocess) == ("cpu", "fp32", "exact")


def test_infer_batch_keeps_order_and_matches_single(exact_vits: DepthEstimator) -> None:
    rng = np.random.default_rng(2)
    a, b = (rng.integers(0, 256, size=(60, 80, 3), dtype=np.uint8) for _ in range(2))
    c = rng.integers(0, 256, size=(80, 60, 3), dtype=np.uint8)
    batch = exact_vits.infer_batch([a, c, b], input_size=112, color_order="bgr")
    assert [d.shape for d in batch] == [(60, 80), (80, 60), (60, 80)]
    for image, depth in zip((a, c, b), batch):
        np.testing.assert_allclose(depth, exact_vits.infer(image, 112, "bgr"), rtol=1e-4, atol=1e-4)


def test_strided_views_accepted_in_both_modes(exact_vits: DepthEstimator, fast_vits: DepthEstimator) -> None:
    """Mirrored (negative-stride) and row-padded views, as message buffers or flips give them."""
    rng = np.random.default_rng(4)
    image = rng.integers(0, 256, size=(40, 60, 3), dtype=np.uint8)
    padded = np.zeros((40, 64, 3), dtype=np.uint8)
    padded[:, :60] = image
    for est in (exact_vits, fast_vits):
        np.testing.assert_array_equal(est.infer(padded[:, :60], 56), est.infer(image, 56))
        np.testing.assert_array_equal(est.infer(image[:, ::-1], 56), est.infer(image[:, ::-1].copy(), 56))


def test_random_weights_are_deterministic_per_seed() -> None:
    image = np.random.default_rng(3).integers(0, 256, size=(42, 56, 3), dtype=np.uint8)
    kwargs = dict(encoder="vits", model_type="relative", device="cpu", precision="fp32", backend="torch")
    first = DepthEstimator.random(seed=0, **kwargs).infer(image, 56)
    again = DepthEstimator.random(seed=0, **kwargs).infer(image, 56)
    other = DepthEstimator.random(seed=1, **kwargs).infer(image, 56)
    np.testing.assert_array_equal(first, again)
    assert not np.allclose(first, other)


def test_warmup_runs_the_network(exact_vits: DepthEstimator) -> None:
    exact_vits.last_timings = {}
    exact_vits.warmup(height=48, width=64, input_size=56)
    assert exact_vits.last_timings["inference"] > 0


@pytest.mark.parametrize(("image", "error", "message"), [
    (np.zeros((10, 10, 3), dtype=np.float32), ValueError, "uint8 HxWx3, got float32"),
    (np.zeros((10, 10), dtype=np.uint8), ValueError, r"uint8 HxWx3, got uint8 with shape \(10, 10\)"),
    (np.zeros((10, 10, 4), dtype=np.uint8), ValueError, r"shape \(10, 10, 4\)"),
    (np.zeros((0, 10, 3), dtype=np.uint8), ValueError, r"shape \(0, 10, 3\)"),
    ([[0, 0, 0]], TypeError, "numpy array, got list"),
])
def test_bad_images_refused(exact_vits: DepthEstimator, image, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        exact_vits.infer(image, 56)


def test_bad_arguments_refused(exact_vits: DepthEstimator) -> None:
    image = np.zeros((20, 20, 3), dtype=np.uint8)
    with pytest.raises(ValueError, match="color_order must be 'rgb' or 'bgr', got 'rgba'"):
        exact_vits.infer(image, 56, color_order="rgba")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="input_size must be an integer >= 14, got 0"):
        exact_vits.infer(image, 0)
    with pytest.raises(ValueError, match="'fp16' needs a CUDA device"):
        DepthEstimator.random(device="cpu", precision="fp16")
    with pytest.raises(ValueError, match="preprocess 'gpu' is not one of"):
        DepthEstimator.random(device="cpu", preprocess="gpu")  # type: ignore[arg-type]


def test_auto_preprocess_is_exact_on_cpu() -> None:
    est = DepthEstimator.random(device="cpu", precision="fp32")
    assert est.preprocess == "exact"


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_fast_fp16_close_to_cpu_exact(frame_bgr: np.ndarray, exact_vits: DepthEstimator) -> None:
    gpu = DepthEstimator.random(encoder="vits", model_type="metric", device="cuda", precision="auto")
    assert (gpu.precision, gpu.preprocess) == ("fp16", "fast")
    ref = exact_vits.infer(frame_bgr, 518, "bgr")
    depth = gpu.infer(frame_bgr, 518, "bgr")
    assert depth.shape == ref.shape and depth.dtype == np.float32
    assert np.abs(depth - ref).mean() / np.abs(ref).mean() < 0.02
