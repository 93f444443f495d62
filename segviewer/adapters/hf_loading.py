"""Where a Hugging Face transformers checkpoint comes from, and why loading it never runs its code.

Order (the first that works wins), as :mod:`segviewer.adapters.weights` does for torchvision:

1. ``--weights DIR``: a folder in ``save_pretrained`` layout (``config.json`` + ``model.safetensors``
   or ``pytorch_model.bin``, and the processor's ``preprocessor_config.json`` / tokenizer files);
2. the Hugging Face cache, read offline (``HF_HUB_CACHE``, else ``HF_HOME/hub``, else
   ``~/.cache/huggingface/hub``): a snapshot of the card's repository;
3. a download of that repository's configuration and weight files (never its ``*.py`` files),
   unless downloads are off (``allow_download=False``, ``SEGVIEWER_OFFLINE=1`` or ``HF_HUB_OFFLINE=1``).

When nothing works the error is one sentence naming the model, the repository, the cache folder and
what to do, like torchvision's.

Safety: a folder whose ``config.json`` (or processor / tokenizer config) has an ``auto_map``, or that
holds ``*.py`` files, is refused before anything is loaded: segviewer never passes
``trust_remote_code`` and always loads with the architecture class it chose itself. Weights are
read from safetensors when present; a pickled ``pytorch_model.bin`` only through
``torch.load(weights_only=True)``. A checkpoint that leaves tensors of the architecture unset is
refused (transformers would silently initialise them at random).

Nothing here imports transformers or torch at module level: the registry lists these families
without them.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import pickle
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from segviewer.adapters.base import ProgressCallback
from segviewer.adapters.weights import OFFLINE_ENV, downloads_allowed
from segviewer.core.errors import CheckpointMismatchError, SegviewerError, WeightsUnavailableError

__all__ = [
    "EXTRA_HINT",
    "transformers_available",
    "require_transformers",
    "hf_cache_dir",
    "hub_offline",
    "cached_snapshot",
    "resolve_checkpoint",
    "check_checkpoint_dir",
    "load_pretrained",
    "categories_from_config",
    "eager_attention",
    "quiet_transformers",
]

EXTRA_HINT = "pip install 'segviewer[transformers]'"
_CONFIG_FILES = ("config.json", "preprocessor_config.json", "processor_config.json", "tokenizer_config.json",
                 "video_preprocessor_config.json")
_DOWNLOAD_PATTERNS = ["*.json", "*.txt", "*.safetensors"]  # never *.py; *.bin only when no safetensors exist
_TRUE = ("1", "true", "yes", "on")


def transformers_available() -> bool:
    """Whether the ``transformers`` package can be imported (without importing it)."""
    return importlib.util.find_spec("transformers") is not None


def require_transformers(model_id: str) -> None:
    """Refuse in one sentence when the optional ``transformers`` extra is not installed."""
    if not transformers_available():
        raise SegviewerError(f"{model_id} needs the transformers extra, which is not installed: {EXTRA_HINT}")


def hf_cache_dir() -> Path:
    """The Hugging Face hub cache, read from the environment now (huggingface_hub reads it once at import)."""
    env = os.environ.get("HF_HUB_CACHE") or os.environ.get("HUGGINGFACE_HUB_CACHE")
    if env:
        return Path(env).expanduser()
    home = os.environ.get("HF_HOME")
    if home:
        return Path(home).expanduser() / "hub"
    xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(xdg) / "huggingface" / "hub"


def hub_offline() -> bool:
    """``HF_HUB_OFFLINE`` (or ``TRANSFORMERS_OFFLINE``) is set to a true value."""
    return any(os.environ.get(k, "").strip().lower() in _TRUE for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def _has_weights(folder: Path) -> bool:
    return any(folder.glob("*.safetensors")) or any(folder.glob("pytorch_model*.bin"))


def cached_snapshot(repo: str, revision: str = "main", cache: Path | None = None) -> Path | None:
    """The cached snapshot folder of ``repo`` at ``revision`` holding a config and weights, else None.

    Reads the cache layout directly (``models--org--name/refs/<rev>`` -> ``snapshots/<commit>``), so
    asking costs no import of huggingface_hub.
    """
    root = (cache or hf_cache_dir()) / ("models--" + repo.replace("/", "--"))
    ref = root / "refs" / revision
    try:
        commit = ref.read_text(encoding="utf-8").strip() if ref.is_file() else revision
    except OSError:
        return None
    snap = root / "snapshots" / commit
    if (snap / "config.json").is_file() and _has_weights(snap):
        return snap
    return None


def _unavailable(model_id: str, repo: str, why: str) -> WeightsUnavailableError:
    return WeightsUnavailableError(
        f"{model_id} needs the Hugging Face checkpoint {repo}, which is not in {hf_cache_dir()} and {why}; "
        f"fetch it where there is a network (`hf download {repo}`) and copy the cache, pass --weights DIR "
        "(a save_pretrained folder), or try a bundled shapes model (see `segviewer models`)"
    )


def resolve_checkpoint(model_id: str, repo: str | None, *, user_dir: Path | str | None = None,
                       allow_download: bool | None = None, progress: ProgressCallback | None = None) -> Path:
    """The checkpoint folder to load: the user's folder, else the HF cache, else a download."""
    if user_dir is not None:
        p = Path(user_dir).expanduser()
        if not p.exists():
            raise WeightsUnavailableError(f"weights folder {p} does not exist")
        if not p.is_dir():
            raise WeightsUnavailableError(
                f"{p} is a file; {model_id} loads a folder in save_pretrained layout (config.json and "
                "model.safetensors): pass that folder to --weights")
        return p
    if not repo:
        raise WeightsUnavailableError(f"{model_id} names no Hugging Face repository; pass --weights DIR (a save_pretrained folder)")
    hit = cached_snapshot(repo)
    if hit is not None:
        return hit
    if not downloads_allowed(allow_download) or hub_offline():
        raise _unavailable(model_id, repo, f"downloads are off ({OFFLINE_ENV}=1 or HF_HUB_OFFLINE=1)")
    try:
        from huggingface_hub import snapshot_download

        if progress:
            progress(0, 0)
        folder = Path(snapshot_download(repo, cache_dir=hf_cache_dir(), allow_patterns=_DOWNLOAD_PATTERNS))
        if not any(folder.glob("*.safetensors")):
            folder = Path(snapshot_download(repo, cache_dir=hf_cache_dir(),
                                            allow_patterns=[*_DOWNLOAD_PATTERNS, "pytorch_model*.bin"]))
    except Exception as err:  # huggingface_hub raises many kinds (HTTP, offline, missing repo)
        reason = (str(err).strip().splitlines() or [type(err).__name__])[0][:120]
        raise _unavailable(model_id, repo, f"could not be downloaded ({reason})") from err
    return folder


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError) as err:
        raise CheckpointMismatchError(f"{path} cannot be read as JSON ({err})") from err
    if not isinstance(data, dict):
        raise CheckpointMismatchError(f"{path} does not hold a JSON object")
    return data


