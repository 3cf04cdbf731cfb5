"""The packages of dav2_ros import downward only: each may import itself and the layers below it, never a package
of its own layer or above. The table is the architecture (docs/architecture.md); a new upward import fails here."""

from __future__ import annotations

import ast

from project_paths import PROJECT_DIR

PACKAGE_DIR = PROJECT_DIR / "dav2_ros"

#: Lowest first. "errors" is the module dav2_ros/errors.py; "" is dav2_ros/__init__.py.
LAYERS: list[set[str]] = [
    {"errors", "command_line", ""},
    {"model", "geometry"},  # the network (torch); numpy geometry
    {"conversions", "weights"},  # messages <-> numpy; checkpoints and their files
    {"engines"},  # what runs the network: the estimator, the torch runtime, OpenVINO, ONNX Runtime
    {"pipeline"},  # one frame: FrameProcessor, settings, outputs
    {"node", "offline", "cli", "bringup"},  # the ROS node, the bag tools, the command lines, the launch's logic
]
LAYER_OF = {package: level for level, packages in enumerate(LAYERS) for package in packages}


def package_of(module: str) -> str:
    """`dav2_ros.engines.estimator` -> `engines`; `dav2_ros.errors` -> `errors`; `dav2_ros` -> ``""``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def imported_modules(source: str, module: str) -> list[str]:
    """The dav2_ros modules that `source` (the text of `module`) imports, relative imports resolved."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")[: -node.level]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.append(target)
        elif isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
    return [name for name in found if name == "dav2_ros" or name.startswith("dav2_ros.")]


def upward_imports(sources: dict[str, str]) -> list[str]:
    """`importer -> imported` for every import that does not go strictly downward (or stay in its package)."""
    problems = []
    for module, source in sources.items():
        own = package_of(module)
        for target in imported_modules(source, module):
            other = package_of(target)
            if other == own:
                continue
            if LAYER_OF[other] >= LAYER_OF[own]:
                problems.append(f"{module} -> {target} ({own}: layer {LAYER_OF[own]}, "
                                f"{other}: layer {LAYER_OF[other]})")
    return problems


def package_sources(compatibility: bool = False) -> dict[str, str]:
    """Module name -> source of every module of the package; the re-exports kept for old import paths (marked
    `COMPATIBILITY_REEXPORT = True`) only with `compatibility`."""
    sources = {}
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        relative = path.relative_to(PROJECT_DIR).with_suffix("")
        parts = list(relative.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        source = path.read_text()
        if compatibility == ("COMPATIBILITY_REEXPORT = True" in source):
            sources[".".join(parts)] = source
    return sources


def test_nothing_in_the_package_imports_an_old_path():
    old_paths = set(package_sources(compatibility=True))
    assert old_paths, "the compatibility re-exports are gone: drop this test"
    uses = [f"{module} -> {target}" for module, source in package_sources().items()
            for target in imported_modules(source, module) if target in old_paths]
    assert uses == []


def test_every_package_has_a_layer():
    packages = {package_of(module) for module in package_sources()}
    assert packages <= set(LAYER_OF), f"packages without a layer: {sorted(packages - set(LAYER_OF))}"


def test_the_packages_import_downward_only():
    assert upward_imports(package_sources()) == []


def test_an_upward_import_is_caught():
    """The check itself: the network importing the engines (the import this table was made to remove), a lazy
    import inside a function, and a relative one, each fail."""
    sources = package_sources()
    sources["dav2_ros.model.config"] += "\nfrom dav2_ros.engines.registry import ENGINES\n"
    sources["dav2_ros.geometry.backproject"] += "\ndef late():\n    from dav2_ros.conversions import buffers\n"
    sources["dav2_ros.weights.cache"] += "\nfrom ..engines import base\n"
    problems = upward_imports(sources)
    assert any(p.startswith("dav2_ros.model.config -> dav2_ros.engines.registry") for p in problems), problems
    assert any(p.startswith("dav2_ros.geometry.backproject -> dav2_ros.conversions") for p in problems), problems
    assert any(p.startswith("dav2_ros.weights.cache -> dav2_ros.engines") for p in problems), problems
