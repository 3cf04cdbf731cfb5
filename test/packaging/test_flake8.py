"""Code style: flake8 over the package, the launch files, tests, benchmarks and scripts with the configuration in
setup.cfg (as ROS packages run ament_flake8 among their tests): unused imports and names, undefined names, lines
over 120 columns, misaligned continuation lines."""

import subprocess
import sys
from project_paths import PROJECT_DIR

CHECKED = ["dav2_ros", "launch", "test", "benchmarks", "scripts", "setup.py"]


def test_flake8_reports_nothing():
    result = subprocess.run([sys.executable, "-m", "flake8", *CHECKED], cwd=PROJECT_DIR, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, f"flake8 (setup.cfg's [flake8]) found:\n{result.stdout}{result.stderr}"
