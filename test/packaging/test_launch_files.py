"""The launch files, checked from their syntax tree (launch/launch_ros are not on PyPI): every
DeclareLaunchArgument is described, the arguments that override parameters name real node
parameters, the node's executable is ours (plain or managed), a process exit ends the launch with a reason, the
replay file plays with --clock on sim time, and none uses eval/subprocess or an OpaqueFunction reading an
undeclared argument. What the node is started with (remappings, respawn, cameras) is `plan_node`'s, tested in
test_bringup_launch_plan.py. The depth launch's actions are also run on stand-ins of launch/launch_ros, rendered into
the parameter arguments launch_ros gives the node, and read by the real rcl (rclpy) as the node reads them. With
launch installed, the files are also loaded (and run in test_launch_runs.py)."""

import ast
import importlib.util
import os
import pathlib
import re
import sys
import types
from typing import Any

import pytest
import yaml

from dav2_ros.pipeline.settings import SPECS_BY_NAME, check_value
from project_paths import CONFIG_DIR, PROJECT_DIR

LAUNCH_DIR = PROJECT_DIR / "launch"
DEPTH_LAUNCH = LAUNCH_DIR / "depth.launch.py"
REPLAY_LAUNCH = LAUNCH_DIR / "replay.launch.py"

REQUIRED_DEPTH_ARGUMENTS = {"encoder", "model_type", "input_size", "checkpoint", "device", "precision",
                            "params_file", "namespace", "image_topic", "camera_info_topic", "input_transport",
                            "use_sim_time", "log_level"}
# Launch arguments that are not node parameters of the same name.
LAUNCH_ONLY = {"params_file", "namespace", "image_topic", "camera_info_topic", "log_level", "bag", "rate",
               "play_delay", "remappings_file", "managed", "autostart", "respawn", "respawn_delay", "large_data",
               "large_data_profile"}
# Parameters every ROS 2 node has.
BUILTIN_PARAMETERS = {"use_sim_time"}


def _call_name(node: ast.Call) -> str:
    func = node.func
    return func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""


def _module_dicts(tree: ast.Module) -> dict[str, ast.Dict]:
    """Module-level `NAME = {...}` assignments."""
    found = {}
    for statement in tree.body:
        if isinstance(statement, ast.Assign) and isinstance(statement.value, ast.Dict):
            for target in statement.targets:
                if isinstance(target, ast.Name):
                    found[target.id] = statement.value
    return found


def _description_of(value: ast.expr) -> str:
    """The text of a dict value that is a description string, or a (default, description) tuple."""
    if isinstance(value, ast.Tuple):
        value = value.elts[-1]
    if isinstance(value, ast.Constant) and isinstance(value.value, str):
        return value.value
    if isinstance(value, ast.BinOp):  # implicit string concatenation spread over lines
        return _description_of(value.left) + _description_of(value.right)
    if isinstance(value, ast.JoinedStr):
        return "".join(v.value for v in value.values if isinstance(v, ast.Constant))
    raise AssertionError(f"description is not a literal string: {ast.dump(value)}")


def declared_arguments(path: pathlib.Path) -> dict[str, str]:
    """Name -> description of every DeclareLaunchArgument, including ones built in a comprehension
    over a module-level dict (name -> description, or name -> (default, description))."""
    tree = ast.parse(path.read_text(), filename=str(path))
    dicts = _module_dicts(tree)
    declared: dict[str, str] = {}
    comprehension_sources: dict[int, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, (ast.ListComp, ast.GeneratorExp)):
            iterated = node.generators[0].iter
            if isinstance(iterated, ast.Call) and isinstance(iterated.func, ast.Attribute):
                iterated = iterated.func.value  # X.items()
            if isinstance(iterated, ast.Name) and iterated.id in dicts:
                comprehension_sources[id(node.elt)] = iterated.id
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and _call_name(node) == "DeclareLaunchArgument"):
            continue
        keywords = {k.arg: k.value for k in node.keywords}
        assert "description" in keywords, f"{path.name}: DeclareLaunchArgument without description: {ast.dump(node)}"
        first = node.args[0] if node.args else keywords.get("name")
        if isinstance(first, ast.Constant):
            declared[first.value] = _description_of(keywords["description"])
        else:
            source = comprehension_sources.get(id(node))
            assert source, f"{path.name}: cannot tell the name of {ast.dump(node)}"
            for key, value in zip(dicts[source].keys, dicts[source].values):
                assert isinstance(key, ast.Constant)
                declared[key.value] = _description_of(value)
    return declared


