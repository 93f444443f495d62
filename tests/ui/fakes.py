"""Fake adapters for worker plumbing tests only (never a stand-in for a real model)."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

from segviewer.adapters.base import ModelCard, PredictParams
from segviewer.core.results import SemanticMap
from segviewer.core.timing import Timings

FAKE_CATEGORIES = ("__background__", "bright")


class FakeAdapter:
    """A plumbing stand-in (never used where a real model is the point of the test).

    ``gate``: predict blocks until it is set (to hold the worker busy); ``fail``: predict raises.
    The result marks bright pixels, so it depends on the image.
    """

    def __init__(self, model_id: str, gate: threading.Event | None = None,
                 fail: BaseException | None = None) -> None:
        self.card = ModelCard(model_id, "semantic", "fake", FAKE_CATEGORIES, weights_source="none")
        self._device: str | None = None
        self.gate, self.fail = gate, fail
        self.calls: list[float] = []
        self.started = threading.Event()

    @property
    def loaded(self) -> bool:
        return self._device is not None

    @property
    def device(self) -> str | None:
        return self._device

    def load(self, device: str, weights: Path | None = None) -> None:
        self._device = device

    def predict(self, image: np.ndarray, params: PredictParams | None = None,
                timings: Timings | None = None) -> SemanticMap:
        self.calls.append(float(image.mean()))
        self.started.set()
        if self.gate is not None and not self.gate.wait(30):
            raise TimeoutError("test gate never opened")
        if self.fail is not None:
            raise self.fail
        t = timings if timings is not None else Timings()
        with t.stage("model"):
            labels = (image[..., 0] > 127).astype(np.uint8)
        return SemanticMap(labels, FAKE_CATEGORIES)


def fake_card(model_id: str) -> ModelCard:
    return ModelCard(model_id, "semantic", "fake", FAKE_CATEGORIES, weights_source="none")

