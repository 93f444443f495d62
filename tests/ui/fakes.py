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
        self.loaded_weights: list[Path | None] = []
        self.started = threading.Event()

    @property
    def loaded(self) -> bool:
        return self._device is not None

    @property
    def device(self) -> str | None:
        return self._device

    def load(self, device: str, weights: Path | None = None) -> None:
        self.loaded_weights.append(weights)
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



DET_CATEGORIES = ("__background__", "blob", "spot")


class FakeDetector(FakeAdapter):
    """Two fixed detections (scores 0.9 and 0.3) with masks: plumbing for filter and export tests."""

    def __init__(self, model_id: str) -> None:
        super().__init__(model_id)
        self.card = ModelCard(model_id, "instance", "fake", DET_CATEGORIES, weights_source="none")

    def predict(self, image: np.ndarray, params: PredictParams | None = None,
                timings: Timings | None = None):
        from segviewer.core.results import Detections, MaskSet

        h, w = image.shape[:2]
        masks = np.zeros((2, h, w), bool)
        masks[0, 10:30, 10:40] = True
        masks[1, 40:60, 50:90] = True
        boxes = np.array([[10, 10, 40, 30], [50, 40, 90, 60]], np.float32)
        return Detections((h, w), boxes, np.array([0.9, 0.3], np.float32), np.array([1, 2], np.int32),
                          DET_CATEGORIES, masks=MaskSet.from_full(masks))


def fake_det_card(model_id: str) -> ModelCard:
    return ModelCard(model_id, "instance", "fake", DET_CATEGORIES, weights_source="none")


class _Crash(FakeAdapter):
    def predict(self, image, params=None, timings=None):
        import os

        os._exit(3)  # a segfaulting extension, as far as the parent can tell


def raising_factory(model_id: str) -> FakeAdapter:
    """Module level, so it pickles into a child process (ProcessHost tests)."""
    return FakeAdapter(model_id, fail=RuntimeError("kaboom"))


def crashing_factory(model_id: str) -> FakeAdapter:
    return _Crash(model_id)


def bright_factory(model_id: str) -> FakeAdapter:
    return FakeAdapter(model_id)


class _Sleeper(FakeAdapter):
    def predict(self, image, params=None, timings=None):
        import time

        time.sleep(120)  # a forward pass far longer than any test waits
        return super().predict(image, params, timings)


def sleeping_factory(model_id: str) -> FakeAdapter:
    """A model whose pass never ends in time (closing the window mid-pass)."""
    return _Sleeper(model_id)
