"""torch.compile of the estimator's network (dav2_ros.engines.torch_runtime.compile): what it refuses, and -- slow,
minutes on 2 CPU cores -- that the compiled network gives the eager network's output."""

from __future__ import annotations

import numpy as np
import pytest

from dav2_ros.engines.torch_runtime.compile import compile_estimator
from dav2_ros.engines.estimator import DepthEstimator


def test_refuses_unknown_modes_and_int8() -> None:
    fp32 = DepthEstimator.random(encoder="vits", device="cpu", precision="fp32", preprocess="fast", backend="torch")
    with pytest.raises(ValueError, match="compile mode 'fastest' is not one of"):
        compile_estimator(fp32, "fastest")  # type: ignore[arg-type]
    int8 = DepthEstimator.random(encoder="vits", device="cpu", precision="int8", preprocess="fast", backend="torch")
    with pytest.raises(ValueError, match="does not apply to precision 'int8'"):
        compile_estimator(int8)


@pytest.mark.slow
def test_compiled_network_matches_eager() -> None:
    est = DepthEstimator.random(encoder="vits", device="cpu", precision="fp32", preprocess="fast", backend="torch")
    image = np.random.default_rng(0).integers(0, 256, size=(60, 80, 3), dtype=np.uint8)
    eager = est.infer(image, input_size=70)
    compile_estimator(est)
    compile_estimator(est)  # a second call is a no-op, not a compile of the compiled module
    compiled = est.infer(image, input_size=70)
    np.testing.assert_allclose(compiled, eager, rtol=1e-4, atol=1e-4)
