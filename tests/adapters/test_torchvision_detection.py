"""torchvision detection adapters with random weights on small CPU inputs (never a download)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torchvision.models import get_model

from segviewer.adapters.base import ModelAdapter, PredictParams
from segviewer.adapters.registry import create_adapter, get_card, weight_state
from segviewer.adapters.torchvision_detection import SPECS, TorchvisionDetector, _count_from
from segviewer.core.errors import CheckpointMismatchError, SegviewerError
from segviewer.core.results import Detections
from segviewer.core.timing import Timings

SMALL = PredictParams(min_score=0.0, max_detections=5, extra=(("min_size", 96), ("max_size", 160)))
HEAVY = {"maskrcnn_resnet50_fpn_v2", "fasterrcnn_resnet50_fpn_v2", "keypointrcnn_resnet50_fpn", "retinanet_resnet50_fpn_v2"}


def _random(model_id: str) -> TorchvisionDetector:
    torch.manual_seed(0)
    adapter = create_adapter(model_id, random_init=True)
    assert isinstance(adapter, TorchvisionDetector) and isinstance(adapter, ModelAdapter)
    adapter.load("cpu")
    return adapter


@pytest.mark.parametrize("model_id", [
    pytest.param(m, marks=pytest.mark.slow) if m in HEAVY else m for m in SPECS
])
def test_random_init_gives_well_formed_detections(model_id: str, image: np.ndarray) -> None:
    adapter = _random(model_id)
    assert adapter.loaded and adapter.device == "cpu" and adapter.module is not None
    spec = SPECS[model_id]
    n_cls = _count_from(adapter.module.state_dict(), spec.class_key, spec.anchors_per_location, 0, "x", model_id)
    assert n_cls == len(adapter.card.categories)  # the class-count rule reads this family's tensors right
    tm = Timings()
    det = adapter.predict(image, SMALL, tm)
    assert isinstance(det, Detections) and set(tm) == {"preprocess", "model", "postprocess"}
    assert det.image_size == image.shape[:2] and det.categories == get_card(model_id).categories
    assert 0 < len(det) <= 5
    h, w = image.shape[:2]
    assert np.all(det.boxes >= 0) and np.all(det.boxes[:, 2] <= w) and np.all(det.boxes[:, 3] <= h)
    task = adapter.card.task
    assert (det.masks is not None) == (task == "instance")
    if det.masks is not None:
        assert len(det.masks) == len(det) and det.masks.image_size == (h, w)
        assert all(c.shape[0] <= h and c.shape[1] <= w for c in det.masks.crops)
    assert (det.keypoints is not None) == (task == "keypoint")
    if det.keypoints is not None:
        assert det.keypoints.shape == (len(det), 17, 3) and det.keypoint_names[0] == "nose"
        assert len(det.skeleton) == 19
        # keypoints lie inside their boxes (torchvision decodes them from the RoI's heatmap)
        x, y = det.keypoints[..., 0], det.keypoints[..., 1]
        assert np.all(x >= det.boxes[:, :1] - 1) and np.all(x <= det.boxes[:, 2:3] + 1)
        assert np.all(y >= det.boxes[:, 1:2] - 1) and np.all(y <= det.boxes[:, 3:4] + 1)


def test_mask_rcnn_matches_torchvision_forward(image: np.ndarray) -> None:
    adapter = _random("maskrcnn_resnet50_fpn")
    params = PredictParams(min_score=0.0, max_detections=10, extra=(("min_size", 96),))
    det = adapter.predict(image, params)
    with torch.inference_mode():
        ref = adapter.module([torch.from_numpy(image.copy()).permute(2, 0, 1).float() / 255])[0]
    assert len(det) == len(ref["boxes"]) == 10
    assert np.allclose(det.boxes, ref["boxes"].numpy(), atol=1e-4)
    assert np.array_equal(det.class_ids, ref["labels"].numpy()) and np.allclose(det.scores, ref["scores"].numpy())
    assert np.array_equal(det.masks.to_full(), (ref["masks"][:, 0] > 0.5).numpy())
    assert det.masks.areas().sum() > 0


def test_min_score_and_max_detections_are_applied(image: np.ndarray) -> None:
    adapter = _random("fcos_resnet50_fpn")
    base = dict(SMALL.extra)
    all_dets = adapter.predict(image, PredictParams(min_score=0.0, max_detections=50, extra=tuple(base.items())))
    assert len(all_dets) == 50
    cut = float(np.median(all_dets.scores))
    some = adapter.predict(image, PredictParams(min_score=cut, max_detections=50, extra=tuple(base.items())))
    assert 0 < len(some) < 50 and np.all(some.scores >= cut)
    assert len(adapter.predict(image, PredictParams(min_score=0.0, max_detections=3, extra=tuple(base.items())))) == 3


def _save(tmp_path: Path, name: str, model: torch.nn.Module, wrap: str = "model") -> Path:
    p = tmp_path / name
    torch.save({wrap: model.state_dict(), "epoch": 7}, p)
    return p


def test_user_checkpoint_with_three_classes_and_names(tmp_path: Path, image: np.ndarray) -> None:
    torch.manual_seed(1)
    mine = get_model("fasterrcnn_mobilenet_v3_large_fpn", weights=None, weights_backbone=None, num_classes=3).eval()
    ck = _save(tmp_path, "pets.pth", mine)
    (tmp_path / "pets.json").write_text(json.dumps(["cat", "dog"]))
    adapter = create_adapter("fasterrcnn_mobilenet_v3_large_fpn")  # COCO card, but the user's file wins
    adapter.load("cpu", weights=ck)
    assert adapter.card.categories == ("__background__", "cat", "dog")
    assert adapter.card.weights_file == "pets.pth" and adapter.weights_path == ck
    params = PredictParams(min_score=0.0, max_detections=10, extra=(("min_size", 128),))
    det = adapter.predict(image, params)
    assert det.categories == ("__background__", "cat", "dog") and set(det.names) <= {"cat", "dog"}
    mine.roi_heads.score_thresh, mine.transform.min_size = 0.0, (128,)
    mine.roi_heads.detections_per_img = 10
    with torch.inference_mode():
        ref = mine([torch.from_numpy(image.copy()).permute(2, 0, 1).float() / 255])[0]
    assert np.allclose(det.boxes, ref["boxes"].numpy(), atol=1e-4) and len(det) == len(ref["boxes"]) > 0


def test_user_checkpoint_without_names_gets_numbered_classes(tmp_path: Path) -> None:
    torch.manual_seed(2)
    ck = _save(tmp_path, "ssd4.pt", get_model("ssdlite320_mobilenet_v3_large", weights=None,
                                               weights_backbone=None, num_classes=4), wrap="state_dict")
    adapter = create_adapter("ssdlite320_mobilenet_v3_large")
    adapter.load("cpu", weights=ck)
    assert adapter.card.categories == ("__background__", "class 1", "class 2", "class 3")


def test_keypoint_checkpoint_with_other_keypoints(tmp_path: Path) -> None:
    torch.manual_seed(3)
    ck = _save(tmp_path, "hands.pth", get_model("keypointrcnn_resnet50_fpn", weights=None, weights_backbone=None,
                                                num_classes=2, num_keypoints=5))
    (tmp_path / "hands.toml").write_text('categories = ["hand"]\nkeypoint_names = ["thumb", "index", "middle", "ring", "pinky"]\n')
    adapter = create_adapter("keypointrcnn_resnet50_fpn")
    adapter.load("cpu", weights=ck)
    assert adapter.card.categories == ("__background__", "hand")
    assert adapter.card.keypoint_names == ("thumb", "index", "middle", "ring", "pinky") and adapter.card.skeleton == ()


def test_mismatched_checkpoint_names_the_tensor(tmp_path: Path) -> None:
    torch.manual_seed(4)
    sd = get_model("fasterrcnn_mobilenet_v3_large_fpn", weights=None, weights_backbone=None, num_classes=3).state_dict()
    sd["backbone.fpn.layer_blocks.0.0.weight"] = torch.zeros(256, 256, 1, 1)
    ck = tmp_path / "bad.pth"
    torch.save(sd, ck)
    adapter = create_adapter("fasterrcnn_mobilenet_v3_large_fpn")
    with pytest.raises(CheckpointMismatchError) as info:
        adapter.load("cpu", weights=ck)
    assert str(info.value) == ("bad.pth does not fit fasterrcnn_mobilenet_v3_large_fpn: tensor "
                               "backbone.fpn.layer_blocks.0.0.weight should be (256, 256, 3, 3) but is (256, 256, 1, 1)")
    assert not adapter.loaded
    seg = get_model("lraspp_mobilenet_v3_large", weights=None, weights_backbone=None, num_classes=3).state_dict()
    torch.save(seg, ck)
    with pytest.raises(CheckpointMismatchError, match="roi_heads.box_predictor.cls_score.weight is missing"):
        adapter.load("cpu", weights=ck)


def _official_fasterrcnn_resnet50_fpn() -> torch.nn.Module:
    """The architecture torchvision builds when it loads its released COCO_V1 weights:
    FrozenBatchNorm2d in the backbone, eps overwritten to 0 after loading (public pieces only)."""
    from torchvision.models.detection import FasterRCNN
    from torchvision.models.detection.backbone_utils import resnet_fpn_backbone
    from torchvision.ops import FrozenBatchNorm2d

    backbone = resnet_fpn_backbone(backbone_name="resnet50", weights=None, norm_layer=FrozenBatchNorm2d,
                                   trainable_layers=3)
    model = FasterRCNN(backbone, num_classes=91).eval()
    g = torch.Generator().manual_seed(5)
    for m in model.modules():
        if isinstance(m, FrozenBatchNorm2d):  # statistics where eps matters
            var = torch.rand(m.running_var.shape, generator=g) * 1e-3 + 1e-6
            m.running_var.copy_(var)
            m.weight.copy_(var.sqrt() * (0.5 + torch.rand(var.shape, generator=g)))  # unit-ish gain
            m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.1)
            m.eps = 0.0
    return model


def test_released_weights_from_hub_cache_match_torchvisions_build(hub_checkpoints: Path, image: np.ndarray) -> None:
    """A file named like torchvision's release, in the hub cache, loads without a download, and our
    BatchNorm2d build computes what torchvision's FrozenBatchNorm2d(eps=0) build computes."""
    card = get_card("fasterrcnn_resnet50_fpn")
    torch.manual_seed(5)
    official = _official_fasterrcnn_resnet50_fpn()
    hub_checkpoints.mkdir(parents=True)
    torch.save(official.state_dict(), hub_checkpoints / str(card.weights_file))
    assert weight_state(card) == "cached"
    adapter = create_adapter(card)
    adapter.load("cpu")
    assert adapter.weights_path == hub_checkpoints / str(card.weights_file)
    assert adapter.card.categories == card.categories and adapter.card.extra["weights_path"]
    x = (torch.from_numpy(image.copy()).permute(2, 0, 1).float() / 255)[None]
    with torch.inference_mode():
        ours, ref = adapter.module.backbone(x), official.backbone(x)
        for k in ref:
            assert torch.allclose(ours[k], ref[k], rtol=1e-3, atol=1e-3 * float(ref[k].abs().max())), k
        for m in adapter.module.modules():  # the check is sensitive: the default eps gives other features
            if isinstance(m, torch.nn.BatchNorm2d):
                m.eps = 1e-5
        off = adapter.module.backbone(x)
    assert not all(torch.allclose(off[k], ref[k], rtol=1e-3, atol=1e-3 * float(ref[k].abs().max())) for k in ref)


