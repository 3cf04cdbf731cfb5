"""Declares the node's parameters with descriptors (description, ranges, read_only) from the table in
`settings.py`, and validates every change with a reason, at declaration and at runtime."""

from __future__ import annotations

import threading
from typing import Callable, Optional

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, SetParametersResult
from rclpy.node import Node
from rclpy.parameter import Parameter

from dav2_ros.pipeline.settings import (
    PARAM_SPECS,
    SPECS_BY_NAME,
    NodeSettings,
    ParamSpec,
    SettingsError,
    check_value,
)


def descriptor_for(spec: ParamSpec) -> ParameterDescriptor:
    """The ROS descriptor of one parameter: rclpy itself enforces its ranges and read_only."""
    description = spec.description
    if spec.choices:
        description += f" One of: {', '.join(spec.choices)}."
    descriptor = ParameterDescriptor(description=description, read_only=spec.read_only)
    if isinstance(spec.default, tuple):
        # An empty default list has no element type for rclpy to infer (it would call it a byte array and then
        # refuse a string array from a params file); the on-set callback checks the type instead.
        descriptor.dynamic_typing = True
    if spec.choices:
        descriptor.additional_constraints = f"one of: {', '.join(spec.choices)}"
    if spec.int_range is not None:
        low, high, step = spec.int_range
        descriptor.integer_range = [IntegerRange(from_value=low, to_value=high, step=step)]
    if spec.float_range is not None:
        low_f, high_f = spec.float_range
        descriptor.floating_point_range = [FloatingPointRange(from_value=low_f, to_value=high_f, step=0.0)]
    return descriptor


def _ros_default(spec: ParamSpec) -> object:
    """The default as rclpy takes it (a list for array parameters)."""
    return list(spec.default) if isinstance(spec.default, tuple) else spec.default


class NodeParameters:
    """Owns the node's parameters: declares them, holds the current `NodeSettings`, refuses bad values.

    The on-set callback is registered before declaring, so values from a params file or the
    command line go through the same checks as a runtime `ros2 param set`. An accepted runtime
    change replaces `settings` atomically and calls `on_change(new_settings)`. Both happen on the
    executor thread (the parameter service's callback): the depth node's `on_change` only logs (a change of
    the published topics); its worker reads `settings` between batches and rebuilds what depends on them there.
    """

    def __init__(self, node: Node, on_change: Optional[Callable[[NodeSettings], None]] = None) -> None:
        self._node = node
        self._lock = threading.Lock()
        self._on_change = on_change
        self._settings: Optional[NodeSettings] = None
        node.add_on_set_parameters_callback(self._on_set_parameters)
        node.declare_parameters("", [(spec.name, _ros_default(spec), descriptor_for(spec)) for spec in PARAM_SPECS])
        values = {spec.name: node.get_parameter(spec.name).value for spec in PARAM_SPECS}
        self._settings = NodeSettings.from_params(values)

    @property
    def settings(self) -> NodeSettings:
        """The current, validated settings (a frozen snapshot; safe to keep for one frame)."""
        with self._lock:
            assert self._settings is not None
            return self._settings

    def _on_set_parameters(self, parameters: list[Parameter]) -> SetParametersResult:
        """Refuse invalid values with a reason; otherwise publish the new settings."""
        ours = {p.name: p.value for p in parameters if p.name in SPECS_BY_NAME}
        for name, value in ours.items():
            reason = check_value(name, value)
            if reason:
                return SetParametersResult(successful=False, reason=f"{name}={value!r}: {reason}")
        with self._lock:
            if self._settings is None:
                # Still declaring: check pairs like min_depth/max_valid_depth once both exist.
                return self._check_during_declaration(ours)
            try:
                updated = self._settings.with_params(ours)
            except SettingsError as error:
                return SetParametersResult(successful=False, reason=str(error))
            changed = updated != self._settings
            self._settings = updated
        if changed and self._on_change is not None:
            try:
                self._on_change(updated)
            except Exception as error:  # noqa: BLE001 -- the change stands; only its follow-up failed
                self._node.get_logger().error(f"parameters changed, but acting on it failed: "
                                              f"{type(error).__name__}: {error}")
        return SetParametersResult(successful=True)

    def _check_during_declaration(self, ours: dict) -> SetParametersResult:
        """Consistency checks against the parameters declared so far (declaration goes one by one)."""
        known = {spec.name: self._node.get_parameter(spec.name).value
                 for spec in PARAM_SPECS if self._node.has_parameter(spec.name)}
        known.update(ours)
        if all(spec.name in known for spec in PARAM_SPECS):
            try:
                NodeSettings.from_params(known)
            except SettingsError as error:
                return SetParametersResult(successful=False, reason=str(error))
        elif "min_depth" in known and "max_valid_depth" in known and known["min_depth"] >= known["max_valid_depth"]:
            return SetParametersResult(
                successful=False,
                reason=f"min_depth ({known['min_depth']:g} m) must be below max_valid_depth "
                       f"({known['max_valid_depth']:g} m)")
        return SetParametersResult(successful=True)
