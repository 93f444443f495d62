"""What every transformers-backed adapter shares: loading (checkpoint folder, HF cache, download or
random init), the card's class names from the checkpoint's config, and running the processor.

A family subclass names its architecture (``model_types``, :meth:`HFAdapter._model_class`), how to
read its processor from a checkpoint folder and how to build the reference architecture for
``--random-init`` (:meth:`HFAdapter._random_config`, :meth:`HFAdapter._default_processor`), and
implements ``predict``. transformers is imported only inside methods.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from segviewer.adapters.base import ModelCard, ProgressCallback, TorchAdapterState
from segviewer.adapters.hf_loading import (
    categories_from_config,
    check_checkpoint_dir,
    load_pretrained,
    quiet_transformers,
    require_transformers,
    resolve_checkpoint,
)
from segviewer.core.errors import ModelError, SegviewerError

__all__ = ["HFAdapter", "coco_panoptic_isthing"]

#: COCO panoptic as Mask2Former / OneFormer / DETR number it: 80 thing classes, then 53 stuff classes.
_COCO_PANOPTIC_CLASSES = 133
_COCO_THINGS = 80


def coco_panoptic_isthing(categories: tuple[str, ...]) -> tuple[bool, ...]:
    """Thing flags for COCO panoptic's 133 contiguous classes (things first), else ``()`` (unknown)."""
    if len(categories) == _COCO_PANOPTIC_CLASSES and categories[0] == "person":
        return tuple(i < _COCO_THINGS for i in range(_COCO_PANOPTIC_CLASSES))
    return ()


class HFAdapter(TorchAdapterState):
    """A Hugging Face transformers model behind the :class:`~segviewer.adapters.base.ModelAdapter` interface.

    ``card.extra``: ``hf_repo`` (the hub repository of the released weights), ``num_labels`` (the
    class count a random-init build gets), ``processor`` (processor settings for a random-init
    build, e.g. its input size). After ``load`` the card's categories are the checkpoint's
    ``config.id2label``.
    """
    params_keys: tuple[str, ...] = ()  # the PredictParams.extra keys it reads (--set checks them)

    model_types: ClassVar[tuple[str, ...]] = ()

    def __init__(self, card: ModelCard) -> None:
        self.card = card
        self._base_card = card
        super().__init__()
        self.processor: Any = None

    # ------------------------------------------------------------------ family hooks

    def _model_class(self) -> Any:
        raise NotImplementedError

    def _load_processor(self, folder: Path, allow_download: bool | None) -> Any:
        raise NotImplementedError

    def _random_config(self) -> Any:
        raise NotImplementedError

    def _default_processor(self) -> Any:
        raise NotImplementedError

    def _isthing(self, categories: tuple[str, ...]) -> tuple[bool, ...]:
        base = self._base_card
        if len(base.isthing) == len(categories):
            return base.isthing
        return coco_panoptic_isthing(categories)

    # ------------------------------------------------------------------ loading

    def load(self, device: str, weights: Path | None = None, progress: ProgressCallback | None = None,
             *, allow_download: bool | None = None) -> None:
        """Build the network on ``device``: from ``weights`` (a save_pretrained folder), else the HF
        cache, else a download; with ``weights_source="none"`` the reference architecture at random."""
        base = self._base_card
        require_transformers(base.id)
        quiet_transformers()
        folder: Path | None = None
        if weights is not None or base.weights_source == "huggingface":
            folder = resolve_checkpoint(base.id, base.extra.get("hf_repo"), user_dir=weights,
                                        allow_download=allow_download, progress=progress)
            check_checkpoint_dir(folder, self.model_types, base.id)
            model = load_pretrained(self._model_class(), folder, base.id)
            processor = self._load_processor(folder, allow_download)
        elif base.weights_source == "none":
            try:
                model = self._model_class()(self._random_config())
            except (ValueError, RuntimeError, TypeError) as err:
                raise ModelError(f"{base.id} could not be built ({err})") from err
            processor = self._default_processor()
        else:
            raise SegviewerError(f"{base.id}: weights source {base.weights_source!r} is not one a transformers model uses")
        model.eval().to(device)
        self.module = model
        self.processor = processor
        self._device = device
        self.weights_path = folder
        cats = categories_from_config(model.config)
        extra = dict(base.extra)
        if folder is not None:
            extra["weights_path"] = str(folder)
        self.card = dataclasses.replace(base, categories=cats, isthing=self._isthing(cats) if base.task == "panoptic" else (),
                                        extra=extra)

    def _require_loaded(self) -> tuple[Any, str]:
        if self.module is None or self._device is None:
            raise SegviewerError(f"{self.card.id} is not loaded yet")
        return self.module, self._device

    def _inputs(self, image: np.ndarray, **kwargs: Any) -> Any:
        """The processor's tensors for one RGB uint8 image, on the model's device."""
        feats = self.processor(images=image, return_tensors="pt", input_data_format="channels_last", **kwargs)
        return feats.to(self._device)

    def _oom(self, err: BaseException, image: np.ndarray) -> ModelError:
        h, w = image.shape[:2]
        return ModelError(f"{self.card.id} ran out of GPU memory on a {w}x{h} image; try --device cpu")
