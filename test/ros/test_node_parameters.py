"""Parameters: the table's checks, the YAML defaults and presets, and the ROS descriptors and on-set
refusals on a real rclpy node (without the model: `NodeParameters` on a plain Node)."""


import pytest
import rclpy
from rclpy.context import Context
from rclpy.exceptions import InvalidParameterValueException
from rclpy.node import Node
from rclpy.parameter import Parameter

from dav2_ros.node.parameters import NodeParameters
from dav2_ros.pipeline.settings import (
    PARAM_SPECS,
    NodeSettings,
    SettingsError,
    check_value,
    load_params_file,
    settings_from_file,
)
from project_paths import CONFIG_DIR

READ_ONLY = {"encoder", "model_type", "checkpoint", "weights_dir", "device", "precision", "input_transport",
             "qos.input_depth", "qos.input_reliability", "qos.output_reliability", "qos.output_depth"}


# ------------------------------------------------------------------------------ ROS-free table checks
@pytest.mark.parametrize("name, value, reason", [
    ("input_size", 100, "multiple of 14"),
    ("input_size", 56, "[70, 1540]"),
    ("input_size", 1554, "[70, 1540]"),
    ("input_size", 518.0, "expected an integer"),
    ("encoder", "vitx", "one of vits, vitb, vitl"),
    ("model_type", "absolute", "one of metric, relative"),
    ("device", "gpu", "auto, cpu, cuda or cuda:N"),
    ("precision", "int4", "one of auto, fp32, fp16, bf16, int8"),
    ("qos.output_reliability", "sometimes", "reliable, best_effort"),
    ("qos.input_reliability", "reliable_please", "best_effort, reliable"),
    ("cloud_stride", 0, "[1, 16]"),
    ("max_depth", float("nan"), "finite"),
    ("cameras", "front", "expected a list of camera names"),
    ("cameras", ["front", "front"], "distinct"),
    ("cameras", ["/front"], "not a relative namespace"),
    ("cameras", ["2nd"], "not a relative namespace"),
    ("cameras", [f"c{i}" for i in range(17)], "at most 16 cameras"),
    ("compile", "fast", "one of off, default, reduce-overhead, max-autotune"),
    ("min_depth", -1.0, "[0, 1000]"),
    ("publish_cloud", "yes", "expected bool"),
])
def test_invalid_values_are_refused_with_a_reason(name, value, reason):
    assert reason in (check_value(name, value) or "")


@pytest.mark.parametrize("name, value", [
    ("input_size", 70), ("input_size", 518), ("input_size", 1540), ("device", "cuda:1"), ("device", "cpu"),
    ("max_depth", 80), ("encoder", "vitb"), ("cameras", []), ("cameras", ["front", "rear/left", "_b2"]),
])
def test_valid_values_pass(name, value):
    assert check_value(name, value) is None


def test_depth_yaml_holds_exactly_the_declared_defaults():
    params = load_params_file(CONFIG_DIR / "depth.yaml")
    # An empty array cannot be written in a params file (rcl's YAML parser refuses `[]`): `cameras` is a comment.
    assert set(params) == {spec.name for spec in PARAM_SPECS if spec.default != ()}
    assert "# cameras: [front, rear]" in (CONFIG_DIR / "depth.yaml").read_text()
    assert settings_from_file(CONFIG_DIR / "depth.yaml") == NodeSettings()


@pytest.mark.parametrize("preset, expected", [
    ("indoor.yaml", {"model_type": "metric", "dataset": "hypersim", "max_depth": 20.0}),
    ("outdoor.yaml", {"model_type": "metric", "dataset": "vkitti", "max_depth": 80.0}),
    ("relative.yaml", {"model_type": "relative"}),
    ("two_cameras.yaml", {"cameras": ("front", "rear"), "batch_cameras": "auto", "input_size": 364}),
])
def test_presets_load_and_set_their_model(preset, expected):
    settings = settings_from_file(CONFIG_DIR / preset)
    assert {name: settings.as_params()[name] for name in expected} == expected
    if settings.model_type == "metric":
        assert settings.max_valid_depth <= settings.max_depth


def test_inconsistent_combinations_are_refused():
    with pytest.raises(SettingsError, match="min_depth .* must be below max_valid_depth"):
        NodeSettings.from_params({"min_depth": 5.0, "max_valid_depth": 2.0})
    with pytest.raises(SettingsError, match="relative models only"):
        NodeSettings.from_params({"model_type": "metric", "relative_scale": 2.0})
    with pytest.raises(SettingsError, match="unknown parameter"):
        NodeSettings.from_params({"input_sise": 518})
    with pytest.raises(SettingsError, match="compile does not apply to precision int8"):
        NodeSettings.from_params({"compile": "default", "precision": "int8"})
    with pytest.raises(SettingsError, match="reduce-overhead already captures CUDA graphs"):
        NodeSettings.from_params({"compile": "reduce-overhead", "cuda_graphs": True})
    # max-autotune turns on inductor's CUDA graphs too (torch._inductor.list_mode_options): a graph in our graph
    with pytest.raises(SettingsError, match="max-autotune already captures CUDA graphs"):
        NodeSettings.from_params({"compile": "max-autotune", "cuda_graphs": True})
    assert NodeSettings.from_params({"compile": "default", "cuda_graphs": True}).cuda_graphs
    assert NodeSettings.from_params({"compile": "max-autotune"}).compile == "max-autotune"
    assert NodeSettings.from_params({"cameras": ["front", "rear"]}).cameras == ("front", "rear")
    relative = NodeSettings.from_params({"model_type": "relative", "relative_scale": 0.5})
    assert relative.publishes_metric_depth and not NodeSettings(model_type="relative").publishes_metric_depth


