"""Writing bundles: the Keras model and its ONNX export (training only; imports TensorFlow)."""
