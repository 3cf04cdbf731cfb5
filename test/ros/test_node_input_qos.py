"""`qos.input_reliability`: with `reliable`, every raw 1280x720 frame (2.7 MB, bgr8) of a reliable publisher
reaches the node, counted by the node itself (`frames_in` in /diagnostics). The best-effort default is measured
next to it by test/campaigns/bench_input_reliability.py (how many it loses depends on the machine's DDS buffers)."""

import pytest

from reliability_probe import count_arrivals

pytestmark = pytest.mark.ros

FRAMES = 100


def test_reliable_input_receives_every_raw_1280x720_frame(tmp_path):
    arrivals = count_arrivals("reliable", tmp_path, frames=FRAMES, width=1280, height=720)
    assert arrivals.frames_in == FRAMES, f"{arrivals.frames_in} of {FRAMES} frames reached the node"