def string_constants(path: pathlib.Path) -> set[str]:
    """Every string literal in the file."""
    tree = ast.parse(path.read_text())
    return {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)}


@pytest.mark.parametrize("path", [DEPTH_LAUNCH, REPLAY_LAUNCH], ids=lambda p: p.name)
def test_every_argument_has_a_real_description(path):
    declared = declared_arguments(path)
    assert declared
    for name, description in declared.items():
        assert len(description) >= 15 and description.endswith("."), f"{path.name}: {name}: {description!r}"


def test_depth_launch_declares_the_required_arguments_and_they_match_node_parameters():
    declared = declared_arguments(DEPTH_LAUNCH)
    assert REQUIRED_DEPTH_ARGUMENTS <= set(declared)
    for name in declared:
        assert name in LAUNCH_ONLY or name in BUILTIN_PARAMETERS or name in SPECS_BY_NAME, \
            f"launch argument {name} is neither a node parameter nor a launch-only argument"
    overrides = _module_dicts(ast.parse(DEPTH_LAUNCH.read_text()))["MODEL_ARGUMENTS"]
    for key in overrides.keys:
        assert key.value in SPECS_BY_NAME, f"MODEL_ARGUMENTS names {key.value}, which the node does not declare"


def _calls(tree: ast.AST, name: str) -> list[ast.Call]:
    return [n for n in ast.walk(tree) if isinstance(n, ast.Call) and _call_name(n) == name]


def test_depth_launch_runs_our_executable_with_the_planned_remappings_and_the_share_config():
    source = DEPTH_LAUNCH.read_text()
    tree = ast.parse(source)
    nodes = [n for n in ast.walk(tree) if isinstance(n, ast.Call)
             and any(k.arg == "package" for k in n.keywords)]
    assert len(nodes) == 1
    keywords = {k.arg: k.value for k in nodes[0].keywords}
    assert {k: ast.literal_eval(keywords[k]) for k in ("package", "name")} == {"package": "dav2_ros",
                                                                               "name": "depth_node"}
    assert ast.unparse(nodes[0].func) == "node_action" and "node_action = LifecycleNode if plan.managed else Node" \
        in source
    assert {ast.unparse(keywords[k]) for k in ("executable", "remappings", "respawn", "respawn_delay")} == \
        {"plan.executable", "list(plan.remappings)", "plan.respawn", "plan.respawn_delay"}
    setup = (PROJECT_DIR / "setup.py").read_text()
    assert re.search(r'"depth_node\s*=\s*dav2_ros\.node\.entry:depth_node"', setup)
    assert re.search(r'"managed_depth_node\s*=\s*dav2_ros\.node\.entry:managed_depth_node"', setup)
    # The params file and the model arguments come from SetParametersFromFile + SetParameter, in that order; the
    # node's own parameters (cameras, a list) after them.
    assert ast.unparse(keywords["parameters"]) == "node_parameters(plan)"
    assert {"--ros-args", "--log-level", "config", "depth.yaml", "dav2_ros"} <= string_constants(DEPTH_LAUNCH)
    assert (PROJECT_DIR / "config" / "depth.yaml").is_file()
    calls = {_call_name(n) for n in ast.walk(tree) if isinstance(n, ast.Call)}
    assert {"SetParametersFromFile", "SetParameter", "GroupAction", "FindPackageShare"} <= calls


def test_a_process_exit_ends_the_launch_with_the_reason():
    """depth: OnProcessExit on the node (unless respawn) -> LogInfo + Shutdown(reason); replay: the same on the
    player; the reasons are the tested `node_exit_reason` / `player_exit_reason`."""
    for path, target, handler, reason in ((DEPTH_LAUNCH, "node", "_node_exited", "node_exit_reason"),
                                          (REPLAY_LAUNCH, "play", "_player_exited", "player_exit_reason")):
        tree = ast.parse(path.read_text())
        (exit_handler,) = _calls(tree, "OnProcessExit")
        keywords = {k.arg: ast.unparse(k.value) for k in exit_handler.keywords}
        assert keywords == {"target_action": target, "on_exit": handler}, path.name
        function = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == handler)
        called = {_call_name(n) for n in ast.walk(function) if isinstance(n, ast.Call)}
        assert {reason, "LogInfo", "Shutdown"} <= called, path.name
        (shutdown,) = _calls(function, "Shutdown")
        assert [k.arg for k in shutdown.keywords] == ["reason"]
    source = DEPTH_LAUNCH.read_text()
    assert "if not plan.respawn:\n        actions.append(RegisterEventHandler(OnProcessExit(" in source
    assert source.index("OnProcessExit(target_action=node") < source.index("actions.append(GroupAction(")


