"""Nothing outside test/ uses the test helpers: test/support serves the tests and the campaigns under test/
(test/campaigns/), never the package, its scripts, launch files or benchmarks. A .py file outside test/ fails here
when it imports a test/support module by name or builds the path to test/support (to put it on sys.path);
docstrings and comments may mention it."""

from __future__ import annotations

import ast
import os
import pathlib

from project_paths import PROJECT_DIR, TEST_DIR

SUPPORT_DIR = TEST_DIR / "support"
#: Top-level folders of the project that are not scanned: the tests themselves, and build outputs.
NOT_SCANNED = {"test", "build", "install", "log"}


def support_modules() -> set[str]:
    """The names the tests import the helpers by (test/conftest.py puts test/support on sys.path)."""
    return {path.stem for path in SUPPORT_DIR.glob("*.py")}


def _scanned(folder: str, name: str) -> bool:
    hidden_or_built = name.startswith(".") or name.endswith(".egg-info") or name == "__pycache__"  # .venv, .git
    return not hidden_or_built and not (pathlib.Path(folder) == PROJECT_DIR and name in NOT_SCANNED)


def files_outside_test() -> list[pathlib.Path]:
    """Every .py file of the project outside test/ (hidden folders, the venv and build outputs skipped)."""
    found = []
    for folder, subfolders, files in os.walk(PROJECT_DIR):
        subfolders[:] = sorted(name for name in subfolders if _scanned(folder, name))
        found += [pathlib.Path(folder) / name for name in sorted(files) if name.endswith(".py")]
    return found


def _docstrings(tree: ast.AST) -> set[int]:
    """ids of the string constants that are statements of their own (docstrings, bare strings)."""
    return {id(node.value) for node in ast.walk(tree) if isinstance(node, ast.Expr)
            and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)}


def _is_str(node: ast.AST, value: str) -> bool:
    return isinstance(node, ast.Constant) and node.value == value


def uses_of_test_support(source: str, modules: set[str]) -> list[str]:
    """What in `source` reaches into test/support: imports of its modules, and the path built in code
    ("test/support", `... / "test" / "support"`, `join(..., "test", "support")`)."""
    tree = ast.parse(source)
    skip = _docstrings(tree)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [f"line {node.lineno}: import {a.name}" for a in node.names if a.name.split(".")[0] in modules]
        elif isinstance(node, ast.ImportFrom) and not node.level and (node.module or "").split(".")[0] in modules:
            found.append(f"line {node.lineno}: from {node.module} import ...")
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skip \
                and "test/support" in node.value.replace("\\", "/"):
            found.append(f"line {node.lineno}: the path {node.value!r}")
        elif isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div) and _is_str(node.right, "support") \
                and isinstance(node.left, ast.BinOp) and _is_str(node.left.right, "test"):
            found.append(f"line {node.lineno}: the path .../'test'/'support'")
        elif isinstance(node, ast.Call) and any(_is_str(a, "test") and _is_str(b, "support")
                                                for a, b in zip(node.args, node.args[1:])):
            found.append(f"line {node.lineno}: the path (..., 'test', 'support')")
    return found


def test_the_check_sees_imports_and_path_plumbing_but_not_mentions():
    modules = {"node_harness", "robustness_harness"}
    assert uses_of_test_support("from robustness_harness import Camera\n", modules)
    assert uses_of_test_support("import node_harness as nh\n", modules)
    assert uses_of_test_support('sys.path[:0] = [str(ROOT / "test" / "support")]\n', modules)
    assert uses_of_test_support('SUPPORT = os.path.join(ROOT, "test", "support")\n', modules)
    assert uses_of_test_support('sys.path.insert(0, "test/support")\n', modules)
    assert not uses_of_test_support('"""Counts frames; see test/support/reliability_probe.py."""\n'
                                    "# test/support has the rigs\nfrom dav2_ros import node_harness\n"
                                    "from .robustness_harness import x\nimport harness\n", modules)


def test_nothing_outside_test_imports_the_test_helpers():
    modules = support_modules()
    assert {"node_harness", "node_rig", "reliability_probe"} <= modules
    files = files_outside_test()
    assert PROJECT_DIR / "dav2_ros" / "node" / "depth_node.py" in files and PROJECT_DIR / "setup.py" in files
    assert not any(TEST_DIR in path.parents for path in files)
    uses = [f"{path.relative_to(PROJECT_DIR)} {use}" for path in files
            for use in uses_of_test_support(path.read_text(encoding="utf-8"), modules)]
    assert not uses, ("test helpers are for test/ only (a script built on the test rigs belongs under "
                      "test/campaigns/):\n" + "\n".join(uses))
