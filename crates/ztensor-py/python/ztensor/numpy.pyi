import os
from typing import Dict, Optional, Union

import numpy as np

def save_file(
    tensors: Dict[str, np.ndarray],
    filename: Union[str, os.PathLike[str]],
    metadata: Optional[Dict[str, str]] = ...,
    compression: Union[bool, int, str] = ...,
) -> None: ...
def save(
    tensors: Dict[str, np.ndarray],
    metadata: Optional[Dict[str, str]] = ...,
    compression: Union[bool, int, str] = ...,
) -> bytes: ...
def load_file(filename: Union[str, os.PathLike[str]], copy: bool = ...) -> Dict[str, np.ndarray]: ...
def load(data: bytes) -> Dict[str, np.ndarray]: ...
