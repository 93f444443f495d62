"""torchvision semantic segmentation adapters with random weights on small CPU inputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchvision.transforms.functional as TF
from torchvision.models import get_model

from segviewer.adapters.base import PredictParams
from segviewer.adapters.registry import create_adapter, get_card
from segviewer.adapters.torchvision_segmentation import CLASS_KEYS, TorchvisionSegmenter
from segviewer.core.errors import CheckpointMismatchError
from segviewer.core.results import SemanticMap
from segviewer.core.timing import Timings

SMALL = PredictParams(extra=(("min_size", 96),))


@pytest.mark.parametrize("model_id", list(CLASS_KEYS))
def test_random_init_gives_well_formed_semantic_map(model_id: str, image: np.ndarray) -> None:
    torch.manual_seed(0)
    adapter = create_adapter(model_id, random_init=True)
    assert isinstance(adapter, TorchvisionSegmenter)
    adapter.load("cpu")
    assert getattr(adapter.module, "aux_classifier", None) is None
    tm = Timings()
    sem = adapter.predict(image, SMALL, tm)
    assert isinstance(sem, SemanticMap) and set(tm) == {"preprocess", "model", "postprocess"}
    assert sem.image_size == image.shape[:2] and sem.labels.dtype == np.uint8
    assert sem.categories == get_card(model_id).categories and len(sem.categories) == 21
    assert sem.probs is not None and sem.probs.shape[0] == 21 and max(sem.probs.shape[1:]) <= 512
    assert np.allclose(sem.probs.sum(axis=0), 1.0, atol=1e-4)
    # the labels are the argmax of the probabilities where the two grids coincide (nearest check)
    ph, pw = sem.probs.shape[1:]
    agree = np.mean([int(np.argmax(sem.prob_at(x + 0.5, y + 0.5))) == sem.labels[y, x]
                     for y in range(0, 96, 8) for x in range(0, 128, 8)])
    assert agree > 0.6, (ph, pw, agree)


def test_labels_follow_the_models_own_logits(image: np.ndarray) -> None:
    """Our labels = argmax of the classifier's low-res logits upsampled once, in float64."""
    torch.manual_seed(0)
    adapter = create_adapter("lraspp_mobilenet_v3_large", random_init=True)
    adapter.load("cpu")
    sem = adapter.predict(image, SMALL)
    x = TF.normalize(TF.resize(torch.from_numpy(image.copy()).permute(2, 0, 1).float() / 255, [96], antialias=True),
                     [0.485, 0.456, 0.406], [0.229, 0.224, 0.225])[None]
    with torch.inference_mode():
        full = adapter.module(x)["out"]  # torchvision's own forward (upsampled to the resized input)
        low = adapter.module.classifier(adapter.module.backbone(x))
    ref = F.interpolate(low.double(), size=image.shape[:2], mode="bilinear", align_corners=False)[0].argmax(0)
    assert np.mean(sem.labels == ref.numpy()) > 0.995
    assert np.mean(sem.labels == full[0].argmax(0).numpy()) > 0.9  # same model, one resize fewer


def test_user_checkpoint_with_three_classes_and_toml_names(tmp_path: Path, image: np.ndarray) -> None:
    torch.manual_seed(1)
    mine = get_model("deeplabv3_mobilenet_v3_large", weights=None, weights_backbone=None, num_classes=3, aux_loss=True)
    ck = tmp_path / "flood.pth"
    torch.save({"model": mine.state_dict(), "epoch": 24}, ck)
    (tmp_path / "flood.toml").write_text('categories = ["dry", "water", "building"]\n')
    adapter = create_adapter("deeplabv3_mobilenet_v3_large")
    adapter.load("cpu", weights=ck)
    assert adapter.card.categories == ("dry", "water", "building")
    assert adapter.module.aux_classifier is None  # loaded (the checkpoint has it), then dropped
    sem = adapter.predict(image, SMALL)
    assert sem.categories == ("dry", "water", "building") and int(sem.labels.max()) < 3
    assert sem.probs is not None and sem.probs.shape[0] == 3


def test_user_checkpoint_without_names_and_mismatch(tmp_path: Path) -> None:
    torch.manual_seed(2)
    sd = get_model("lraspp_mobilenet_v3_large", weights=None, weights_backbone=None, num_classes=2).state_dict()
    ck = tmp_path / "binary.pth"
    torch.save(sd, ck)
    adapter = create_adapter("lraspp_mobilenet_v3_large")
    adapter.load("cpu", weights=ck)
    assert adapter.card.categories == ("class 0", "class 1")
    sd["classifier.cbr.0.weight"] = torch.zeros(128, 960, 3, 3)
    torch.save(sd, ck)
    with pytest.raises(CheckpointMismatchError,
                       match=r"binary.pth does not fit lraspp_mobilenet_v3_large: tensor classifier.cbr.0.weight "
                             r"should be \(128, 960, 1, 1\) but is \(128, 960, 3, 3\)"):
        create_adapter("lraspp_mobilenet_v3_large").load("cpu", weights=ck)


def test_big_image_is_preshrunk_to_the_same_network_input(image: np.ndarray) -> None:
    torch.manual_seed(0)
    adapter = create_adapter("lraspp_mobilenet_v3_large", random_init=True)
    adapter.load("cpu")
    small = adapter.predict(image, SMALL)
    big = adapter.predict(np.repeat(np.repeat(image, 8, axis=0), 8, axis=1), SMALL)
    assert big.image_size == (768, 1024) and big.probs is not None and small.probs is not None
    assert np.allclose(big.probs, small.probs, atol=1e-5)  # same input after the area shrink
    centres = big.labels[4::8, 4::8]  # each small pixel's block centre samples the same logits
    assert np.mean(centres == small.labels) > 0.99


def test_min_size_too_small_is_refused(image: np.ndarray) -> None:
    from segviewer.core.errors import SegviewerError

    adapter = create_adapter("lraspp_mobilenet_v3_large", random_init=True)
    adapter.load("cpu")
    with pytest.raises(SegviewerError, match="at least 16"):
        adapter.predict(image, PredictParams(extra=(("min_size", 4),)))
