"""The official checkpoint catalog: one well-formed entry per (encoder, model type, dataset)."""

import re

import pytest

from dav2_ros.weights.catalog import (
    DATASET_CHOICES,
    ENCODER_CHOICES,
    OFFICIAL_CHECKPOINTS,
    by_filename,
    official_checkpoint,
)


def test_every_configuration_has_exactly_one_entry():
    names = [entry.filename for entry in OFFICIAL_CHECKPOINTS]
    assert len(names) == len(set(names)) == 3 * (1 + len(DATASET_CHOICES))
    for encoder in ENCODER_CHOICES:
        assert official_checkpoint(encoder, "relative").filename == f"depth_anything_v2_{encoder}.pth"
        for dataset in DATASET_CHOICES:
            entry = official_checkpoint(encoder, "metric", dataset)
            assert entry.filename == f"depth_anything_v2_metric_{dataset}_{encoder}.pth"
            assert (entry.encoder, entry.model_type, entry.dataset) == (encoder, "metric", dataset)


@pytest.mark.parametrize(
    "encoder, model_type, dataset, url",
    [
        ("vits", "relative", None,  # the one repository with a pinned commit
         "https://huggingface.co/depth-anything/Depth-Anything-V2-Small/resolve/"
         "03876f8651c73a60fe4c2c48294e09fcb6838fcf/depth_anything_v2_vits.pth"),
        ("vitb", "relative", None,
         "https://huggingface.co/depth-anything/Depth-Anything-V2-Base/resolve/main/depth_anything_v2_vitb.pth"),
        ("vitl", "relative", None,
         "https://huggingface.co/depth-anything/Depth-Anything-V2-Large/resolve/main/depth_anything_v2_vitl.pth"),
        ("vits", "metric", "hypersim",
         "https://huggingface.co/depth-anything/Depth-Anything-V2-Metric-Hypersim-Small/resolve/main/"
         "depth_anything_v2_metric_hypersim_vits.pth"),
        ("vitb", "metric", "vkitti",
         "https://huggingface.co/depth-anything/Depth-Anything-V2-Metric-VKITTI-Base/resolve/main/"
         "depth_anything_v2_metric_vkitti_vitb.pth"),
        ("vitl", "metric", "hypersim",
         "https://huggingface.co/depth-anything/Depth-Anything-V2-Metric-Hypersim-Large/resolve/main/"
         "depth_anything_v2_metric_hypersim_vitl.pth"),
    ],
)
def test_urls_are_the_official_readme_links_at_the_pinned_revision(encoder, model_type, dataset, url):
    assert official_checkpoint(encoder, model_type, dataset).url == url


def test_mirror_base_url_keeps_the_hub_layout():
    entry = official_checkpoint("vits", "metric", "vkitti")
    assert entry.url_from("http://127.0.0.1:8000/") == (
        "http://127.0.0.1:8000/depth-anything/Depth-Anything-V2-Metric-VKITTI-Small/resolve/main/"
        "depth_anything_v2_metric_vkitti_vits.pth"
    )


def test_every_entry_has_a_distinct_sha256_and_a_commit_or_main():
    known = [entry.sha256 for entry in OFFICIAL_CHECKPOINTS]
    assert all(re.fullmatch(r"[0-9a-f]{64}", value) for value in known)
    assert len(known) == len(set(known))
    assert all(entry.revision == "main" or re.fullmatch(r"[0-9a-f]{40}", entry.revision)
               for entry in OFFICIAL_CHECKPOINTS)
    # The two published values we can cross-check by size: Small ~99 MB, Base ~390 MB.
    assert official_checkpoint("vits", "relative").size == 99218434
    assert official_checkpoint("vitb", "relative").size == 389961218


def test_metric_max_depth_and_description():
    indoor = official_checkpoint("vits", "metric", "hypersim")
    outdoor = official_checkpoint("vitb", "metric", "vkitti")
    assert indoor.max_depth == 20.0 and outdoor.max_depth == 80.0
    assert official_checkpoint("vits", "relative").max_depth is None
    assert "indoor" in indoor.describe() and "outdoor" in outdoor.describe()


def test_relative_ignores_dataset_and_lookup_by_filename():
    assert official_checkpoint("vitb", "relative", None) is official_checkpoint("vitb", "relative", "vkitti")
    entry = official_checkpoint("vitl", "metric", "vkitti")
    assert by_filename(entry.filename) is entry
    assert by_filename("my_finetune.pth") is None


@pytest.mark.parametrize(
    "args, message",
    [
        (("vitg", "relative", None), "encoder must be one of vits, vitb, vitl"),
        (("vits", "absolute", None), "model type must be one of metric, relative"),
        (("vits", "metric", "nyu"), "dataset must be one of hypersim, vkitti"),
        (("vits", "metric", None), "dataset must be one of hypersim, vkitti"),
    ],
)
def test_unknown_choices_are_refused_with_the_choices(args, message):
    with pytest.raises(ValueError, match=message):
        official_checkpoint(*args)