def test_managed_autostart_configures_then_activates_through_launch_ros_lifecycle_events():
    tree = ast.parse(DEPTH_LAUNCH.read_text())
    autostart = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "_autostart")
    text = ast.unparse(autostart)
    assert "OnProcessStart(target_action=node, on_start=[transition(Transition.TRANSITION_CONFIGURE)])" in text
    assert "start_state='configuring', goal_state='inactive'" in text
    assert "transition(Transition.TRANSITION_ACTIVATE)" in text
    assert "ChangeState(lifecycle_node_matcher=matches_action(node), transition_id=transition_id)" in text
    assert "if plan.managed and plan.autostart:" in DEPTH_LAUNCH.read_text()


def test_replay_plays_the_bag_with_clock_and_runs_the_node_on_sim_time():
    tree = ast.parse(REPLAY_LAUNCH.read_text())
    processes = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and _call_name(n) == "ExecuteProcess"]
    assert len(processes) == 1
    cmd = {k.arg: k.value for k in processes[0].keywords}["cmd"]
    literal = [e.value for e in cmd.elts if isinstance(e, ast.Constant)]
    assert literal[:3] == ["ros2", "bag", "play"] and "--clock" in literal
    assert {"depth.launch.py", "use_sim_time", "true"} <= string_constants(REPLAY_LAUNCH)
    passed = set(declared_arguments(REPLAY_LAUNCH)) - {"bag", "rate", "play_delay"}
    assert passed <= set(declared_arguments(DEPTH_LAUNCH)), "replay passes arguments depth.launch.py lacks"


@pytest.mark.parametrize("path", [DEPTH_LAUNCH, REPLAY_LAUNCH], ids=lambda p: p.name)
def test_set_parameter_values_are_launch_arguments_never_lists(path):
    """launch_ros renders a SetParameter value into `-p name:=value` with an f-string: a list would reach the node
    as the text of a Python tuple. Lists go in the node's `parameters` (see depth.launch.py)."""
    for call in _calls(ast.parse(path.read_text()), "SetParameter"):
        value = {k.arg: k.value for k in call.keywords}["value"]
        assert isinstance(value, ast.Call) and _call_name(value) == "LaunchConfiguration", \
            f"{path.name}: SetParameter value {ast.unparse(value)} is not a launch argument"


# --- depth.launch.py run on stand-ins of launch/launch_ros, rendered as launch_ros renders the node's command ---

