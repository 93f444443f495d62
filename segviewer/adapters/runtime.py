"""Process-level torch settings the commands need: thread counts and a quicker start.

* :func:`set_threads`: torch's intra-op threads and OpenCV's, for ``predict --threads``.
* :func:`import_torchvision`: ``import torchvision`` without importing ``torch._dynamo``.
  torchvision's ``ops/roi_align.py`` does ``from torch._dynamo.utils import is_compile_supported``
  at import time, which loads all of TorchDynamo (about as long as ``import torch`` itself: 0.6 to
  1.4 s, measured) although that function is only called when torchvision's compiled ops are
  missing. Here the import sees a small stand-in for those two modules whose function imports
  the real one when first called; the stand-ins leave ``sys.modules`` as soon as torchvision is
  imported, so a later ``import torch._dynamo`` (``torch.compile``) gets the real package.
  Any other name asked of a stand-in imports the real module too, so a torchvision that needs
  more of TorchDynamo still works, only without the saving.
* :func:`no_weight_init`: build a network whose every parameter a checkpoint will overwrite
  without drawing random initial weights first (0.1 s of the bundled Mask R-CNN's load).
"""

from __future__ import annotations

import importlib
import sys
import threading
import types
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["set_threads", "import_torchvision", "no_weight_init"]

_DYNAMO = ("torch._dynamo", "torch._dynamo.utils")
_lock = threading.Lock()


def set_threads(n: int) -> None:
    """Give torch's intra-op pool and OpenCV ``n`` threads each (``n >= 1``)."""
    import cv2
    import torch

    n = int(n)
    if n < 1:
        raise ValueError(f"threads must be at least 1, got {n}")
    torch.set_num_threads(n)
    cv2.setNumThreads(n)


class _StandIn(types.ModuleType):
    """Stands in for a ``torch._dynamo`` module while torchvision imports; any name torchvision
    did not get from :func:`_lazy_is_compile_supported` loads the real module and is taken from it."""

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        _drop_stand_ins()
        return getattr(importlib.import_module(self.__name__), name)


def _drop_stand_ins() -> None:
    for name in _DYNAMO:
        if isinstance(sys.modules.get(name), _StandIn):
            del sys.modules[name]


def _lazy_is_compile_supported(device_type: Any) -> bool:
    """torch._dynamo.utils.is_compile_supported, imported on first call."""
    from torch._dynamo.utils import is_compile_supported

    return bool(is_compile_supported(device_type))


def import_torchvision() -> types.ModuleType:
    """``import torchvision``, without TorchDynamo when nothing has imported it yet (see above)."""
    if "torchvision" in sys.modules:
        return sys.modules["torchvision"]
    import torch  # noqa: F401 - the stand-ins are submodules of an imported torch

    with _lock:
        if "torchvision" in sys.modules or any(n in sys.modules for n in _DYNAMO):
            return importlib.import_module("torchvision")
        pkg = _StandIn(_DYNAMO[0])
        pkg.__path__ = []  # a package, so that "torch._dynamo.utils" can be its submodule
        utils = _StandIn(_DYNAMO[1])
        utils.is_compile_supported = _lazy_is_compile_supported  # type: ignore[attr-defined]
        sys.modules[_DYNAMO[0]], sys.modules[_DYNAMO[1]] = pkg, utils
        try:
            import torchvision
            import torchvision.models.detection  # noqa: F401 - what the adapters use, while the stand-ins are there
            import torchvision.ops  # noqa: F401
        finally:
            _drop_stand_ins()
        return torchvision


_RANDOM_INIT = ("uniform_", "normal_", "kaiming_uniform_", "kaiming_normal_", "xavier_uniform_", "xavier_normal_",
                "trunc_normal_", "orthogonal_")


@contextmanager
def no_weight_init() -> Iterator[None]:
    """Inside, ``torch.nn.init``'s random initialisers (and ``Tensor.uniform_`` / ``normal_``) leave
    the tensor as it is, on this thread only (a torch function mode). Use it only to build a
    network that a strict checkpoint load will then overwrite entirely."""
    import torch
    from torch.overrides import TorchFunctionMode

    skipped: set[Callable[..., Any]] = {getattr(torch.Tensor, n) for n in ("uniform_", "normal_")}
    skipped |= {getattr(torch.nn.init, n) for n in _RANDOM_INIT if hasattr(torch.nn.init, n)}

    class _Skip(TorchFunctionMode):
        def __torch_function__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
            if func in skipped:
                return args[0] if args else (kwargs or {}).get("tensor")
            return func(*args, **(kwargs or {}))

    with _Skip():
        yield
