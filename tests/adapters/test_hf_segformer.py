"""SegFormer: a tiny random checkpoint gives the processor's semantic map with the config's classes,
its probabilities and logits, and a reloaded folder gives the same map."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from segviewer.adapters.base import PredictParams
from segviewer.adapters.registry import create_adapter
from segviewer.core.results import SemanticMap
from tests.adapters import hf_tiny


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return hf_tiny.segformer(tmp_path_factory.mktemp("hf_segformer") / "segformer")


def test_semantic_map_with_config_classes_probs_and_reload(folder: Path, image: np.ndarray) -> None:
    import torch

    ad = create_adapter("segformer_b0_ade")
    ad.load("cpu", folder)
    res = ad.predict(image)
    assert isinstance(res, SemanticMap) and res.categories == hf_tiny.CATS
    assert res.labels.shape == image.shape[:2] and len(np.unique(res.labels)) > 1
    assert res.probs is not None and res.logits is not None and res.probs.shape[0] == len(hf_tiny.CATS)
    np.testing.assert_allclose(res.probs.sum(0), 1.0, atol=1e-5)
    with torch.no_grad():
        out = ad.module(**ad.processor(images=image, return_tensors="pt", input_data_format="channels_last"))
    ref = ad.processor.post_process_semantic_segmentation(out, target_sizes=[image.shape[:2]])[0].numpy()
    assert (res.labels == ref).mean() > 0.999  # the same upsampling and argmax, one class at a time
    other = create_adapter("segformer_b0_ade")
    other.load("cpu", folder)
    np.testing.assert_array_equal(other.predict(image, PredictParams(extras=False)).labels, res.labels)
    assert other.predict(image, PredictParams(extras=False)).probs is None