def test_predict_before_load_and_bad_image_are_clear(image: np.ndarray) -> None:
    adapter = create_adapter("ssdlite320_mobilenet_v3_large", random_init=True)
    with pytest.raises(SegviewerError, match="not loaded"):
        adapter.predict(image)
    adapter.load("cpu")
    with pytest.raises(SegviewerError, match="RGB uint8"):
        adapter.predict(image.astype(np.float32))


@pytest.mark.parametrize("model_id", ["fasterrcnn_mobilenet_v3_large_fpn", "fcos_resnet50_fpn", "maskrcnn_resnet50_fpn"])
def test_big_image_is_preshrunk_and_mapped_back(model_id: str, image: np.ndarray) -> None:
    """An 8x nearest-upsampled image shrinks (area average) back to exactly the small one, so the
    network sees the same input and every output must come back scaled by 8."""
    adapter = _random(model_id)
    params = PredictParams(min_score=0.0, max_detections=5, extra=(("min_size", 96),))
    small = adapter.predict(image, params)
    big_image = np.repeat(np.repeat(image, 8, axis=0), 8, axis=1)
    big = adapter.predict(big_image, params)
    assert big.image_size == (96 * 8, 128 * 8) and len(big) == len(small) == 5
    assert np.allclose(big.boxes, small.boxes * 8, rtol=1e-4, atol=1e-2)
    assert np.allclose(big.scores, small.scores, atol=1e-5)
    if big.masks is not None:
        ratio = big.masks.areas() / np.maximum(small.masks.areas(), 1)
        assert np.all(np.abs(ratio[small.masks.areas() > 50] - 64) < 64 * 0.2)
