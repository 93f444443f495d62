"""Where weights come from: a file the user names, the torch hub cache, or a download.

Order (the first that works wins): ``weights=`` / ``--weights FILE``; the hub cache
``torch.hub.get_dir()/checkpoints/<file name of the weights URL>`` (``TORCH_HOME`` respected); a
download with a ``progress(done_bytes, total_bytes)`` callback, unless downloads are off
(``allow_download=False`` or ``SEGVIEWER_OFFLINE=1``). When nothing works the error is one sentence
that names the model, the file it needs and the exact folder to put it in.

User checkpoints (fine-tuned on other classes) are read here too: a bare state dict or one wrapped
as ``{"model": ...}`` / ``{"state_dict": ...}``; class names come from a file beside the checkpoint
with the same stem (see :func:`read_class_names` for the format).

torch is imported inside the functions that need it.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import re
import sys
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from segviewer.adapters.base import ProgressCallback
from segviewer.core.errors import CheckpointMismatchError, SegviewerError, WeightsUnavailableError
from segviewer.core.fileio import atomic_path

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = [
    "OFFLINE_ENV",
    "downloads_allowed",
    "hub_checkpoint_dir",
    "weights_file_name",
    "cached_weights",
    "download",
    "resolve_weights",
    "sha256_file",
    "read_state_dict",
    "check_state_dict",
    "read_class_names",
]

OFFLINE_ENV = "SEGVIEWER_OFFLINE"
_HASH_IN_NAME = re.compile(r"-([a-f0-9]{8,})\.")  # torchvision names files "<name>-<sha256 prefix>.pth"
_CHUNK = 1 << 20


def downloads_allowed(allow: bool | None = None) -> bool:
    """An explicit ``allow`` wins; otherwise downloads are on unless ``SEGVIEWER_OFFLINE`` is set (not 0)."""
    if allow is not None:
        return bool(allow)
    return os.environ.get(OFFLINE_ENV, "").strip().lower() in ("", "0", "false", "no")


def hub_checkpoint_dir() -> Path:
    """``torch.hub.get_dir()/checkpoints``, computed without importing torch when it is not loaded yet.

    Mirrors torch's rule: ``$TORCH_HOME/hub``, else ``$XDG_CACHE_HOME/torch/hub``, else
    ``~/.cache/torch/hub``; once torch is imported its own answer wins (``torch.hub.set_dir``).
    """
    if "torch" in sys.modules:
        import torch

        return Path(torch.hub.get_dir()) / "checkpoints"
    home = os.environ.get("TORCH_HOME")
    if home:
        base = Path(os.path.expanduser(home))
    else:
        xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        base = Path(xdg) / "torch"
    return base / "hub" / "checkpoints"


def weights_file_name(url: str) -> str:
    """The file name torch.hub stores a URL under (its last path component)."""
    return os.path.basename(urllib.request.urlparse(url).path)


def cached_weights(url: str) -> Path | None:
    """The hub-cache copy of ``url``'s file if it is there, else ``None``."""
    p = hub_checkpoint_dir() / weights_file_name(url)
    return p if p.is_file() and p.stat().st_size > 0 else None


def sha256_file(path: Path, chunk: int = _CHUNK) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def download(url: str, dst: Path, progress: ProgressCallback | None = None, timeout: float = 30.0) -> Path:
    """Fetch ``url`` into ``dst`` atomically, calling ``progress(done, total)`` per chunk.

    When the file name carries a sha256 prefix (torchvision's do) the download is checked against it
    before it is renamed into place, so a broken transfer never lands in the cache.
    Raises ``OSError``/``urllib.error.URLError`` (callers turn them into one sentence).
    """
    m = _HASH_IN_NAME.search(weights_file_name(url))
    want = m.group(1) if m else None
    with atomic_path(dst) as tmp:
        h = hashlib.sha256()
        with urllib.request.urlopen(url, timeout=timeout) as resp, open(tmp, "wb") as out:
            total = int(resp.headers.get("Content-Length") or 0)
            done = 0
            if progress:
                progress(0, total)
            while block := resp.read(_CHUNK):
                out.write(block)
                h.update(block)
                done += len(block)
                if progress:
                    progress(done, total)
        if want and not h.hexdigest().startswith(want):
            raise OSError(f"the download's sha256 does not start with {want}")
    return dst


