"""The one small interface every model family implements.

A model is described by a :class:`ModelCard` (plain data, readable without torch) and wrapped by
a :class:`ModelAdapter`: ``load(device, weights=None)`` then ``predict(image) -> result``. The
worker thread and the CLI talk only to this interface; they never touch torch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np

from segviewer.core.results import Result
from segviewer.core.timing import Timings

Task = Literal["detection", "instance", "keypoint", "semantic", "panoptic", "voting"]
WeightState = Literal["bundled", "cached", "needs download", "user file", "random", "missing"]
"""Where a model's weights would come from right now. ``"missing"``: a bundled card whose checkpoint
file is not (yet) in ``models/``; ``"random"``: a card with ``weights_source="none"``."""

ProgressCallback = Callable[[int, int], None]
"""``progress(done_bytes, total_bytes)`` while weights download; ``total_bytes`` is 0 when unknown."""


@dataclass(frozen=True)
class ModelCard:
    """What a person needs to know about a model before loading it (torchvision ``Weights.meta`` alike).

    ``weights_source`` says where weights come from: ``"torchvision"`` (hub cache or download),
    ``"bundled"`` (``checkpoint`` under ``models/``), ``"huggingface"`` (a transformers checkpoint:
    ``--weights DIR``, the HF cache or a download) or ``"none"`` (random init, plumbing only).
    Adapters must honour ``"none"``: ``registry.create_adapter(..., random_init=True)`` passes a copy
    of the card with ``weights_source="none"``, and ``load`` then builds the network without loading
    any weights (unless the caller names a weights file, which always wins).
    ``skeleton`` lists keypoint index pairs to draw as limbs (COCO person for Keypoint R-CNN).
    """

    id: str
    task: Task
    family: str
    categories: tuple[str, ...]
    weights_source: Literal["torchvision", "bundled", "none", "huggingface"] = "torchvision"
    weights_file: str | None = None  # the file name the hub cache or models/ holds
    weights_url: str | None = None
    sha256: str | None = None
    isthing: tuple[bool, ...] = ()
    keypoint_names: tuple[str, ...] = ()
    skeleton: tuple[tuple[int, int], ...] = ()
    input_size: tuple[int, int] | None = None  # (H, W) the model was trained at, if fixed
    file_size_mb: float | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    description: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class PredictParams:
    """Parameters that change a prediction (and so its cache key). Display-only settings
    (score threshold slider, opacities) are *not* here: they filter a cached result.

    ``extras`` (default True): also compute what only the window shows or a later step needs --
    ``SemanticMap.probs`` and ``.logits``, ``Detections.mask_logits``. A
    headless run that writes labels, boxes and masks passes False and skips that work (for the
    bundled FCN it is a softmax and two resamplings of every class map, a fifth of its time per image).
    """

    min_score: float = 0.05
    max_detections: int = 100
    extra: tuple[tuple[str, Any], ...] = ()
    extras: bool = True

    def key(self) -> tuple:
        return (self.min_score, self.max_detections, self.extra, self.extras)


@runtime_checkable
class ModelAdapter(Protocol):
    """Wraps one model; created cheaply, loaded explicitly (loading may take seconds)."""

    card: ModelCard

    @property
    def loaded(self) -> bool: ...

    @property
    def device(self) -> str | None: ...

    def load(self, device: str, weights: Path | None = None,
             progress: ProgressCallback | None = None) -> None:
        """Build the network and load weights on ``device`` ("cpu", "cuda", "cuda:1", "mps").

        ``weights`` is a file the user named; it wins over the hub cache and bundled files.
        ``progress(done_bytes, total_bytes)`` is called while weights download (if they must).
        After a user checkpoint with other classes is loaded, ``card`` is replaced by a copy whose
        ``categories`` are the checkpoint's.
        Raises :class:`~segviewer.core.errors.WeightsUnavailableError` or
        :class:`~segviewer.core.errors.CheckpointMismatchError` with a one-line message.
        """
        ...

    def predict(self, image: np.ndarray, params: PredictParams | None = None,
                timings: Timings | None = None) -> Result:
        """Run on an RGB uint8 ``(H, W, 3)`` image; results are in that image's pixel coordinates.

        Stages ``preprocess``, ``model`` and ``postprocess`` are recorded in ``timings``.
        """
        ...


class TorchAdapterState:
    """What every torch-backed adapter keeps: the module (for hooks), its device and the
    weights file used. ``loaded`` and ``device`` answer the :class:`ModelAdapter` protocol."""

    def __init__(self) -> None:
        self.module: Any = None  # the underlying torch.nn.Module once loaded
        self._device: str | None = None
        self.weights_path: Path | None = None

    @property
    def loaded(self) -> bool:
        return self.module is not None

    @property
    def device(self) -> str | None:
        return self._device
