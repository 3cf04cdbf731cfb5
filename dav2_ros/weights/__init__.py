"""Official checkpoint catalog, the local weights folder and the downloader (no torch at import time).

    from dav2_ros.weights import resolve_checkpoint, WeightsNotFound
    path = resolve_checkpoint("", "vits", "metric", "hypersim")   # or raises WeightsNotFound
"""

from dav2_ros.weights.cache import WeightsNotFound, default_weights_dir, resolve_checkpoint, weights_dir
from dav2_ros.weights.catalog import OFFICIAL_CHECKPOINTS, OfficialCheckpoint, official_checkpoint
from dav2_ros.weights.download import DownloadError, DownloadResult, download_checkpoint

__all__ = [
    "OFFICIAL_CHECKPOINTS",
    "DownloadError",
    "DownloadResult",
    "OfficialCheckpoint",
    "WeightsNotFound",
    "default_weights_dir",
    "download_checkpoint",
    "official_checkpoint",
    "resolve_checkpoint",
    "weights_dir",
]