def resolve_weights(model_id: str, url: str, *, user_file: Path | str | None = None,
                    allow_download: bool | None = None, progress: ProgressCallback | None = None) -> Path:
    """The weights file to load for ``model_id``: the user's file, else the hub cache, else a download."""
    if user_file is not None:
        p = Path(user_file).expanduser()
        if not p.is_file():
            raise WeightsUnavailableError(f"weights file {p} {'is not a file' if p.exists() else 'does not exist'}")
        return p
    hit = cached_weights(url)
    if hit is not None:
        return hit
    folder = hub_checkpoint_dir()
    name = weights_file_name(url)
    advice = (f"download {url} into that folder, pass --weights FILE, "
              "or try a bundled shapes model (see `segviewer models`)")
    if not downloads_allowed(allow_download):
        raise WeightsUnavailableError(
            f"{model_id} needs the weights file {name}, which is not in {folder} and downloads are off "
            f"({OFFLINE_ENV}=1); {advice}"
        )
    try:
        return download(url, folder / name, progress)
    except (OSError, urllib.error.URLError, ValueError) as err:
        reason = str(getattr(err, "reason", None) or err).splitlines()[0][:120] if str(err) else type(err).__name__
        raise WeightsUnavailableError(
            f"{model_id} needs the weights file {name}, which is not in {folder} and could not be downloaded "
            f"({reason}); {advice}"
        ) from err


# --------------------------------------------------------------------------- checkpoints


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return (text[0] if text else type(err).__name__)[:160]


def read_state_dict(path: Path | str) -> dict[str, torch.Tensor]:
    """Read a checkpoint's tensors (never executing arbitrary pickles: ``weights_only=True``).

    Accepts a bare state dict, or a dict holding one under ``model`` / ``state_dict`` /
    ``model_state_dict`` (torchvision's reference scripts save ``{"model": ..., "args": Namespace}``);
    a ``module.`` prefix left by ``DataParallel`` is removed.
    """
    import torch

    p = Path(path)
    if not p.is_file():
        raise WeightsUnavailableError(f"weights file {p} does not exist")
    try:
        allow = getattr(torch.serialization, "safe_globals", None)  # torch >= 2.5
        with allow([argparse.Namespace]) if allow else contextlib.nullcontext():
            obj: Any = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many kinds for non-checkpoints
        raise CheckpointMismatchError(f"{p.name} is not a PyTorch checkpoint segviewer can read ({_first_line(err)})") from err
    if isinstance(obj, Mapping) and not any(isinstance(v, torch.Tensor) for v in obj.values()):
        for key in ("model", "state_dict", "model_state_dict"):
            if isinstance(obj.get(key), Mapping):
                obj = obj[key]
                break
    if not isinstance(obj, Mapping) or not obj:
        raise CheckpointMismatchError(
            f"{p.name} holds no state dict (expected a dict of tensors, or one under 'model' or 'state_dict')"
        )
    state = {str(k): v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if not state:
        raise CheckpointMismatchError(f"{p.name} holds no tensors")
    if all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    return state


def _shape(t: Any) -> str:
    return str(tuple(int(s) for s in t.shape))


def check_state_dict(model: torch.nn.Module, state: Mapping[str, torch.Tensor], *, source: str, model_id: str) -> None:
    """Refuse a checkpoint that does not fit ``model``, naming the first tensor that differs.

    ``num_batches_tracked`` counters are ignored both ways: torchvision's released detection weights
    come from FrozenBatchNorm2d, which has none, while our weight-free build uses BatchNorm2d.
    """
    expected = model.state_dict()
    prefix = f"{source} does not fit {model_id}:"
    for name, t in expected.items():
        if name.endswith("num_batches_tracked"):
            continue
        got = state.get(name)
        if got is None:
            raise CheckpointMismatchError(f"{prefix} tensor {name} {_shape(t)} is missing from the checkpoint")
        if tuple(got.shape) != tuple(t.shape):
            raise CheckpointMismatchError(f"{prefix} tensor {name} should be {_shape(t)} but is {_shape(got)}")
    for name in state:
        if name not in expected and not name.endswith("num_batches_tracked"):
            raise CheckpointMismatchError(f"{prefix} the checkpoint has an unexpected tensor {name} {_shape(state[name])}")


# --------------------------------------------------------------------------- class names


def _read_names_file(path: Path) -> Any:
    try:
        if path.suffix == ".json":
            return json.loads(path.read_text(encoding="utf-8"))
        try:
            import tomllib
        except ModuleNotFoundError:  # Python 3.10
            import tomli as tomllib  # type: ignore[no-redef]
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError) as err:
        raise SegviewerError(f"class names file {path} cannot be read ({_first_line(err)})") from err


