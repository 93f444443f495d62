"""Checkpoint files: one dict saved with ``torch.save``, always written atomically.

``model.pt`` (what ships): ``{"format", "model", "categories", "config", "state_dict" (float16
for floating tensors), "step", "seed", "metrics"}``. ``last.pt`` (what resumes) adds the float32
weights, the optimizer state and the loss log.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from segviewer.core.errors import CheckpointMismatchError, WeightsUnavailableError
from segviewer.core.fileio import atomic_path

FORMAT = "segviewer-checkpoint/1"


def half_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Floating tensors to float16 (halves the file); integer buffers (BN counters) untouched."""
    return {k: v.detach().to("cpu", torch.float16) if v.is_floating_point() else v.detach().cpu()
            for k, v in state.items()}


def save(path: Path, payload: dict[str, Any]) -> None:
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def load(path: Path) -> dict[str, Any]:
    """Read a checkpoint dict; a missing or foreign file is a one-line error."""
    if not Path(path).is_file():
        raise WeightsUnavailableError(f"checkpoint {path} does not exist")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types for corrupt files
        raise CheckpointMismatchError(f"{Path(path).name} is not a readable checkpoint ({type(err).__name__})") from err
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise CheckpointMismatchError(f"{Path(path).name} is not a segviewer checkpoint (no '{FORMAT}' format tag)")
    return ckpt


def load_weights(model: torch.nn.Module, state: dict[str, torch.Tensor], name: str) -> None:
    """Copy ``state`` into ``model`` (casting to its dtypes); the first mismatch is named."""
    own = model.state_dict()
    for k, v in own.items():
        if k not in state:
            raise CheckpointMismatchError(f"{name} lacks tensor {k!r}; it was made for another architecture")
        if tuple(state[k].shape) != tuple(v.shape):
            raise CheckpointMismatchError(f"{name}: tensor {k!r} is {tuple(state[k].shape)}, the model wants "
                                          f"{tuple(v.shape)}")
    extra = sorted(set(state) - set(own))
    if extra:
        raise CheckpointMismatchError(f"{name} has tensor {extra[0]!r} the model does not know")
    model.load_state_dict({k: state[k].to(own[k].dtype) for k in own})