def test_params_file_without_a_section_for_the_node_is_refused(tmp_path):
    path = tmp_path / "other.yaml"
    path.write_text("other_node:\n  ros__parameters:\n    input_size: 308\n")
    with pytest.raises(SettingsError, match="no section for depth_node"):
        load_params_file(path)


# ------------------------------------------------------------------- descriptors on a real rclpy node
@pytest.fixture
def ros_context():
    context = Context()
    rclpy.init(context=context)
    yield context
    rclpy.try_shutdown(context=context)


def make_node(context, overrides=()):
    return Node("depth_node", context=context,
                parameter_overrides=[Parameter(name, value=value) for name, value in overrides])


@pytest.mark.ros
def test_descriptors_carry_description_ranges_and_read_only(ros_context):
    node = make_node(ros_context)
    try:
        NodeParameters(node)
        for spec in PARAM_SPECS:
            descriptor = node.describe_parameter(spec.name)
            assert descriptor.description, spec.name
            assert descriptor.read_only == (spec.name in READ_ONLY or spec.read_only), spec.name
        assert READ_ONLY <= {spec.name for spec in PARAM_SPECS if spec.read_only}
        size_range = node.describe_parameter("input_size").integer_range[0]
        assert (size_range.from_value, size_range.to_value, size_range.step) == (70, 1540, 14)
        assert node.describe_parameter("min_depth").floating_point_range
        assert "vits" in node.describe_parameter("encoder").additional_constraints
    finally:
        node.destroy_node()


@pytest.mark.ros
def test_runtime_changes_are_validated_and_reach_the_settings(ros_context):
    node = make_node(ros_context)
    changes = []
    try:
        params = NodeParameters(node, on_change=changes.append)
        refused = {
            "input_size": 100, "cloud_stride": 0, "max_valid_depth": 0.05,  # below min_depth 0.1
        }
        for name, value in refused.items():
            result = node.set_parameters([Parameter(name, value=value)])[0]
            assert not result.successful and result.reason, name
        # rclpy checks the descriptor's range/step itself, before the on-set callback
        assert "step: 14" in node.set_parameters([Parameter("input_size", value=100)])[0].reason
        assert "min_depth" in node.set_parameters([Parameter("max_valid_depth", value=0.05)])[0].reason
        read_only = node.set_parameters([Parameter("encoder", value="vitb")])[0]
        assert not read_only.successful and "read-only" in read_only.reason
        assert params.settings == NodeSettings() and not changes

        assert node.set_parameters([Parameter("input_size", value=308)])[0].successful
        assert node.set_parameters([Parameter("cloud_stride", value=2)])[0].successful
        assert params.settings.input_size == 308 and params.settings.cloud_stride == 2
        assert [c.input_size for c in changes] == [308, 308]
    finally:
        node.destroy_node()


@pytest.mark.ros
def test_a_failing_on_change_keeps_the_change_and_logs_it(ros_context, capfd):
    """`on_change` runs after the new settings are stored: its failure is logged, the change stands."""
    node = make_node(ros_context)

    def fails(settings):
        raise RuntimeError(f"cannot follow input_size {settings.input_size}")
    try:
        params = NodeParameters(node, on_change=fails)
        assert node.set_parameters([Parameter("input_size", value=308)])[0].successful
        assert params.settings.input_size == 308
        assert node.set_parameters([Parameter("cloud_stride", value=3)])[0].successful
        assert params.settings.cloud_stride == 3
    finally:
        node.destroy_node()
    logged = capfd.readouterr().err
    assert logged.count("[ERROR]") == 2, logged
    assert "acting on it failed: RuntimeError: cannot follow input_size 308" in logged


@pytest.mark.ros
@pytest.mark.parametrize("overrides, reason", [
    ([("encoder", "vitx")], "must be one of vits, vitb, vitl"),
    ([("input_size", 100)], ""),
    ([("min_depth", 30.0), ("max_valid_depth", 20.0)], "must be below max_valid_depth"),
    ([("cameras", ["front", "front"])], "camera names must be distinct"),
    ([("cameras", [1, 2])], "expected a list of strings"),
])
def test_invalid_startup_values_are_refused_at_declaration(ros_context, overrides, reason):
    node = make_node(ros_context, overrides)
    try:
        with pytest.raises(InvalidParameterValueException) as error:
            NodeParameters(node)
        assert reason in str(error.value)
    finally:
        node.destroy_node()
