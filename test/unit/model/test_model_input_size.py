"""One rule for `input_size` (dav2_ros.model.config.input_size_problem): the library (DepthEstimator,
ProcessingSettings) takes any integer of at least one patch; the node's parameter is the same rule within (70, 1540),
multiples of 14."""

from __future__ import annotations

import re

import numpy as np
import pytest

from dav2_ros.model.config import PATCH_SIZE, input_size_problem
from dav2_ros.pipeline.processing import ProcessingSettings
from dav2_ros.pipeline.settings import INPUT_SIZE_MAX, INPUT_SIZE_MIN, SPECS_BY_NAME, check_value

ACCEPTED = [14, 28, 56, 70, 100, 518, 5000, np.int64(98), np.int32(14)]
REFUSED = [13, 0, -14, True, 98.0, "98", None, np.float32(98.0)]


@pytest.mark.parametrize("value", ACCEPTED)
def test_the_library_takes_any_integer_of_one_patch_or_more(value):
    assert input_size_problem(value) is None
    assert ProcessingSettings(input_size=value).input_size == value


@pytest.mark.parametrize("value", REFUSED)
def test_the_library_refuses_the_rest_with_one_message(value):
    assert input_size_problem(value) == f"must be an integer >= {PATCH_SIZE}"
    with pytest.raises(ValueError, match=re.escape(f"input_size must be an integer >= 14, got {value!r}")):
        ProcessingSettings(input_size=value)


def test_the_estimator_applies_the_same_rule():
    from dav2_ros.engines.estimator import DepthEstimator

    estimator = DepthEstimator.random(device="cpu", precision="fp32", backend="torch")
    image = np.zeros((20, 20, 3), np.uint8)
    for value in REFUSED:
        with pytest.raises(ValueError, match=re.escape(f"input_size must be an integer >= 14, got {value!r}")):
            estimator.infer(image, value)  # type: ignore[arg-type]
    assert estimator.infer(image, np.int64(14)).shape == (20, 20)


@pytest.mark.parametrize("value, reason", [
    (56, "must be in [70, 1540]"),
    (1554, "must be in [70, 1540]"),
    (0, "must be in [70, 1540]"),
    (100, "must be a multiple of 14 (the ViT patch size)"),
    (70, None), (518, None), (1540, None),
])
def test_the_node_parameter_is_the_rule_within_its_range(value, reason):
    assert input_size_problem(value, (INPUT_SIZE_MIN, INPUT_SIZE_MAX)) == reason
    assert check_value("input_size", value) == reason
    assert SPECS_BY_NAME["input_size"].int_range == (INPUT_SIZE_MIN, INPUT_SIZE_MAX, PATCH_SIZE)  # what ROS declares


@pytest.mark.parametrize("bounds", [(0, 140), (10, 140), (71, 140), (140, 70)])
def test_bounds_must_be_patch_multiples(bounds):
    with pytest.raises(ValueError, match="bounds"):
        input_size_problem(98, bounds)