class _StandIn:
    """A launch/launch_ros class: keeps the arguments it was built with."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args, self.kwargs = args, kwargs


def _perform(value: Any, context: types.SimpleNamespace) -> str:
    return value if isinstance(value, str) else value.perform(context)


class _LaunchConfiguration(_StandIn):
    def perform(self, context: types.SimpleNamespace) -> str:
        return context.arguments[self.args[0]]


class _NotEqualsSubstitution(_StandIn):
    def perform(self, context: types.SimpleNamespace) -> str:
        left, right = (_perform(value, context) for value in self.args)
        return "true" if left != right else "false"


class _IfCondition(_StandIn):
    def evaluate(self, context: types.SimpleNamespace) -> bool:
        return _perform(self.args[0], context).lower() in ("true", "1")


_STAND_INS = {
    "launch": ["LaunchContext", "LaunchDescription"],
    "launch.actions": ["DeclareLaunchArgument", "EmitEvent", "GroupAction", "LogInfo", "OpaqueFunction",
                       "RegisterEventHandler", "Shutdown"],
    "launch.conditions": ["IfCondition"],
    "launch.event_handlers": ["OnProcessExit", "OnProcessStart"],
    "launch.events": ["matches_action"],
    "launch.events.process": ["ProcessExited"],
    "launch.substitutions": ["LaunchConfiguration", "NotEqualsSubstitution", "PathJoinSubstitution"],
    "launch_ros": [],
    "launch_ros.actions": ["LifecycleNode", "Node", "SetParameter", "SetParametersFromFile"],
    "launch_ros.event_handlers": ["OnStateTransition"],
    "launch_ros.events": [],
    "launch_ros.events.lifecycle": ["ChangeState"],
    "launch_ros.substitutions": ["FindPackageShare"],
    "lifecycle_msgs": [],
    "lifecycle_msgs.msg": ["Transition"],
}
_BEHAVIOUR = {"LaunchConfiguration": _LaunchConfiguration, "NotEqualsSubstitution": _NotEqualsSubstitution,
              "IfCondition": _IfCondition}


def _depth_launch_on_stand_ins(monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    for module_name, names in _STAND_INS.items():
        module = types.ModuleType(module_name)
        for name in names:
            setattr(module, name, _BEHAVIOUR.get(name) or type(name, (_StandIn,), {}))
        monkeypatch.setitem(sys.modules, module_name, module)
    spec = importlib.util.spec_from_file_location("depth_launch_on_stand_ins", DEPTH_LAUNCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _launch_ros_value(value: Any, context: types.SimpleNamespace) -> Any:
    """A parameter value as launch_ros evaluates it (normalize_parameter_dict + evaluate_parameter_dict): a
    substitution is performed and read as YAML; a string or each string of a list is yaml.dump'ed then
    yaml.safe_load'ed; a list becomes a tuple."""
    if isinstance(value, (list, tuple)):
        return tuple(yaml.safe_load(yaml.dump(item)) if isinstance(item, str) else item for item in value)
    if isinstance(value, str):
        return yaml.safe_load(yaml.dump(value))
    if isinstance(value, (bool, int, float)):
        return value
    evaluated = yaml.safe_load(_perform(value, context))
    return tuple(evaluated) if isinstance(evaluated, list) else evaluated


def _launch_ros_parameter_arguments(actions: list, context: types.SimpleNamespace,
                                    folder: pathlib.Path) -> list[str]:
    """The parameter arguments launch_ros gives the node of depth.launch.py's scoped group, in its order
    (Node._perform_substitutions, Humble to Kilted): the global parameters first, SetParametersFromFile as
    `--params-file <path>`, SetParameter as the f-string `-p {name}:={value}` of its evaluated value; then the
    node's own `parameters`, a dict written into a params file (_create_params_file_from_dict: yaml.dump of the
    evaluated values under the node's full name)."""
    (group,) = [action for action in actions if type(action).__name__ == "GroupAction"]
    global_params: list = []
    node = None
    for action in group.args[0]:
        kind = type(action).__name__
        if kind == "SetParametersFromFile":
            global_params.append(os.path.abspath(_perform(action.args[0], context)))
        elif kind == "SetParameter":
            condition = action.kwargs.get("condition")
            if condition is None or condition.evaluate(context):
                global_params.append((action.kwargs["name"], _launch_ros_value(action.kwargs["value"], context)))
        elif kind in ("Node", "LifecycleNode"):
            node = action
    arguments: list[str] = []
    for param in global_params:
        arguments += ["-p", f"{param[0]}:={param[1]}"] if isinstance(param, tuple) else ["--params-file", param]
    namespace = _perform(node.kwargs["namespace"], context).strip("/")
    full_name = f"/{namespace}/depth_node" if namespace else "/depth_node"
    for index, params in enumerate(node.kwargs.get("parameters") or []):
        if isinstance(params, dict):
            path = folder / f"launch_params_{index}"
            evaluated = {name: _launch_ros_value(value, context) for name, value in params.items()}
            path.write_text(yaml.dump({full_name: {"ros__parameters": evaluated}}, default_flow_style=False))
            params = str(path)
        arguments += ["--params-file", _perform(params, context)]
    return arguments


def _launch_arguments(**given: str) -> dict[str, str]:
    """Every argument depth.launch.py declares, at its default unless given."""
    from dav2_ros.bringup.launch_plan import PLAN_ARGUMENTS

    defaults = {"params_file": str(CONFIG_DIR / "depth.yaml"), "namespace": "", "image_topic": "/camera/image_raw",
                "camera_info_topic": "/camera/camera_info", "use_sim_time": "false", "log_level": "info",
                "managed": "false", "autostart": "false", "respawn": "false", "respawn_delay": "2.0",
                "large_data": "false"}
    arguments = {name: "" for name in declared_arguments(DEPTH_LAUNCH)} | defaults | given
    assert set(PLAN_ARGUMENTS) <= set(arguments)
    return arguments


