"""Which network a checkpoint names, and how to rebuild it: the one table adapters and the trainer share.

A checkpoint stores ``model`` (a kind: "maskrcnn", "fcn", ...), its ``categories`` and a full
``config``; :func:`build` turns those three back into the ``nn.Module`` it was trained as. This
lives with the adapters because loading a model must not need the trainer; the trainer imports it
(never the reverse). A new family adds one :class:`Family` line to :data:`FAMILIES`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

#: Normalisation of our own nets' input (torchvision's R-CNN normalises inside the model).
MEAN, STD = 0.5, 0.25


def to_tensor(images: list[np.ndarray]) -> torch.Tensor:
    """HWC uint8 images -> one normalised NCHW float batch (our nets' input)."""
    x = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float()
    return (x / 255.0 - MEAN) / STD


def _tuples(cfg: dict[str, Any], keys: tuple[str, ...] | None = None) -> dict[str, Any]:
    """JSON-ish lists back to the tuples the constructors take (``keys``: only these options)."""
    return {k: tuple(v) if isinstance(v, list) else v for k, v in cfg.items() if keys is None or k in keys}


def _maskrcnn(categories: list[str], cfg: dict[str, Any]) -> nn.Module:
    from segviewer.adapters.nets.maskrcnn import build_maskrcnn

    return build_maskrcnn({**cfg, "num_classes": len(categories)})


def _fcn(categories: list[str], cfg: dict[str, Any]) -> nn.Module:
    from segviewer.adapters.nets.fcn import FCN

    return FCN(len(categories), **_tuples(cfg))


def _unet(categories: list[str], cfg: dict[str, Any]) -> nn.Module:
    from segviewer.adapters.nets.unet import UNet

    return UNet(len(categories), **_tuples(cfg))


def _pcv(categories: list[str], cfg: dict[str, Any]) -> nn.Module:
    from segviewer.adapters.nets.pcv import PCVNet
    from segviewer.analysis.voting import NUM_VOTE_CLASSES

    return PCVNet(len(categories), NUM_VOTE_CLASSES, **_tuples(cfg, ("widths", "vote_stride")))


def _maskrcnn_base() -> dict[str, Any]:
    from segviewer.adapters.nets import maskrcnn

    return {k: v for k, v in maskrcnn.DEFAULT_CONFIG.items() if k != "num_classes"}


def _fcn_base() -> dict[str, Any]:
    from segviewer.adapters.nets import fcn

    return {"widths": list(fcn.DEFAULT_WIDTHS), "depths": list(fcn.DEFAULT_DEPTHS), "fc_width": fcn.DEFAULT_FC_WIDTH}


def _unet_base() -> dict[str, Any]:
    from segviewer.adapters.nets import unet

    return {"widths": list(unet.DEFAULT_WIDTHS)}


def _centernet(categories: list[str], cfg: dict[str, Any]) -> nn.Module:
    from segviewer.adapters.nets.centernet import build_centernet

    return build_centernet({**cfg, "num_classes": len(categories) - 1})  # no background channel


def _centernet_base() -> dict[str, Any]:
    from segviewer.adapters.nets import centernet

    return dict(centernet.DEFAULT_CONFIG)


def _yolo(categories: list[str], cfg: dict[str, Any]) -> nn.Module:
    from segviewer.adapters.nets.yolo import build_yolo

    return build_yolo(len(categories) - 1, cfg)  # C = the things, no background class


def _yolo_base() -> dict[str, Any]:
    from segviewer.adapters.nets import yolo

    return {k: [list(p) for p in v] if k == "priors" else v for k, v in yolo.DEFAULT_CONFIG.items()}


def _yolact(categories: list[str], cfg: dict[str, Any]) -> nn.Module:
    from segviewer.adapters.nets.yolact import build_yolact

    return build_yolact(len(categories) - 1, cfg)


def _yolact_base() -> dict[str, Any]:
    from segviewer.adapters.nets import yolact

    return {k: [list(p) for p in v] if k == "priors" else v for k, v in yolact.DEFAULT_CONFIG.items()}


@dataclass(frozen=True)
class Family:
    """One kind of network we train: its constructor and its architecture defaults.

    ``base`` gives the constructor's own defaults (read from the net's module, so a checkpoint
    written today spells every option out); ``extra`` adds options that are not the
    constructor's (e.g. how targets were made) but belong with the weights."""

    build: Callable[[list[str], dict[str, Any]], nn.Module]
    base: Callable[[], dict[str, Any]] = dict
    extra: dict[str, Any] = field(default_factory=dict)


FAMILIES: dict[str, Family] = {
    "maskrcnn": Family(_maskrcnn, _maskrcnn_base),
    "fcn": Family(_fcn, _fcn_base),
    "unet": Family(_unet, _unet_base),
    "pcv": Family(_pcv, _unet_base, {"vote_stride": 4, "cell_size": 4.0}),
    "centernet": Family(_centernet, _centernet_base, {"size_weight": 1.0, "offset_weight": 1.0, "min_overlap": 0.7}),
    "yolo": Family(_yolo, _yolo_base),
    "yolact": Family(_yolact, _yolact_base),
}


def family(model: str) -> Family:
    try:
        return FAMILIES[model]
    except KeyError:
        raise ValueError(f"unknown model kind {model!r}; known: {', '.join(FAMILIES)}") from None


def full_config(model: str, config: dict[str, Any] | None = None) -> dict[str, Any]:
    """Every architecture option spelled out (defaults filled in), so a checkpoint rebuilds the
    exact net it was trained as even after the defaults change."""
    fam = family(model)
    return {**fam.base(), **fam.extra, **(config or {})}


def build(model: str, categories: list[str], config: dict[str, Any] | None = None) -> nn.Module:
    """The untrained network of kind ``model`` for ``categories`` (``config`` filled in first)."""
    return family(model).build(list(categories), full_config(model, config))
