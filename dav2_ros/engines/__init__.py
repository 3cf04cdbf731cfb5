"""Engines: what runs the Depth Anything V2 network, behind one seam (`base.Engine`), picked by name from one
registry (`registry.ENGINES`, which also gives the `backend` parameter its choices).

- `torch` (`torch_engine.py`): the reference, equal to the official code; CPU and CUDA (with the on-device
  frame path of `engines/torch_runtime/device_frame.py`), fp32/fp16/bf16/int8.
- `openvino` (`openvino_engine.py`): the CPU default when installed; converted in-process from the loaded
  network, compiled per input shape, model cache on disk.
- `onnxruntime`: the exported network under ONNX Runtime (CPU, CUDA, TensorRT providers).

`auto` (the default everywhere: node, `dav2_infer`, `bag_to_depth`, `DepthEstimator.from_*`) is torch on CUDA,
OpenVINO on the CPU when it is installed, else torch (`registry.resolve_backend`, which also says why).

How an engine plugs in:
1. Write `dav2_ros/engines/<name>_engine.py` with a class that has `backend`, `precision` (resolved), `device`
   (torch's words, "cpu"/"cuda:0"), `run(batch)` -- float32 (B, 3, h, w) normalized input -> float32 (B, h, w)
   network output, before upsampling -- and `describe()` (one line for the start-up log), and a module-level
   `create_engine(model, device, precision, options)`: `model` is the loaded fp32 `DepthAnythingV2` on the CPU,
   `device` the resolved torch.device, `precision` the user's choice ("auto" included: resolve it),
   `options` an `EngineOptions` (threads, cache folder via `options.engine_cache(name)`, shapes kept).
   Refuse what cannot work with `BackendUnavailable` (one line, with the pip command for a missing package);
   a shape that fails to compile raises `EngineShapeError` from `run` (its frames are refused, others go on).
2. Add its `EngineSpec` to `registry.ENGINES` (module, imports it needs with their pip commands, devices,
   precisions). The parameter's choices, the CLI flags and the parity tests (test/unit/model/test_model_parity.py, over
   `ENGINES`) pick it up from there.
An engine that converts the torch network (OpenVINO, ONNX export) traces it with `tracing.trace` /
`tracing.static_position_embeddings`: the position-embedding resize then comes from torch as a constant (exporters
resize by size, not by torch's scale factor: 8e-3 x max error otherwise).
Preprocessing (exact/fast), upsampling, masking, the cloud and the messages stay in `DepthEstimator` and
`FrameProcessor`, the same for every engine.
"""
