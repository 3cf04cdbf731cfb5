"""The lifecycle services of a managed node, called over DDS the way nav2_lifecycle_manager calls them
(`<node>/change_state` with a transition id, `<node>/get_state`), from a `DdsClient`'s node."""

from __future__ import annotations

from typing import Any

from lifecycle_msgs.msg import State, Transition
from lifecycle_msgs.srv import ChangeState, GetState

from node_harness import DEFAULT_TIMEOUT_S, DdsClient, wait_until

# Primary states by id, as get_state reports them.
UNCONFIGURED, INACTIVE, ACTIVE, FINALIZED = (State.PRIMARY_STATE_UNCONFIGURED, State.PRIMARY_STATE_INACTIVE,
                                             State.PRIMARY_STATE_ACTIVE, State.PRIMARY_STATE_FINALIZED)
CONFIGURE, CLEANUP, ACTIVATE, DEACTIVATE = (Transition.TRANSITION_CONFIGURE, Transition.TRANSITION_CLEANUP,
                                            Transition.TRANSITION_ACTIVATE, Transition.TRANSITION_DEACTIVATE)
SHUTDOWN_FROM = {UNCONFIGURED: Transition.TRANSITION_UNCONFIGURED_SHUTDOWN,
                 INACTIVE: Transition.TRANSITION_INACTIVE_SHUTDOWN,
                 ACTIVE: Transition.TRANSITION_ACTIVE_SHUTDOWN}


class LifecycleClient:
    """`change_state` / `get_state` clients for one managed node."""

    def __init__(self, client: DdsClient, node_fqn: str, timeout: float = DEFAULT_TIMEOUT_S) -> None:
        self._node = client.node
        self._timeout = timeout
        self._change = client.node.create_client(ChangeState, f"{node_fqn}/change_state")
        self._get = client.node.create_client(GetState, f"{node_fqn}/get_state")
        for service in (self._change, self._get):
            wait_until(lambda: service.wait_for_service(timeout_sec=0.1), timeout, service.srv_name)

    def change_state(self, transition_id: int, timeout: float | None = None) -> bool:
        """The `success` of `change_state(transition_id)` (a transition may take the model's load time)."""
        return self.result(self.request_change(transition_id), timeout)

    def request_change(self, transition_id: int) -> Any:
        """Call `change_state(transition_id)` without waiting; `result(future)` waits for its success."""
        return self._change.call_async(ChangeState.Request(transition=Transition(id=transition_id)))

    def result(self, future: Any, timeout: float | None = None) -> bool:
        wait_until(future.done, timeout or self._timeout, f"the reply of {self._change.srv_name}")
        return bool(future.result().success)

    def get_state(self) -> int:
        """The node's primary state id (UNCONFIGURED, INACTIVE, ACTIVE, FINALIZED)."""
        future = self._get.call_async(GetState.Request())
        wait_until(future.done, self._timeout, f"the reply of {self._get.srv_name}")
        return int(future.result().current_state.id)

    def close(self) -> None:
        self._node.destroy_client(self._change)
        self._node.destroy_client(self._get)