def _node_parameter(arguments: list[str], name: str, namespace: str) -> Any:
    """The value rcl gives the node's parameter `name` from these command-line arguments (rclpy's own parsing)."""
    rclpy = pytest.importorskip("rclpy")
    from rclpy.context import Context
    from rclpy.node import Node

    context = Context()
    rclpy.init(args=["depth_node", "--ros-args", *arguments], context=context)
    try:
        node = Node("depth_node", namespace=namespace or None, context=context, start_parameter_services=False,
                    enable_rosout=False, automatically_declare_parameters_from_overrides=True)
        try:
            return node.get_parameter(name).value
        finally:
            node.destroy_node()
    finally:
        rclpy.try_shutdown(context=context)


README_TWO_CAMERAS = {"cameras": "front,rear", "image_topic": "/{camera}/image_raw",
                      "camera_info_topic": "/{camera}/camera_info"}


@pytest.mark.ros
@pytest.mark.parametrize("case", ["readme", "readme+remappings_file", "over two_cameras.yaml", "namespaced",
                                  "names PyYAML quotes"])
def test_the_cameras_argument_reaches_the_node_as_a_string_array(monkeypatch, tmp_path, case):
    """The README's two-camera command (and with a remappings file, over a params file that has other cameras, in
    a namespace, with names YAML would read as booleans) through depth.launch.py's actions, the command line
    launch_ros renders from them and rcl's parsing: the node's `cameras` is the list of names."""
    remaps = tmp_path / "remaps.yaml"
    remaps.write_text("front:\n  image: /cam_front/image_raw\n  camera_info: /cam_front/camera_info\n")
    given, expected = dict(README_TWO_CAMERAS), ["front", "rear"]
    if case == "readme+remappings_file":
        given["remappings_file"] = str(remaps)
    elif case == "over two_cameras.yaml":
        given.update(params_file=str(CONFIG_DIR / "two_cameras.yaml"), cameras="left,right")
        expected = ["left", "right"]
    elif case == "namespaced":
        given["namespace"] = "robot1"
    elif case == "names PyYAML quotes":
        given["cameras"], expected = "on,null,yes", ["on", "null", "yes"]
    launch = _depth_launch_on_stand_ins(monkeypatch)
    context = types.SimpleNamespace(arguments=_launch_arguments(**given), is_shutdown=False)
    arguments = _launch_ros_parameter_arguments(launch._depth_node(context), context, tmp_path)
    print("\nnode parameter arguments:", " ".join(arguments))
    cameras = _node_parameter(arguments, "cameras", given.get("namespace", ""))
    assert cameras == expected and check_value("cameras", cameras) is None
    assert not any(argument.startswith("cameras:=") for argument in arguments)


@pytest.mark.ros
def test_a_set_parameter_list_reaches_the_node_as_one_string():
    """What the launch did before: SetParameter(name='cameras', value=[...]) rendered by launch_ros, read by rcl."""
    rule = f"cameras:={_launch_ros_value(['front', 'rear'], types.SimpleNamespace())}"
    cameras = _node_parameter(["-p", rule], "cameras", "")
    assert cameras == "('front', 'rear')"
    assert check_value("cameras", cameras) == "expected a list of camera names, got str"


def _node_action(actions: list) -> Any:
    (group,) = [action for action in actions if type(action).__name__ == "GroupAction"]
    (node,) = [action for action in group.args[0] if type(action).__name__ in ("Node", "LifecycleNode")]
    return node


