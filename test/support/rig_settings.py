"""How the robustness tests run the depth node (BASE_PARAMS) and how long they wait for it."""

from __future__ import annotations

from typing import Any

# How every robustness test runs the node: stand-in weights, CPU fp32, one inference thread (the
# machine is shared; more threads than free cores makes torch many times slower, not faster); backend torch,
# whose speed the overload scenarios are sized for (the default OpenVINO engine is tested on its own). No
# flying-pixel filter: random weights' depth jumps everywhere, so it would blank most pixels, and
# `Camera.check_outputs` wants most of them finite (the filter has its own tests: test_node_depth_filters.py).
BASE_PARAMS: dict[str, Any] = {
    "allow_random_weights": True, "weights_dir": "/nonexistent/dav2_weights", "device": "cpu", "backend": "torch",
    "precision": "fp32", "num_threads": 1, "input_size": 70, "min_depth": 0.1, "max_valid_depth": 20.0,
    "flying_pixel_threshold": 0.0,
}
STARTUP_S = 180.0
OUTPUT_TIMEOUT_S = 90.0
DIAGNOSTICS_TIMEOUT_S = 30.0
# Inputs go best effort into the node (sensor-data QoS): a frame may be lost in transport, so waits re-send.
RESEND_AFTER_S = 3.0
