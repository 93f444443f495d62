"""File > Load Weights…: a checkpoint file for torchvision and our own models, a folder for the
Hugging Face transformers families (``save_pretrained`` layout: ``config.json`` + weights).

A folder is checked here before it reaches the model process, with the same rules the adapter
applies when it loads (``adapters.hf_loading.check_checkpoint_dir``): no ``config.json``, custom
code (``auto_map`` or ``*.py``), another architecture or no weights are refused in one sentence,
so a wrong choice is told at once instead of as a failed prediction later.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtWidgets import QFileDialog, QWidget

from segviewer.core.errors import SegviewerError

__all__ = ["wants_folder", "folder_problem", "choose_weights"]

FILE_FILTER = "Checkpoints (*.pt *.pth *.ckpt *.bin);;All files (*)"


def wants_folder(card: Any) -> bool:
    """Whether ``card``'s family loads a ``save_pretrained`` folder (the transformers families)."""
    extra = getattr(card, "extra", None) or {}
    return bool(extra.get("hf_family") or extra.get("hf_repo"))


def _model_types(card: Any) -> tuple[str, ...]:
    """The ``model_type`` values the card's adapter accepts (its class's, else its hf_family)."""
    extra = getattr(card, "extra", None) or {}
    spec = str(extra.get("adapter", ""))
    types: tuple[str, ...] = ()
    if ":" in spec:
        module, _, cls = spec.partition(":")
        try:
            types = tuple(getattr(getattr(importlib.import_module(module), cls), "model_types", ()) or ())
        except (ImportError, AttributeError):
            types = ()
    return types or (str(extra.get("hf_family", "")),)


def folder_problem(folder: Path, card: Any) -> str | None:
    """Why ``folder`` cannot be ``card``'s weights (one sentence), or None when it can."""
    from segviewer.adapters.hf_loading import check_checkpoint_dir

    folder = Path(folder)
    if not folder.is_dir():
        return f"{folder} is not a folder; {card.id} loads a folder in save_pretrained layout"
    try:
        check_checkpoint_dir(folder, _model_types(card), card.id)
    except SegviewerError as err:
        return str(err)
    return None


def choose_weights(parent: QWidget, card: Any, start: str, on_error: Callable[[str], None]) -> Path | None:
    """Ask for ``card``'s weights: a folder for a transformers family (checked, see
    :func:`folder_problem`; a refusal goes to ``on_error``), else a checkpoint file."""
    model_id = getattr(card, "id", str(card))
    if wants_folder(card):
        path = QFileDialog.getExistingDirectory(
            parent, f"Weights folder for {model_id} (save_pretrained layout: config.json + model.safetensors)", start)
        if not path:
            return None
        problem = folder_problem(Path(path), card)
        if problem:
            on_error(problem)
            return None
        return Path(path)
    path, _ = QFileDialog.getOpenFileName(parent, f"Weights for {model_id}", start, FILE_FILTER)
    return Path(path) if path else None
