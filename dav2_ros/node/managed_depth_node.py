"""The `managed_depth_node` executable: `depth_node` as a ROS 2 managed (lifecycle) node, for robots that bring
their sensors up with a lifecycle manager (nav2_lifecycle_manager: configure -> activate in order, deactivate ->
cleanup on shutdown or fault).

The frame path, the parameters and the topics are `DepthNode`'s (this class adds the lifecycle on top of it,
the way rclpy's own `LifecycleNode` is `LifecycleNodeMixin` + `Node`); only *when* each part exists changes:

| state        | parameters | model in memory | publishers            | subscriptions, worker, /diagnostics |
|--------------|------------|-----------------|-----------------------|-------------------------------------|
| unconfigured | declared   | no              | no                    | no                                  |
| inactive     | declared   | yes (warmed up) | created, not enabled  | no                                  |
| active       | declared   | yes             | enabled               | yes                                 |

- configure: loads the checkpoint and warms up; a bad or missing checkpoint fails the transition with the reason in
  the log, the node stays unconfigured and can be configured again (e.g. once the file is there).
- activate: enables the (lifecycle) publishers, starts the frame worker, subscribes, starts /diagnostics.
- deactivate: unsubscribes, stops the worker (the frame waiting is dropped, the one in flight is not published),
  stops /diagnostics, disables the publishers; the model stays loaded.
- cleanup: destroys the publishers and frees the model (the memory is handed back to the system).
- shutdown (from any state) and error processing: everything above that exists is undone.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import sys
from typing import Optional

from diagnostic_msgs.msg import DiagnosticArray
from rclpy.lifecycle import LifecycleNodeMixin, LifecycleState, TransitionCallbackReturn

from dav2_ros.node.depth_node import DepthNode, spin_node
from dav2_ros.node.startup_guard import StartupCancelled
from dav2_ros.pipeline.builders import StartupError


class ManagedDepthNode(LifecycleNodeMixin, DepthNode):
    """`DepthNode` with the lifecycle services (`<node>/change_state`, `<node>/get_state`, ...); starts
    unconfigured: parameters are declared (and checked: an invalid one still ends the process with code 1), nothing
    else exists until `configure`."""

    def __init__(self, **node_kwargs) -> None:
        DepthNode.__init__(self, **node_kwargs)  # Node + `_setup` below
        LifecycleNodeMixin.__init__(self, enable_communication_interface=True)

    def _setup(self) -> None:
        self._declare()
        self._estimator = None
        self._processor = None
        self._model_info: dict[str, str] = {}
        self._channels = []
        self._diagnostics_pub = None
        self._diagnostics_timer = None
        self.get_logger().info("unconfigured: waiting for the configure transition (loads the model)")

    # --------------------------------------------------------------------------- transitions
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Load and warm up the model, create the (not yet enabled) publishers; FAILURE with the reason logged
        when the weights cannot be used (the node stays unconfigured). A Ctrl-C/SIGTERM meanwhile ends the process
        (`StartupCancelled` passes the lifecycle's handlers to `spin_node`)."""
        try:
            with self._guard.busy("configuring"):
                self._load_model()  # starts the worker (no frames yet: nothing subscribed) and warms up on it
        except StartupError as error:
            if self._guard.requested:  # the failure came from the shutdown (the worker stopped): end, quietly
                raise StartupCancelled(self._guard.current_step) from None
            self.get_logger().error(f"configure failed: {error}; still unconfigured (fix it and configure again)")
            self._stop_frames()
            self._release_model()
            return TransitionCallbackReturn.FAILURE
        self._open_channels(self.create_lifecycle_publisher, subscribe=False)
        self._diagnostics_pub = self.create_lifecycle_publisher(DiagnosticArray, "/diagnostics", 10)
        self.get_logger().info("configured (inactive): model loaded, nothing published until activate")
        return super().on_configure(state)

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Enable the publishers, then start the worker (the first activation keeps the one that ran the warm-up;
        after a deactivation a fresh thread, whose first frame makes its own cuBLAS/cuDNN handles), subscribe and
        publish /diagnostics."""
        result = super().on_activate(state)  # enables every lifecycle publisher
        if result != TransitionCallbackReturn.SUCCESS:
            return result
        self._start_worker()
        for channel in self._channels:
            channel.subscribe()
        self._diagnostics_timer = self._create_diagnostics_timer()
        self.get_logger().info("active")
        return TransitionCallbackReturn.SUCCESS

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Stop taking and publishing frames; the model stays loaded."""
        self._stop_frames()
        self.get_logger().info("deactivated (inactive): frames in flight dropped, model kept")
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Stop the worker (still the configure's when never activated), destroy the publishers, free the model."""
        self._stop_frames()
        self._close_outputs()
        self._release_model()
        self.get_logger().info("cleaned up (unconfigured): model freed")
        return super().on_cleanup(state)

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        """From any state: undo whatever exists; a finalized node can do nothing more, so the process then ends
        (`finished`: `spin_node` returns 0 once the transition's reply is out)."""
        self._undo_all()
        self.get_logger().info(f"shut down from {state.label}: the process ends (finalized)")
        self.finished = True
        return super().on_shutdown(state)

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        """A transition raised: undo everything and go back to unconfigured."""
        self.get_logger().error(f"error while {state.label}: back to unconfigured")
        self._undo_all()
        return TransitionCallbackReturn.SUCCESS

    # ------------------------------------------------------------------------------- parts
    def _stop_frames(self) -> None:
        """Worker first (it finishes the frame in flight without publishing it and drops the waiting ones), then the
        subscriptions (no image callback runs meanwhile: both happen on the executor thread)."""
        self._shutdown_worker()
        self._worker = None
        for channel in self._channels:
            channel.unsubscribe()
        if self._diagnostics_timer is not None:
            self.destroy_timer(self._diagnostics_timer)
            self._diagnostics_timer = None

    def _close_outputs(self) -> None:
        for channel in self._channels:
            channel.destroy_publishers(self.destroy_lifecycle_publisher)
        self._channels = []
        if self._diagnostics_pub is not None:
            self.destroy_lifecycle_publisher(self._diagnostics_pub)
            self._diagnostics_pub = None

    def _release_model(self) -> None:
        """Drop every reference to the model and hand its memory back (CUDA cache, then the C heap)."""
        device = getattr(self._estimator, "device", None)
        self._estimator = None
        self._processor = None  # the worker that used it is stopped (`_stop_frames` comes first)
        gc.collect()
        if device is not None:
            from dav2_ros.engines.torch_runtime.device import release_cached_memory

            release_cached_memory(device)
        _trim_heap()

    def _undo_all(self) -> None:
        self._stop_frames()
        self._close_outputs()
        self._release_model()


def _trim_heap() -> None:
    """glibc keeps freed heap pages for reuse; `malloc_trim(0)` returns them to the system, so the RSS shows the
    model's memory handed back. Nothing to do (and nothing done) on other C libraries."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
        trim = getattr(libc, "malloc_trim", None)
    except OSError:
        trim = None
    if trim is not None:
        trim(0)


def main(args: Optional[list[str]] = None) -> int:
    """Entry point of `ros2 run dav2_ros managed_depth_node`: 0 on Ctrl-C/SIGTERM, 1 on an invalid parameter."""
    return spin_node(ManagedDepthNode, args)


if __name__ == "__main__":
    sys.exit(main())
