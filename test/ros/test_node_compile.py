"""`compile: default` in the real node (in-process, over DDS): it compiles during the warm-up at warmup_width x
warmup_height, and a camera frame of that size then runs the compiled network without compiling anything more
(torch._dynamo's own counters) and gives the eager model's depth. ~15 s at input 70 on 2 CPU cores (minutes at
518). torch.compile's CPU backend builds C++: skipped where no C++ compiler is installed."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from sensor_msgs.msg import Image

from dav2_ros.engines.estimator import DepthEstimator
from depth_expect import assert_same_depth, published_depth
from node_harness import DdsClient, InProcessNode, every, image_array

pytestmark = [
    pytest.mark.ros,
    pytest.mark.skipif(shutil.which("c++") is None and shutil.which("g++") is None,
                       reason="torch.compile's CPU backend needs a C++ compiler, none on PATH"),
]

NAMESPACE = "/dav2_compile_test"
WIDTH, HEIGHT, INPUT_SIZE = 96, 72, 70
PARAMS = {"allow_random_weights": True, "input_size": INPUT_SIZE, "device": "cpu", "precision": "fp32",
          "preprocess": "fast", "compile": "default", "warmup_width": WIDTH, "warmup_height": HEIGHT,
          "weights_dir": "/nonexistent/dav2_weights"}


def compiled_graphs() -> int:
    from torch._dynamo.utils import counters

    return sum(counters["stats"].values()) + sum(counters["frames"].values())


def test_compiled_node_warms_up_at_the_camera_size_and_publishes_the_eager_depth():
    pixels = np.random.default_rng(3).integers(0, 256, size=(HEIGHT, WIDTH, 3), dtype=np.uint8)
    before_start = compiled_graphs()
    with InProcessNode(PARAMS, namespace=NAMESPACE) as live, DdsClient("dav2_compile_client") as client:
        assert getattr(live.node._estimator.model, "_dav2_compiled", False)
        after_warm_up = compiled_graphs()
        assert after_warm_up > before_start, "the warm-up compiled nothing"
        publisher = client.publisher(Image, f"{NAMESPACE}/image")
        depth = client.collect(Image, f"{NAMESPACE}/depth/image")
        client.wait_for_subscribers(publisher)
        client.wait_for_publishers(f"{NAMESPACE}/depth/image")  # else the depth may go out before we listen
        msg = Image(height=HEIGHT, width=WIDTH, encoding="rgb8", step=WIDTH * 3, data=pixels.tobytes())
        msg.header.stamp.sec = 5
        publisher.publish(msg)
        # the node's input is best effort: send the frame again now and then until its depth comes
        again = every(2.0, lambda: publisher.publish(msg))
        out = depth.wait_for(lambda m: m.header.stamp.sec == 5, 120.0, on_wait=again)
        # (the warm-up frame needs the camera's aspect ratio, which fixes the network's input shape: a square
        # warm-up frame makes this fail)
        assert compiled_graphs() == after_warm_up, "the first camera frame compiled again"
    eager = DepthEstimator.random(encoder="vits", device="cpu", precision="fp32", preprocess="fast")
    expected = eager.infer(pixels, input_size=INPUT_SIZE)
    assert_same_depth(image_array(out), published_depth(expected), rtol=1e-3, atol=1e-3)
