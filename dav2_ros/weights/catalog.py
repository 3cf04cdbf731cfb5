"""The official Depth Anything V2 checkpoints: file names, Hugging Face repositories, revisions and checksums.

One entry per (encoder, model type, dataset). The SHA-256 values and sizes are the Git LFS
pointers that the official `depth-anything/*` Hugging Face repositories publish for each file
(their "Git LFS Details" pages and upload commits). The SHA-256 is what pins a file: the
downloader refuses any other content. Where the commit of a repository is known the download
is pinned to it as well; the others are fetched from `main` and held to their SHA-256.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, get_args

# torch-free: the one vocabulary of encoders, head types, training sets and the metric heads' scales
from dav2_ros.model.config import DEFAULT_MAX_DEPTH, Dataset, ModelType
from dav2_ros.model.config import EncoderName as Encoder

ENCODER_CHOICES: tuple[str, ...] = get_args(Encoder)
MODEL_TYPE_CHOICES: tuple[str, ...] = get_args(ModelType)
DATASET_CHOICES: tuple[str, ...] = get_args(Dataset)

#: The hub's own address (the download goes to $DAV2_WEIGHTS_BASE_URL, --base-url or $HF_ENDPOINT when set).
DEFAULT_BASE_URL = "https://huggingface.co"

#: Full commits of the official repositories, where one was found (each holds the file with the
#: catalog's SHA-256): Depth-Anything-V2-Small at 03876f8, the revision NVIDIA's Depth Anything
#: model-preparation script pins together with the same SHA-256 (715fade...). No pinned commit of
#: the other eight repositories could be found; they are fetched from "main" and held to their SHA-256.
PINNED_REVISIONS: dict[str, str] = {
    "depth-anything/Depth-Anything-V2-Small": "03876f8651c73a60fe4c2c48294e09fcb6838fcf",
}

#: Metric heads were fine-tuned with this output scale (meters): Hypersim indoor, Virtual KITTI 2 outdoor.
DATASET_MAX_DEPTH: dict[str, float] = DEFAULT_MAX_DEPTH
DATASET_SCENE: dict[str, str] = {"hypersim": "indoor", "vkitti": "outdoor"}

_SIZE_NAME = {"vits": "Small", "vitb": "Base", "vitl": "Large"}
_DATASET_REPO_NAME = {"hypersim": "Hypersim", "vkitti": "VKITTI"}


@dataclass(frozen=True)
class OfficialCheckpoint:
    """One official checkpoint file and where to fetch it.

    Attributes:
        encoder: ViT size the file holds weights for.
        model_type: "relative" (inverse depth, ReLU head) or "metric" (meters, sigmoid head).
        dataset: metric fine-tuning set ("hypersim" indoor, "vkitti" outdoor); None for relative.
        filename: the official file name, also its name in the weights folder.
        hf_repo: Hugging Face repository ("depth-anything/Depth-Anything-V2-Small", ...).
        sha256: published SHA-256 of the file; the downloader keeps nothing else.
        size: published size in bytes, or None where none was found.
    """

    encoder: Encoder
    model_type: ModelType
    dataset: Optional[Dataset]
    filename: str
    hf_repo: str
    sha256: str
    size: Optional[int]

    @property
    def revision(self) -> str:
        """The repository commit to fetch (`PINNED_REVISIONS`), or "main" where no commit is pinned."""
        return PINNED_REVISIONS.get(self.hf_repo, "main")

    @property
    def max_depth(self) -> Optional[float]:
        """The metric head's output scale in meters (None for relative checkpoints)."""
        return DATASET_MAX_DEPTH[self.dataset] if self.dataset is not None else None

    @property
    def url(self) -> str:
        """The file's Hugging Face download URL (at the pinned revision)."""
        return self.url_from(DEFAULT_BASE_URL)

    def url_from(self, base_url: str) -> str:
        """The download URL under another host laid out like the hub (a mirror, a test server)."""
        return f"{base_url.rstrip('/')}/{self.hf_repo}/resolve/{self.revision}/{self.filename}"

    def describe(self) -> str:
        """A short human label, e.g. 'vits metric hypersim (indoor, max_depth 20 m)'."""
        if self.dataset is None:
            return f"{self.encoder} relative (inverse depth)"
        return (
            f"{self.encoder} metric {self.dataset} "
            f"({DATASET_SCENE[self.dataset]}, max_depth {self.max_depth:g} m)"
        )


def _relative(encoder: Encoder, sha256: str, size: Optional[int]) -> OfficialCheckpoint:
    """Catalog entry of a relative-depth checkpoint."""
    repo = f"depth-anything/Depth-Anything-V2-{_SIZE_NAME[encoder]}"
    return OfficialCheckpoint(
        encoder=encoder,
        model_type="relative",
        dataset=None,
        filename=f"depth_anything_v2_{encoder}.pth",
        hf_repo=repo,
        sha256=sha256,
        size=size,
    )


