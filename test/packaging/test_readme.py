"""The README stays true: its parameter table is the node's, and CI runs the test command it documents."""

import sys

from project_paths import PROJECT_DIR

sys.path.insert(0, str(PROJECT_DIR / "scripts"))

from param_table import param_table  # noqa: E402


def test_readme_parameter_table_matches_the_node():
    readme = (PROJECT_DIR / "README.md").read_text()
    assert param_table() in readme, "README parameter table is stale: regenerate it with scripts/param_table.py"


def test_ci_runs_the_readme_test_command():
    readme = (PROJECT_DIR / "README.md").read_text()
    ci = (PROJECT_DIR / ".ci" / "run").read_text()
    assert "scripts/test.sh" in readme and "bash scripts/test.sh" in ci
