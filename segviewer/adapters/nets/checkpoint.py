"""Reading our checkpoint files: what an adapter needs to load a bundled or trained model.

The file layout is written by :mod:`segviewer.training.checkpoint`; reading lives here so that
loading a model never imports the trainer.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from segviewer.core.errors import CheckpointMismatchError, WeightsUnavailableError

FORMAT = "segviewer-checkpoint/1"


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
