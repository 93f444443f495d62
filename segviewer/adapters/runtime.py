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
  Two more parts of torchvision's import that no model needs are put off the same way (about
  50 ms of CPU, measured): ``torchvision.datasets`` (a stand-in whose first attribute imports the
  real package) and ``torchvision.ops``' registration of its ONNX export rules (which imports
  ``torch.onnx``): it runs right after ``torch.onnx`` is first imported, so an ONNX export
  still finds torchvision's ops.
  ``torchvision.models`` itself is imported without running its ``__init__`` (which imports all
  twenty model families; the detection models need four: about 40 ms, measured): its submodules
  import as usual, and the first other name asked of it (``get_model``, ``resnet50``,
  ``list_models``, ``from torchvision.models import *``) runs the real ``__init__`` in place, so
  the package is then exactly what a plain import makes.
* :func:`no_weight_init`: build a network whose every parameter a checkpoint will overwrite
  without drawing random initial weights first (0.1 s of the bundled Mask R-CNN's load).
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import re
import sys
import threading
import types
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["set_threads", "import_torchvision", "no_weight_init"]

_DYNAMO = ("torch._dynamo", "torch._dynamo.utils")
_DATASETS = "torchvision.datasets"
_ONNX_RULES = "torchvision.ops._register_onnx_ops"
_MODELS = "torchvision.models"
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
    """Stands in for a module while torchvision imports (``torch._dynamo``, ``torchvision.datasets``);
    any name not set on it loads the real module and is taken from it."""

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        _drop_stand_ins(_DYNAMO if self.__name__ in _DYNAMO else (self.__name__,))
        return getattr(importlib.import_module(self.__name__), name)


def _drop_stand_ins(names: tuple[str, ...] = (*_DYNAMO, _DATASETS, _ONNX_RULES)) -> None:
    for name in names:
        if isinstance(sys.modules.get(name), _StandIn):
            del sys.modules[name]


def _register_onnx_rules() -> None:
    """torchvision's ONNX export rules for its ops, now if ``torch.onnx`` is imported, else right
    after it is (an export needs ``torch.onnx``; importing it costs about 25 ms)."""
    if "torch.onnx" in sys.modules:
        importlib.import_module(_ONNX_RULES)._register_custom_op()
    elif not any(isinstance(f, _AfterImport) for f in sys.meta_path):
        sys.meta_path.insert(0, _AfterImport("torch.onnx", _register_onnx_rules))


class _Wrapped(importlib.abc.Loader):
    """A loader that is ``inner`` but for what a subclass overrides (``exec_module``)."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:  # get_source, is_package, ...: the real loader's
        return getattr(self._inner, name)

    def create_module(self, spec: Any) -> Any:
        return self._inner.create_module(spec)


class _AfterImport(importlib.abc.MetaPathFinder):
    """Runs ``then()`` once, right after the module ``name`` is first imported (executed)."""

    def __init__(self, name: str, then: Callable[[], None]) -> None:
        self.name, self.then = name, then

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        if fullname != self.name:
            return None
        try:
            sys.meta_path.remove(self)  # once; atomic, so two threads cannot both get here
        except ValueError:
            return None
        spec = importlib.util.find_spec(fullname)
        if spec is None or spec.loader is None:
            return spec
        inner, then = spec.loader, self.then

        class _Then(_Wrapped):
            def exec_module(self, module: types.ModuleType) -> None:
                self._inner.exec_module(module)
                module.__loader__ = module.__spec__.loader = self._inner  # the real loader from now on
                then()

        spec.loader = _Then(inner)
        return spec


class _LazyInit(importlib.abc.MetaPathFinder):
    """Imports the package ``name`` without running its ``__init__`` until a name that is not one
    of its submodules is asked of it; then the real ``__init__`` runs in the module, once, and the
    package is what a plain import makes.

    Until then the module is a :class:`types.ModuleType` subclass (its class goes back to
    ``ModuleType`` once complete), for three things a PEP 562 ``__getattr__`` alone gets wrong:
    a submodule that the ``__init__`` star-imports and whose ``__all__`` names itself
    (``torchvision.models.alexnet``, ``googlenet``: the ``__init__`` binds the function, not the
    module) reads as that function, also after something imported the submodule directly
    (``torchvision.models.quantization`` imports ``..googlenet``); another thread asking a name
    while the real ``__init__`` runs waits for it to finish, as an import of a module still
    initialising does, instead of seeing it half done; and a name that is no identifier is an
    ``AttributeError``, not a failed submodule import."""

    def __init__(self, name: str) -> None:
        self.name = name

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        if fullname != self.name:
            return None
        try:
            sys.meta_path.remove(self)  # once
        except ValueError:
            return None
        spec = importlib.util.find_spec(fullname)
        if spec is None or spec.loader is None or not spec.submodule_search_locations:
            return spec
        inner = spec.loader
        try:
            source = inner.get_source(fullname)  # type: ignore[attr-defined]
        except (AttributeError, ImportError, OSError):
            source = None
        if source is None:  # cannot tell which submodules it star-imports: a plain import
            return spec
        starred = frozenset(re.findall(r"^from \.(\w+) import \*", source, re.MULTILINE))
        lock, state = threading.RLock(), ["pending"]  # pending, running (the real __init__), done

        def public(name: str, sub: types.ModuleType) -> Any:
            """What the real ``__init__`` binds ``name`` to, given its submodule ``sub``."""
            if name in starred:
                exported = getattr(sub, "__all__", None)
                if (name in exported) if exported is not None else (name in vars(sub) and not name.startswith("_")):
                    return getattr(sub, name)
            return sub

        def complete(module: types.ModuleType) -> None:
            with lock:  # another thread waits here while the real __init__ runs
                if state[0] != "pending":  # done, or running on this very thread (a half-done module)
                    return
                state[0] = "running"
                try:
                    inner.exec_module(module)
                finally:
                    module.__class__ = types.ModuleType
                    state[0] = "done"

        class _Pending(types.ModuleType):
            def __setattr__(self, name: str, value: Any) -> None:
                # the import system binds a freshly imported submodule on its package
                if isinstance(value, types.ModuleType) and value.__name__ == f"{self.__name__}.{name}":
                    value = public(name, value)
                super().__setattr__(name, value)

            def __getattr__(self, name: str) -> Any:
                if name.startswith("__") and name != "__all__":
                    raise AttributeError(name)
                if state[0] != "done" and name.isidentifier() and name != "__all__":
                    sub = f"{self.__name__}.{name}"
                    if importlib.util.find_spec(sub) is not None:  # a submodule: import just it
                        value = public(name, importlib.import_module(sub))
                        vars(self)[name] = value
                        return value
                complete(self)
                try:
                    return vars(self)[name]
                except KeyError:
                    raise AttributeError(f"module {self.__name__!r} has no attribute {name!r}") from None

            def __dir__(self) -> list[str]:
                complete(self)
                return sorted(vars(self))

        class _Deferred(_Wrapped):
            def exec_module(self, module: types.ModuleType) -> None:
                module.__loader__ = module.__spec__.loader = self._inner
                module.__class__ = _Pending

        spec.loader = _Deferred(inner)
        return spec


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
        if _DATASETS not in sys.modules:
            sys.modules[_DATASETS] = _StandIn(_DATASETS)
        if "torch.onnx" not in sys.modules and _ONNX_RULES not in sys.modules:
            rules = _StandIn(_ONNX_RULES)
            rules._register_custom_op = _register_onnx_rules  # type: ignore[attr-defined]
            sys.modules[_ONNX_RULES] = rules
        lazy = _LazyInit(_MODELS) if _MODELS not in sys.modules else None
        if lazy is not None:
            sys.meta_path.insert(0, lazy)
        try:
            import torchvision
            import torchvision.models.detection  # noqa: F401 - what the adapters use, while the stand-ins are there
            import torchvision.ops  # noqa: F401
        finally:
            _drop_stand_ins()
            if lazy in sys.meta_path:
                sys.meta_path.remove(lazy)
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
