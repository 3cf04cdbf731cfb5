"""The node's CPU runtime setting (OMP_WAIT_POLICY=PASSIVE before torch loads), checked in fresh interpreters."""

from __future__ import annotations

import os
import subprocess
import sys

from project_paths import PROJECT_DIR

SCRIPT = """
import os, sys
from dav2_ros.pipeline.builders import prepare_cpu_runtime
{before}
took = prepare_cpu_runtime()
print(took, os.environ.get("OMP_WAIT_POLICY"))
"""


def run(before: str = "", **env: str) -> str:
    environment = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    environment.update(env, PYTHONPATH=str(PROJECT_DIR))
    out = subprocess.run([sys.executable, "-c", SCRIPT.format(before=before)], env=environment,
                         capture_output=True, text=True, check=True, timeout=120)
    return out.stdout.strip()


def test_passive_wait_policy_is_set_before_torch_loads() -> None:
    assert run() == "True PASSIVE"


def test_the_users_wait_policy_wins() -> None:
    assert run(OMP_WAIT_POLICY="ACTIVE") == "True ACTIVE"


def test_nothing_is_changed_once_torch_is_loaded() -> None:
    assert run("import torch") == "False None"