def _names_from(spec: Any, n: int, defaults: list[str], background: bool, path: Path, what: str) -> tuple[str, ...]:
    if isinstance(spec, list):
        names = [str(s) for s in spec]
        if len(names) == n:
            return tuple(names)
        if background and len(names) == n - 1:
            return ("__background__", *names)
        raise SegviewerError(f"{path.name} lists {len(names)} {what} but the checkpoint has {n}")
    if isinstance(spec, Mapping):
        out = list(defaults)
        for key, name in spec.items():
            try:
                i = int(key)
            except (TypeError, ValueError):
                raise SegviewerError(f"{path.name}: {what} key {key!r} is not an integer id") from None
            if not 0 <= i < n:
                raise SegviewerError(f"{path.name}: {what} id {i} is outside the checkpoint's 0..{n - 1}")
            out[i] = str(name)
        return tuple(out)
    raise SegviewerError(f"{path.name}: {what} must be a list of names or a table of id -> name")


def read_class_names(checkpoint: Path | str, num_classes: int, *, background: bool,
                     num_keypoints: int = 0) -> tuple[tuple[str, ...], tuple[str, ...] | None, Path | None]:
    """Class (and keypoint) names for a user checkpoint, from ``<stem>.json`` or ``<stem>.toml`` beside it.

    Accepted forms (``background=True`` for detection models, whose class 0 is the background):

    * a JSON list of all ``num_classes`` names, or of the ``num_classes - 1`` foreground names
      (``"__background__"`` is then put first);
    * a JSON object ``{"1": "cat", "2": "dog"}`` of class id -> name (ids not named get defaults);
    * a JSON object or TOML file with ``categories = [...]`` (list or id table) and optionally
      ``keypoint_names = [...]``.

    Without a names file: ``__background__``, ``class 1``, ``class 2``, ... for detection and
    ``class 0``, ``class 1``, ... for semantic models (the name then matches the label value).
    Returns ``(categories, keypoint_names or None, the names file used or None)``.
    """
    ckpt = Path(checkpoint)
    defaults = [f"class {i}" for i in range(num_classes)]
    if background and num_classes:
        defaults[0] = "__background__"
    for suffix in (".json", ".toml"):
        path = ckpt.with_suffix(suffix)
        if path.is_file():
            break
    else:
        return tuple(defaults), None, None
    data = _read_names_file(path)
    kps: tuple[str, ...] | None = None
    if isinstance(data, Mapping) and ("categories" in data or "keypoint_names" in data):
        cats_spec = data.get("categories", defaults)
        if data.get("keypoint_names") is not None and num_keypoints:
            kps = _names_from(data["keypoint_names"], num_keypoints, [f"keypoint {i + 1}" for i in range(num_keypoints)],
                              False, path, "keypoint names")
    else:
        cats_spec = data
    return _names_from(cats_spec, num_classes, defaults, background, path, "class names"), kps, path
