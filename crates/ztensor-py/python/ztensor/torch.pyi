import os
from typing import Dict, List, Optional, Tuple, Union

import torch

Device = Union[str, int, torch.device]

def save_file(
    tensors: Dict[str, torch.Tensor],
    filename: Union[str, os.PathLike[str]],
    metadata: Optional[Dict[str, str]] = ...,
    compression: Union[bool, int, str] = ...,
) -> None: ...
def save(
    tensors: Dict[str, torch.Tensor],
    metadata: Optional[Dict[str, str]] = ...,
    compression: Union[bool, int, str] = ...,
) -> bytes: ...
def load_file(
    filename: Union[str, os.PathLike[str]], device: Device = ..., copy: bool = ...
) -> Dict[str, torch.Tensor]: ...
def load(data: bytes, device: Device = ...) -> Dict[str, torch.Tensor]: ...
def save_model(
    model: torch.nn.Module,
    filename: Union[str, os.PathLike[str]],
    metadata: Optional[Dict[str, str]] = ...,
    force_contiguous: bool = ...,
    compression: Union[bool, int, str] = ...,
) -> None: ...
def load_model(
    model: torch.nn.Module,
    filename: Union[str, os.PathLike[str]],
    strict: bool = ...,
    device: Device = ...,
    copy: bool = ...,
) -> Tuple[List[str], List[str]]: ...
