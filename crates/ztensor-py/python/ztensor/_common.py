"""Shared pieces of ``ztensor.numpy`` and ``ztensor.torch``."""

import os
import tempfile


def check_metadata(metadata):
    """safetensors' contract: metadata is a dict of str to str."""
    if metadata is None:
        return None
    if not isinstance(metadata, dict):
        raise TypeError(f"metadata must be a dict of str to str, not {type(metadata).__name__}")
    for k, v in metadata.items():
        if not isinstance(k, str) or not isinstance(v, str):
            raise TypeError(
                f"metadata must map str to str; got {type(k).__name__} -> {type(v).__name__}"
            )
    return metadata


def to_bytes(save_file, tensors, metadata, compression):
    """Runs ``save_file`` into a temporary file and returns its bytes."""
    with tempfile.TemporaryDirectory(prefix="ztensor-") as d:
        path = os.path.join(d, "tensors.zt")
        save_file(tensors, path, metadata=metadata, compression=compression)
        with open(path, "rb") as f:
            return f.read()


def from_bytes(data, load_file):
    """Loads tensors from the bytes of a file (any format ztensor reads), as independent
    copies: the temporary file is gone when this returns."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"expected bytes, not {type(data).__name__}")
    with tempfile.TemporaryDirectory(prefix="ztensor-") as d:
        path = os.path.join(d, "tensors")
        with open(path, "wb") as f:
            f.write(data)
        return load_file(path)
