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
from segviewer.core.fileio import OutputError, atomic_path, output_error

FORMAT = "segviewer-checkpoint/1"


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
