"""Turns trained diffusion models into self-describing ONNX/TensorRT bundles."""
