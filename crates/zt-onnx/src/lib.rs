//! Reader for ONNX model initializers
