"""Checkpoint files: one dict saved with ``torch.save``, always written atomically.

``model.pt`` (what ships): ``{"format", "model", "categories", "config", "state_dict" (float16
for floating tensors), "step", "seed", "metrics"}``. ``last.pt`` (what resumes) adds the float32
weights, the optimizer state and the loss log.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from segviewer.adapters.nets.checkpoint import FORMAT, load, load_weights
from segviewer.core.fileio import OutputError, atomic_path, output_error


def half_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Floating tensors to float16 (halves the file); integer buffers (BN counters) untouched."""
    return {k: v.detach().to("cpu", torch.float16) if v.is_floating_point() else v.detach().cpu()
            for k, v in state.items()}


def save(path: Path, payload: dict[str, Any]) -> None:
    """``torch.save`` atomically; a refused write (a full disk) is one :class:`OutputError` line."""
    with atomic_path(path) as tmp:
        try:
            torch.save(payload, tmp)
        except OSError as err:
            raise output_error(path, err) from None
        except RuntimeError as err:  # torch's zip writer reports a failed write (a full disk) as this
            reason = (str(err).strip().splitlines() or ["the write failed"])[0][:160]
            raise OutputError(f"cannot write {path}: {reason}") from None

__all__ = ["FORMAT", "half_state", "load", "load_weights", "save"]