@pytest.mark.parametrize("managed", ["false", "true"])
def test_large_data_sets_the_profile_and_system_default_discovery_in_the_node_process_only(monkeypatch, managed):
    """large_data:=true gives the node's process (launch_ros passes Node's additional_env to ExecuteProcess, Humble
    to Kilted) the package's config/fastdds_large_data.xml and ROS_AUTOMATIC_DISCOVERY_RANGE=SYSTEM_DEFAULT (with
    LOCALHOST rmw_fastrtps adds its own 64 KB transports: test/ros/test_large_data_transport.py), the environment
    docs/large_data.md gives consumers; large_data_profile replaces the file; false leaves the launch's environment."""
    launch = _depth_launch_on_stand_ins(monkeypatch)
    context = types.SimpleNamespace(arguments=_launch_arguments(large_data="true", managed=managed),
                                    is_shutdown=False)
    env = _node_action(launch._depth_node(context)).kwargs["additional_env"]
    assert set(env) == {"FASTDDS_DEFAULT_PROFILES_FILE", "ROS_AUTOMATIC_DISCOVERY_RANGE"}
    assert env["ROS_AUTOMATIC_DISCOVERY_RANGE"] == "SYSTEM_DEFAULT"
    profile = env["FASTDDS_DEFAULT_PROFILES_FILE"]
    assert type(profile).__name__ == "PathJoinSubstitution"
    share, *rest = profile.args[0]
    assert type(share).__name__ == "FindPackageShare" and share.args == ("dav2_ros",)
    assert rest == ["config", "fastdds_large_data.xml"] and (CONFIG_DIR / "fastdds_large_data.xml").is_file()
    docs = (PROJECT_DIR / "docs" / "large_data.md").read_text()
    assert "FASTDDS_DEFAULT_PROFILES_FILE=" in docs and "ROS_AUTOMATIC_DISCOVERY_RANGE=SYSTEM_DEFAULT" in docs

    context.arguments.update(large_data="True", large_data_profile="/robot/my_profile.xml")
    env = _node_action(launch._depth_node(context)).kwargs["additional_env"]
    assert env == {"FASTDDS_DEFAULT_PROFILES_FILE": "/robot/my_profile.xml",
                   "ROS_AUTOMATIC_DISCOVERY_RANGE": "SYSTEM_DEFAULT"}
    context.arguments["large_data"] = "false"
    assert _node_action(launch._depth_node(context)).kwargs["additional_env"] is None


def test_large_data_refuses_values_other_than_true_or_false(monkeypatch):
    launch = _depth_launch_on_stand_ins(monkeypatch)
    context = types.SimpleNamespace(arguments=_launch_arguments(large_data="yes"), is_shutdown=False)
    with pytest.raises(ValueError, match="large_data must be true or false, got 'yes'"):
        launch._depth_node(context)


@pytest.mark.parametrize("path", [DEPTH_LAUNCH, REPLAY_LAUNCH], ids=lambda p: p.name)
def test_no_eval_subprocess_or_hidden_arguments(path):
    """No eval/exec/subprocess/os/PythonExpression; the one OpaqueFunction (depth.launch.py: the number of
    remappings depends on the cameras) reads declared arguments only, through LaunchConfiguration."""
    from dav2_ros.bringup.launch_plan import PLAN_ARGUMENTS

    tree = ast.parse(path.read_text())
    names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)} | \
        {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)} | \
        {alias.name for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom)) for alias in n.names}
    assert not names & {"eval", "exec", "subprocess", "os", "environ", "PythonExpression", "launch_configurations",
                        "argv"}
    opaque = _calls(tree, "OpaqueFunction")
    if path != DEPTH_LAUNCH:
        assert not opaque
        return
    assert [ast.unparse(call) for call in opaque] == ["OpaqueFunction(function=_depth_node)"]
    declared = set(declared_arguments(path))
    assert set(PLAN_ARGUMENTS) <= declared
    read = {ast.literal_eval(call.args[0]) for call in _calls(tree, "LaunchConfiguration")
            if isinstance(call.args[0], ast.Constant)}
    assert read <= declared, f"LaunchConfiguration of undeclared argument(s) {read - declared}"


@pytest.mark.skipif(importlib.util.find_spec("launch") is None or importlib.util.find_spec("launch_ros") is None,
                    reason="launch/launch_ros are not installed (not on PyPI); they come with a ROS 2 distro")
@pytest.mark.parametrize("path", [DEPTH_LAUNCH, REPLAY_LAUNCH], ids=lambda p: p.name)
def test_launch_files_load_with_the_real_launch_api(path):
    from launch.launch_description_sources import get_launch_description_from_python_launch_file

    description = get_launch_description_from_python_launch_file(str(path))
    arguments = {a.name: a.description for a in description.get_launch_arguments()}
    assert set(declared_arguments(path)) <= set(arguments)
    assert all(arguments.values())
