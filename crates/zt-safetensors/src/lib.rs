//! Reader and writer for safetensors files
