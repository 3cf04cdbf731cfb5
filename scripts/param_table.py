"""Prints the node's parameter table (markdown) from dav2_ros.pipeline.settings.PARAM_SPECS, for README.md.

test/packaging/test_readme.py checks that README.md holds exactly this table, so the README cannot drift from the code.
"""

from dav2_ros.pipeline.settings import PARAM_SPECS


def _range(spec) -> str:
    if spec.choices:
        return " \\| ".join(spec.choices)
    if spec.int_range:
        low, high, step = spec.int_range
        return f"{low}..{high}" + (f", step {step}" if step > 1 else "")
    if spec.float_range:
        return f"{spec.float_range[0]:g}..{spec.float_range[1]:g}"
    if isinstance(spec.default, tuple):
        return "string array"
    return ""


def param_table() -> str:
    """One markdown row per parameter: name, default, allowed values, restart needed, description."""
    rows = ["| parameter | default | allowed | change | description |", "|---|---|---|---|---|"]
    for spec in PARAM_SPECS:
        if isinstance(spec.default, str):
            default = f'`"{spec.default}"`'
        elif isinstance(spec.default, tuple):
            default = f"`[{', '.join(spec.default)}]`"
        else:
            default = f"`{str(spec.default).lower()}`"
        change = "restart" if spec.read_only else "live"
        rows.append(f"| `{spec.name}` | {default} | {_range(spec)} | {change} | {spec.description} |")
    return "\n".join(rows)


if __name__ == "__main__":
    print(param_table())
