"""Checkpoint faults at start, through the real node process: a missing file, a truncated one, one for
another encoder and a pickle that carries code. Each: exit code non-zero, one clear FATAL line naming
the file and the cause, no traceback -- and the pickle's code never ran."""

from __future__ import annotations

import os
import pathlib
import re
import shlex

import pytest
import torch

from dav2_ros.model.config import ModelConfig
from dav2_ros.model.depth_anything_v2 import DepthAnythingV2
from node_harness import NodeProcess

pytestmark = pytest.mark.ros

STARTUP_S = 180.0
PARAMS = {"device": "cpu", "precision": "fp32", "input_size": 70, "num_threads": 1, "allow_random_weights": False}


class ShellPayload:
    """Unpickling this runs `touch <marker>`: the classic malicious-checkpoint payload."""

    def __init__(self, marker: pathlib.Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {shlex.quote(str(self.marker))}",))


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> dict[str, pathlib.Path]:
    """The bad files: a real vits checkpoint (official keys, random values) truncated to half, the same
    file whole (for encoder:=vitb), a pickle with a payload, and a path that does not exist."""
    folder = tmp_path_factory.mktemp("checkpoints")
    whole = folder / "depth_anything_v2_metric_hypersim_vits.pth"
    torch.save(DepthAnythingV2(ModelConfig("vits", "metric")).state_dict(), whole)
    truncated = folder / "truncated_vits.pth"
    data = whole.read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    marker = folder / "payload_ran"
    evil = folder / "evil.pth"
    torch.save({"pretrained.cls_token": torch.zeros(1, 1, 384), "payload": ShellPayload(marker)}, evil)
    torch.load(evil, weights_only=False)  # the payload is live: an unsafe load runs it...
    assert marker.exists()
    marker.unlink()  # ...and the node must not
    return {"whole": whole, "truncated": truncated, "evil": evil, "marker": marker,
            "missing": folder / "nowhere" / "depth_anything_v2_metric_hypersim_vits.pth"}


CASES = {
    "missing": ({}, r"checkpoint file not found: {path} \(given explicitly\)"),
    "truncated": ({}, r"checkpoint {path} is corrupt or truncated \("),
    "wrong encoder": ({"encoder": "vitb"}, r"{path}: checkpoint is vits \(embed dim 384\), encoder parameter is vitb"),
    "pickle with code": ({}, r"refused to load checkpoint {path}: it holds more than tensors \(objects or code\)"),
}
FILES = {"missing": "missing", "truncated": "truncated", "wrong encoder": "whole", "pickle with code": "evil"}


@pytest.fixture(scope="module")
def outcomes(checkpoints) -> dict[str, tuple[int, str]]:
    """All four nodes started at once (each loads torch), then their exit codes and output."""
    nodes = {}
    for case, (params, _) in CASES.items():
        nodes[case] = NodeProcess(dict(PARAMS, checkpoint=str(checkpoints[FILES[case]]), **params),
                                  namespace=f"/dav2_ckpt_{case.replace(' ', '_')}").start()
    return {case: (node.wait(STARTUP_S), node.output) for case, node in nodes.items()}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_checkpoint_stops_the_node_with_one_clear_line(case, checkpoints, outcomes):
    code, output = outcomes[case]
    path = checkpoints[FILES[case]]
    assert code != 0, output
    assert "Traceback" not in output, output
    fatal = [line for line in output.splitlines() if "[FATAL]" in line or "[ERROR]" in line]
    assert len(fatal) == 1, f"expected one error line, got:\n{output}"
    assert "cannot start:" in fatal[0]
    expected = CASES[case][1].format(path=re.escape(str(path)))
    assert re.search(expected, fatal[0]), f"{expected!r} not in {fatal[0]!r}"
    print(f"\n{case}: exit code {code}: {fatal[0]}")


def test_the_pickled_code_never_ran(checkpoints, outcomes):
    assert outcomes["pickle with code"][0] != 0
    assert not checkpoints["marker"].exists(), "loading the checkpoint ran the code it carried"
