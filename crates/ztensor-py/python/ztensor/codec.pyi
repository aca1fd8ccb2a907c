from typing import Any, Dict, Literal, Optional, Tuple, TypeVar

import numpy as np

Effort = Literal["fast", "default", "max"]
EFFORTS: Tuple[str, str, str]
_Out = TypeVar("_Out")

def compress(
    data: Any,
    dtype: Any = ...,
    effort: Effort = ...,
    *,
    chunk_size: Optional[int] = ...,
    threads: Optional[int] = ...,
) -> bytes: ...
def decompress(
    blob: Any, out: Optional[_Out] = ..., *, threads: Optional[int] = ..., max_decoded_len: Optional[int] = ...
) -> Any: ...
def compress_delta(
    data: Any,
    reference: Any,
    dtype: Any = ...,
    effort: Effort = ...,
    *,
    chunk_size: Optional[int] = ...,
    threads: Optional[int] = ...,
) -> bytes: ...
def decompress_delta(
    blob: Any,
    reference: Any,
    out: Optional[_Out] = ...,
    *,
    threads: Optional[int] = ...,
    max_decoded_len: Optional[int] = ...,
) -> Any: ...
def frame_info(blob: Any) -> Dict[str, Any]: ...
def compress_array(
    arr: np.ndarray, effort: Effort = ..., *, chunk_size: Optional[int] = ..., threads: Optional[int] = ...
) -> bytes: ...
def decompress_array(blob: Any, *, threads: Optional[int] = ..., max_decoded_len: Optional[int] = ...) -> np.ndarray: ...