def check_checkpoint_dir(folder: Path, model_types: tuple[str, ...], model_id: str) -> dict[str, Any]:
    """Refuse a folder that would run code, is not this family's, or has no weights; returns its config.

    Custom code is recognised by an ``auto_map`` in any of the configuration files or by ``*.py``
    files in the folder; both are refused whatever else the folder holds.
    """
    cfg_path = folder / "config.json"
    if not cfg_path.is_file():
        raise CheckpointMismatchError(
            f"{folder} is not a save_pretrained folder: it has no config.json (pass the folder that "
            "model.save_pretrained() wrote)")
    config = _read_json(cfg_path)
    code = sorted(p.name for p in folder.glob("*.py"))
    mapped = [name for name in _CONFIG_FILES if (folder / name).is_file() and "auto_map" in _read_json(folder / name)]
    if code or mapped:
        what = ", ".join([*(f"auto_map in {m}" for m in mapped), *code][:4])
        raise CheckpointMismatchError(
            f"{folder} carries its own Python code ({what}); segviewer never runs code from a checkpoint "
            f"(no trust_remote_code), so {model_id} refuses it: use a checkpoint of an architecture that "
            f"transformers ships ({', '.join(model_types)})")
    mtype = str(config.get("model_type", ""))
    if mtype not in model_types:
        from segviewer.adapters.registry import HF_ZOO  # the card that does load it, if any

        fits = [mid for mid, spec in HF_ZOO.items() if spec.get("hf_family") == mtype or
                (mtype == "sam2_video" and spec.get("hf_family") == "sam2")]
        hint = f" (--model {fits[0]} does)" if fits else ""
        raise CheckpointMismatchError(
            f"{folder.name} is a {mtype or 'untyped'} checkpoint; {model_id} loads {' or '.join(model_types)} "
            f"checkpoints{hint}")
    if not _has_weights(folder):
        raise CheckpointMismatchError(f"{folder} has no weights (model.safetensors or pytorch_model.bin)")
    return config


def load_pretrained(cls: Any, folder: Path, model_id: str, **kwargs: Any) -> Any:
    """``cls.from_pretrained(folder)`` offline, safetensors first, pickles only with ``weights_only``;
    a checkpoint whose tensors do not cover the architecture is refused, naming the first gap."""
    safetensors = any(folder.glob("*.safetensors"))
    try:
        model, info = cls.from_pretrained(
            str(folder), local_files_only=True, use_safetensors=safetensors, weights_only=True,
            output_loading_info=True, **kwargs)
    except (OSError, ValueError, RuntimeError, KeyError, TypeError, pickle.UnpicklingError) as err:
        # UnpicklingError: a pickled .bin holding more than tensors (weights_only refuses it)
        first = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
        raise CheckpointMismatchError(f"{folder.name} could not be loaded as {model_id} ({first})") from err
    for key, what in (("missing_keys", "is missing from the checkpoint"),
                      ("mismatched_keys", "has the wrong shape in the checkpoint")):
        bad = sorted(info.get(key) or ())
        if bad:
            name = bad[0][0] if isinstance(bad[0], tuple) else bad[0]
            more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
            raise CheckpointMismatchError(f"{folder.name} does not fit {model_id}: tensor {name} {what}{more}")
    return model


def categories_from_config(config: Any) -> tuple[str, ...]:
    """Class names by id from ``config.id2label`` (ids not named get ``class i``)."""
    raw = getattr(config, "id2label", None) or {}
    names = {int(k): str(v) for k, v in dict(raw).items()}
    n = max(names, default=-1) + 1
    return tuple(names.get(i, f"class {i}") for i in range(n))


@contextlib.contextmanager
def eager_attention(model: Any) -> Iterator[None]:
    """Run ``model`` with eager attention inside (the only kind that returns attention weights),
    restoring its own implementation (usually SDPA) afterwards."""
    config = model.config
    old = getattr(config, "_attn_implementation", None)
    config._attn_implementation = "eager"
    try:
        yield
    finally:
        config._attn_implementation = old


_quiet = False


def quiet_transformers() -> None:
    """No progress bars and no advice-level log lines from transformers in a viewer's output."""
    global _quiet
    if _quiet:
        return
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    _quiet = True
