"""Deterministic stand-in weights for Depth Anything V2 (no pretrained weights can be downloaded for tests).

Copied from the project's parity reference, `../shared/reference/weights.py` (the scheme the official-output
fixtures in test/fixtures/parity were generated with), with type hints and an optional `seed` added. Every tensor
is drawn from its own generator seeded by the CRC32 of its state_dict key, so the values do not depend on key
order or on the module that owns the tensor; seed 0 reproduces the reference exactly.

Usage:
    sd = reference_state_dict({k: tuple(v.shape) for k, v in model.state_dict().items()})
    model.load_state_dict({k: torch.from_numpy(v) for k, v in sd.items()})
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Mapping, Sequence

import numpy as np


def reference_tensor(key: str, shape: Sequence[int], seed: int = 0) -> np.ndarray:
    """The stand-in float32 array for one state_dict entry, chosen by the key's last name component."""
    crc = zlib.crc32(key.encode("utf-8"))
    rng = np.random.default_rng(crc if seed == 0 else [crc, seed])
    shape = tuple(shape)
    noise = rng.standard_normal(shape).astype(np.float64)
    name = key.rsplit(".", 1)[-1]
    if key.endswith("output_conv2.2.bias"):
        value = 1.0 + 0.1 * noise  # keeps the final ReLU mostly active
    elif name == "gamma":
        value = 0.1 + 0.02 * noise  # LayerScale
    elif name == "weight" and len(shape) >= 2:
        value = noise / math.sqrt(float(np.prod(shape[1:])))
    elif name == "weight":
        value = 1.0 + 0.1 * noise  # LayerNorm scale
    elif name == "bias":
        value = 0.02 * noise
    else:
        value = 0.02 * noise  # cls_token, mask_token, pos_embed
    return value.astype(np.float32)


def reference_state_dict(shapes: Mapping[str, Sequence[int]], seed: int = 0) -> dict[str, np.ndarray]:
    """Stand-in arrays for every key of `shapes` (key -> shape)."""
    return {key: reference_tensor(key, tuple(shape), seed) for key, shape in shapes.items()}
