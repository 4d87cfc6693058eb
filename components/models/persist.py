"""Pickles that have the same bytes for the same model, in any process.

A fitted estimator (``svm_fusion``, ``hierarchical``) holds torch networks. Torch pickles a
tensor's storage under its memory address, so the same weights written by two processes
gave two different ``model.pkl`` files, and DVC saw a new output on every run. Here each
tensor is written as its NumPy array (the same values, dtype and shape; a dtype NumPy lacks,
such as bfloat16, travels as float32 with its name) and rebuilt as a tensor on load; a
parameter keeps its ``requires_grad``. The file is a plain pickle, which ``joblib.load``
reads as well.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import torch

from components.atomic import atomic_write

PROTOCOL = 4


def _tensor(array: np.ndarray, dtype: str) -> torch.Tensor:
    return torch.from_numpy(np.array(array)).to(getattr(torch, dtype))


def _parameter(array: np.ndarray, dtype: str, requires_grad: bool) -> torch.nn.Parameter:
    return torch.nn.Parameter(_tensor(array, dtype), requires_grad=requires_grad)


def _as_array(tensor: torch.Tensor) -> tuple[np.ndarray, str]:
    plain = tensor.detach().cpu()
    dtype = str(plain.dtype).removeprefix("torch.")
    try:
        return np.ascontiguousarray(plain.numpy()), dtype
    except TypeError:  # a dtype NumPy lacks (bfloat16): float32 carries it exactly
        return np.ascontiguousarray(plain.float().numpy()), dtype


class _Pickler(pickle.Pickler):
    def reducer_override(self, obj: Any) -> Any:
        if isinstance(obj, torch.nn.Parameter):
            return _parameter, (*_as_array(obj), obj.requires_grad)
        if isinstance(obj, torch.Tensor):
            return _tensor, _as_array(obj)
        return NotImplemented


def dump(obj: Any, handle: BinaryIO) -> None:
    """Pickle ``obj`` to ``handle`` with tensors as arrays (see the module docstring)."""
    _Pickler(handle, protocol=PROTOCOL).dump(obj)


def save(obj: Any, path: str | Path) -> Path:
    """:func:`dump` to ``path`` atomically; returns the path."""
    return atomic_write(Path(path), lambda handle: dump(obj, handle))