def _metric(encoder: Encoder, dataset: Dataset, sha256: str, size: Optional[int]) -> OfficialCheckpoint:
    """Catalog entry of a metric-depth checkpoint."""
    repo = f"depth-anything/Depth-Anything-V2-Metric-{_DATASET_REPO_NAME[dataset]}-{_SIZE_NAME[encoder]}"
    return OfficialCheckpoint(
        encoder=encoder,
        model_type="metric",
        dataset=dataset,
        filename=f"depth_anything_v2_metric_{dataset}_{encoder}.pth",
        hf_repo=repo,
        sha256=sha256,
        size=size,
    )


# Sources of the checksums (Git LFS pointer "oid sha256:" / "SHA256:" on huggingface.co):
#   vits      depth-anything/Depth-Anything-V2-Small commit 65ae6e3 (size 99218434)
#   vitb      depth-anything/Depth-Anything-V2-Base commit f11825d (size 389961218)
#   vitl      the value several independent projects pin for depth-anything/Depth-Anything-V2-Large's
#             depth_anything_v2_vitl.pth (size 1341395338); the repo's own LFS page was not reachable here
#   hypersim vitb / vitl: the repos' blob pages (sizes not published there as exact byte counts)
#   vkitti vits: blob page; vkitti vitb commit c3208e5 (size 389964656); vkitti vitl commit d749ee0
#             (size 1341401064)
#   hypersim vits: the value two independent projects pin for depth_anything_v2_metric_hypersim_vits.pth
#             (a PowerShell model set-up script and a robot-navigation install guide)
OFFICIAL_CHECKPOINTS: tuple[OfficialCheckpoint, ...] = (
    _relative("vits", "715fade13be8f229f8a70cc02066f656f2423a59effd0579197bbf57860e1378", 99218434),
    _relative("vitb", "0d2b7002e62d39d655571c371333340bd88f67ab95050c03591555aa05645328", 389961218),
    _relative("vitl", "a7ea19fa0ed99244e67b624c72b8580b7e9553043245905be58796a608eb9345", 1341395338),
    _metric("vits", "hypersim", "b782898d8a3e8be1f639de33837ed85e9b4b73e40f8f5e5cd99067588d722545", None),
    _metric("vitb", "hypersim", "9dc9e274c5eff55c6daf27b660c0ced0eca4e8593a6da90cdcb04d2b4d3f3fa2", None),
    _metric("vitl", "hypersim", "6f82ff2bc543ac02ddff4aa31fa363676a8305dd3ccf04e80e2af115a044cb6d", None),
    _metric("vits", "vkitti", "9203e538d35255c90dda4b7fedb47ff33fe725497bcca3b1e53b3a65ee63f0cb", None),
    _metric("vitb", "vkitti", "4dad67a7cc10b462bca48e6b8569c762b8eb3c1adada170a3851a6d3ba37bb3e", 389964656),
    _metric("vitl", "vkitti", "239b1054a369e66da2576e9a118d6d7c12d90dc8ebe609579a9a09cd8e05fe38", 1341401064),
)

_BY_FILENAME: dict[str, OfficialCheckpoint] = {c.filename: c for c in OFFICIAL_CHECKPOINTS}


def official_checkpoint(encoder: str, model_type: str, dataset: Optional[str] = "hypersim") -> OfficialCheckpoint:
    """The official checkpoint for a configuration; `dataset` matters only for metric models.

    Raises:
        ValueError: an encoder, model type or dataset that is not one of the choices.
    """
    if encoder not in ENCODER_CHOICES:
        raise ValueError(f"encoder must be one of {', '.join(ENCODER_CHOICES)}, got {encoder!r}")
    if model_type not in MODEL_TYPE_CHOICES:
        raise ValueError(f"model type must be one of {', '.join(MODEL_TYPE_CHOICES)}, got {model_type!r}")
    if model_type == "relative":
        return _BY_FILENAME[f"depth_anything_v2_{encoder}.pth"]
    if dataset not in DATASET_CHOICES:
        raise ValueError(
            f"dataset must be one of {', '.join(DATASET_CHOICES)} for a metric model "
            f"(hypersim = indoor, vkitti = outdoor), got {dataset!r}"
        )
    return _BY_FILENAME[f"depth_anything_v2_metric_{dataset}_{encoder}.pth"]


def by_filename(filename: str) -> Optional[OfficialCheckpoint]:
    """The catalog entry whose official file name is `filename`, or None."""
    return _BY_FILENAME.get(filename)
