"""ament_python build of dav2_ros; also installs with plain pip into a venv."""

from glob import glob

from setuptools import find_packages, setup

PACKAGE = "dav2_ros"

setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(exclude=["test", "test.*", "benchmarks"]),
    # the real camera frame dav2_export checks every exported model on (dav2_ros/data/README.md)
    package_data={PACKAGE: ["data/*.jpg", "data/README.md"]},
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/" + PACKAGE]),
        ("share/" + PACKAGE, ["package.xml"]),
        ("share/" + PACKAGE + "/launch", glob("launch/*.launch.py")),
        ("share/" + PACKAGE + "/config", glob("config/*.yaml") + glob("config/*.xml")),
    ],
    # What a pip user needs beyond the ROS 2 core. torch is deliberately unpinned here:
    # scripts/setup_venv.sh installs the CPU build first, a distro user brings their own.
    install_requires=[
        "numpy",
        "opencv-python-headless",
        "torch",
        "pyyaml",
        "safetensors",
        "tqdm",
        # dav2_weights download (imported by dav2_ros/weights/download.py only: the node never needs it);
        # 1.0 has all it uses (hf_hub_download's endpoint=, huggingface_hub.errors); tests pass on 1.0.0 and 2.4.0
        "huggingface_hub>=1.0",
        "rosbags",
        # The CPU engine of backend auto (dav2_ros/engines/openvino_engine.py): 1.5-2.3x torch's speed on the CPU.
        "openvino",
        # JPEG decoding (libjpeg-turbo, the same pixels as OpenCV's) in half OpenCV's time; optional at run time:
        # without it (a ROS distro's colcon build) compressed frames decode with OpenCV.
        "simplejpeg",
    ],
    extras_require={
        # precision int8 with the OpenVINO engine (NNCF weight compression); heavy (scipy, pandas, scikit-learn),
        # so not in the default install: without it, auto + int8 runs torch's own int8.
        "int8": ["nncf"],
        # The ROS 2 core from PyPI wheels, for machines without a ROS distro.
        "pypi-ros": [
            "ros-rclpy",
            "ros-sensor-msgs",
            "ros-std-msgs",
            "ros-diagnostic-msgs",
            "ros-lifecycle-msgs",  # the managed node's services (rclpy.lifecycle)
            "ros-rmw-fastrtps-cpp",
        ],
        # dav2_export's ONNX files and the onnxruntime backend (CPU build; on a CUDA machine or a Jetson install
        # onnxruntime-gpu instead, which brings the CUDA and TensorRT execution providers)
        "onnx": ["onnx", "onnxruntime"],
        # dav2_bags --ray: many bags on a Ray cluster (dav2_ros/offline/fleet_ray.py; imported only with --ray)
        "fleet": ["ray"],
        "test": [
            "pytest",
            "flake8",  # test/packaging/test_flake8.py
            "hypothesis",
            "psutil",
            "rosbags",
            "mcap",
            "mcap-ros2-support",
            "colcon-common-extensions",
            "ros-ament-package",
            # cross-checks our Hugging Face checkpoint loading against transformers' own model
            "transformers",
            # the export (ONNX + OpenVINO IR) and the onnxruntime backend are tested in CI too
            "onnx",
            "onnxruntime",
            # transformers' image processor (benchmarks/modes.py compares with it)
            "pillow",
            # the OpenVINO engine's int8 mode (parity tests)
            "nncf",
        ],
    },
    zip_safe=True,
    maintainer="dav2_ros maintainers",
    maintainer_email="maintainers@dav2-ros.org",
    description="Depth Anything V2 monocular metric depth and point clouds for ROS 2.",
    license="Apache-2.0",
    entry_points={
        "console_scripts": [
            "depth_node = dav2_ros.node.entry:depth_node",
            "managed_depth_node = dav2_ros.node.entry:managed_depth_node",
            "dav2_infer = dav2_ros.cli.infer:main",
            "dav2_weights = dav2_ros.cli.weights:main",
            "dav2_export = dav2_ros.cli.export:main",
            "bag_to_depth = dav2_ros.offline.entry_points:bag_to_depth",
            "depth_eval = dav2_ros.offline.entry_points:depth_eval",
            "dav2_bags = dav2_ros.offline.entry_points:dav2_bags",
        ],
    },
)
