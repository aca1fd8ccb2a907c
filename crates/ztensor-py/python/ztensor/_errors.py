"""Exceptions raised by ztensor.

Every error is a :class:`ZTensorError`; the subclasses say what kind of problem it was and,
where a caller would expect one, also derive from the matching built-in exception (a missing
tensor is a ``KeyError``, a missing file a ``FileNotFoundError``, a bad argument a
``ValueError``). Each instance has three attributes, ``None`` when unknown:

- ``kind``: the name of the Rust error variant (``"TensorNotFound"``, ``"ChecksumMismatch"``...)
- ``path``: the file the error happened in
- ``tensor``: the tensor it happened in
"""


class ZTensorError(Exception):
    """Base class of every ztensor error."""

    kind = None
    path = None
    tensor = None


class ZTensorIOError(ZTensorError, OSError):
    """The operating system refused a read or write."""


class ZTensorFileNotFoundError(ZTensorIOError, FileNotFoundError):
    """A file that does not exist."""


class FormatError(ZTensorError, ValueError):
    """The file breaks its format's rules (bad magic, truncated, malformed header...)."""


class ChecksumError(FormatError):
    """A component's digest does not match its bytes."""


class DecompressError(FormatError):
    """A compressed component does not decode."""


class LimitExceededError(ZTensorError, ValueError):
    """A size in the file (or a request) exceeds a safety limit."""


class UnsupportedError(ZTensorError):
    """Valid input that this build cannot handle (an unknown dtype or encoding, ...)."""


class ForbiddenGlobalError(UnsupportedError):
    """A pickle refers to code that ztensor never imports or runs."""


class BaseFileError(ZTensorError):
    """A checkpoint-delta file opened without its base, or with the wrong one."""


class TensorNotFoundError(ZTensorError, KeyError):
    """No tensor of that name."""

    def __str__(self):
        # KeyError quotes its argument; keep the message readable.
        return Exception.__str__(self)


class ComponentNotFoundError(ZTensorError, KeyError):
    """The tensor has no component of that name."""

    def __str__(self):
        return Exception.__str__(self)


class NotDenseError(ZTensorError, TypeError):
    """A dense-only operation on a sparse or quantized tensor."""


class DuplicateNameError(ZTensorError, ValueError):
    """A tensor name that is already in the file."""


class InvalidArgumentError(ZTensorError, ValueError):
    """An argument that cannot be right (a bad shape, a finished writer...)."""


__all__ = [
    "ZTensorError",
    "ZTensorIOError",
    "ZTensorFileNotFoundError",
    "FormatError",
    "ChecksumError",
    "DecompressError",
    "LimitExceededError",
    "UnsupportedError",
    "ForbiddenGlobalError",
    "BaseFileError",
    "TensorNotFoundError",
    "ComponentNotFoundError",
    "NotDenseError",
    "DuplicateNameError",
    "InvalidArgumentError",
]
