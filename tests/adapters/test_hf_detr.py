"""DETR, RT-DETR and RT-DETRv2: tiny random checkpoints map to Detections with the config's classes, a reloaded
folder gives the same result, and every query's prediction and attention come from the same pass."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from segviewer.adapters.base import PredictParams
from segviewer.adapters.registry import create_adapter
from segviewer.analysis.queries import class_distribution
from segviewer.core.results import Detections
from tests.adapters import hf_tiny

IDS = {"detr": "detr_resnet50", "rt_detr": "rtdetr_r50vd", "rt_detr_v2": "rtdetr_v2_r50vd"}
CATS = {"detr": hf_tiny.DETR_CATS, "rt_detr": hf_tiny.CATS, "rt_detr_v2": hf_tiny.CATS}


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("hf_detr")
    out = {fam: hf_tiny.BUILDERS[fam](root / fam) for fam in IDS}
    out["detr_other"] = hf_tiny.detr(root / "detr_other", seed=1)
    return out


def _adapter(fam: str, folder: Path):  # noqa: ANN202
    ad = create_adapter(IDS[fam])
    ad.load("cpu", folder)
    return ad


@pytest.mark.parametrize("fam", list(IDS))
def test_detections_with_the_configs_classes_and_a_reload_gives_the_same(fam: str, folders: dict[str, Path],
                                                                        image: np.ndarray) -> None:
    ad = _adapter(fam, folders[fam])
    assert ad.card.categories == CATS[fam]
    det = ad.predict(image, PredictParams(min_score=0.0))
    assert isinstance(det, Detections) and len(det) > 0 and det.categories == CATS[fam]
    h, w = image.shape[:2]
    assert det.boxes[:, [0, 2]].min() >= 0 and det.boxes[:, [0, 2]].max() <= w
    assert det.boxes[:, [1, 3]].min() >= 0 and det.boxes[:, [1, 3]].max() <= h
    assert np.all(np.diff(det.scores) <= 0)  # best first
    again = _adapter(fam, folders[fam]).predict(image, PredictParams(min_score=0.0))
    np.testing.assert_array_equal(again.boxes, det.boxes)
    np.testing.assert_array_equal(again.class_ids, det.class_ids)
    cut = float(np.median(det.scores))
    above = ad.predict(image, PredictParams(min_score=cut))
    assert len(above) == int((det.scores > cut).sum())
    assert len(ad.predict(image, PredictParams(min_score=0.0, max_detections=2))) == 2


def test_other_weights_give_other_detections(folders: dict[str, Path], image: np.ndarray) -> None:
    a = _adapter("detr", folders["detr"]).predict(image, PredictParams(min_score=0.0))
    b = _adapter("detr", folders["detr_other"]).predict(image, PredictParams(min_score=0.0))
    assert not np.array_equal(a.scores, b.scores)


def test_detr_queries_explain_each_detection(folders: dict[str, Path], image: np.ndarray) -> None:
    import torch

    ad = _adapter("detr", folders["detr"])
    params = PredictParams(min_score=0.0)
    det, it = ad.predict_queries(image, params)
    plain = ad.predict(image, params)
    np.testing.assert_array_equal(det.boxes, plain.boxes)  # the captured pass is the same prediction
    assert it.num_queries == 12 and it.no_object and it.class_names()[-1] == "no object"
    assert it.class_logits.shape == (12, len(hf_tiny.DETR_CATS) + 1)
    labels, scores = it.scores()
    q = it.selected
    assert len(q) == len(det)
    np.testing.assert_allclose(scores[q], det.scores, rtol=1e-5)
    np.testing.assert_array_equal(labels[q], det.class_ids)
    b = it.boxes[q].copy()
    h, w = image.shape[:2]
    b[:, 0::2] = b[:, 0::2].clip(0, w)
    b[:, 1::2] = b[:, 1::2].clip(0, h)
    np.testing.assert_allclose(b, det.boxes, atol=1e-3)
    np.testing.assert_allclose(it.distribution(int(q[0])).sum(), 1.0, atol=1e-6)
    # the attention is the model's own last-layer cross-attention (an independent eager run)
    inputs = ad.processor(images=image, return_tensors="pt", input_data_format="channels_last")
    ad.module.config._attn_implementation = "eager"
    try:
        with torch.no_grad():
            ref = ad.module(**inputs, output_attentions=True).cross_attentions[-1][0]  # (heads, Q, HW)
    finally:
        ad.module.config._attn_implementation = "sdpa"
    nq, heads, fh, fw = it.attention.shape
    assert (nq, heads) == (12, 2) and fh * fw == ref.shape[-1]  # not padded: the map covers the image
    got = it.attention.astype(np.float32).transpose(1, 0, 2, 3).reshape(heads, nq, fh * fw)
    np.testing.assert_allclose(got, ref.numpy(), atol=2e-3)  # float16 storage
    amap = it.attention_map(int(q[0]))
    assert amap.shape == image.shape[:2] and abs(float(amap.sum()) - 1.0) < 1e-4
    assert it.attention_map(int(q[0]), head=1).shape == image.shape[:2]


def test_rt_detr_queries_carry_deformable_sampling(folders: dict[str, Path], image: np.ndarray) -> None:
    ad = _adapter("rt_detr", folders["rt_detr"])
    det, it = ad.predict_queries(image, PredictParams(min_score=0.0))
    assert not it.no_object and it.class_names() == hf_tiny.CATS
    probs = class_distribution(it.class_logits, no_object=False)
    np.testing.assert_allclose(probs[it.selected, det.class_ids], det.scores, rtol=1e-5)
    s = it.sampling
    assert s is not None and it.attention is None
    nq, heads, levels, points, _ = s.locations.shape
    assert nq == 10 and len(s.level_shapes) == levels == 3
    np.testing.assert_allclose(s.weights.reshape(nq, heads, -1).sum(-1), 1.0, atol=1e-5)
    amap = it.attention_map(int(it.selected[0]))
    assert amap.shape == image.shape[:2] and abs(float(amap.sum()) - 1.0) < 1e-4


def test_rt_detr_v2_sampling_is_what_its_last_layer_read(folders: dict[str, Path], image: np.ndarray) -> None:
    """The captured points and weights, fed to transformers' own RT-DETRv2 sampling with the layer's
    values, give the layer's output of the same pass."""
    import torch
    from transformers.models.rt_detr_v2.modeling_rt_detr_v2 import multi_scale_deformable_attention_v2

    ad = _adapter("rt_detr_v2", folders["rt_detr_v2"])
    attn = ad.module.model.decoder.layers[-1].encoder_attn
    seen: dict[str, torch.Tensor] = {}

    def keep(_mod: object, _args: tuple, kwargs: dict, out: tuple) -> None:
        seen["memory"], seen["out"] = kwargs["encoder_hidden_states"], out[0]

    handle = attn.register_forward_hook(keep, with_kwargs=True)
    try:
        det, it = ad.predict_queries(image, PredictParams(min_score=0.0))
    finally:
        handle.remove()
    assert it.family == "rt_detr_v2" and not it.no_object and it.attention is None
    s = it.sampling
    assert s is not None and len(s.level_shapes) == 3
    nq, heads, levels, points, _ = s.locations.shape
    assert (nq, heads, levels, points) == (10, 2, 3, 4)
    np.testing.assert_allclose(s.weights.reshape(nq, heads, -1).sum(-1), 1.0, atol=1e-5)
    probs = class_distribution(it.class_logits, no_object=False)
    np.testing.assert_allclose(probs[it.selected, det.class_ids], det.scores, rtol=1e-5)
    with torch.no_grad():
        mem = seen["memory"]
        value = attn.value_proj(mem).view(1, mem.shape[1], heads, -1)
        loc = torch.from_numpy(s.locations).reshape(1, nq, heads, levels * points, 2)
        wt = torch.from_numpy(s.weights).reshape(1, nq, heads, levels * points)
        out = attn.output_proj(multi_scale_deformable_attention_v2(
            value, list(s.level_shapes), loc, wt, attn.n_points_list, attn.method))
    np.testing.assert_allclose(out.numpy(), seen["out"].numpy(), atol=1e-4)
    amap = it.attention_map(int(it.selected[0]))
    assert amap.shape == image.shape[:2] and abs(float(amap.sum()) - 1.0) < 1e-4


@pytest.mark.slow  # timm's import and a ResNet-18 build: about 6 s
def test_hub_style_detr_with_a_timm_backbone_loads_offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                           image: np.ndarray) -> None:
    """facebook/detr-resnet-50's config names timm's ResNet (``use_timm_backbone``) and asks for
    ImageNet weights (``use_pretrained_backbone``); loading it must fetch nothing."""
    import json

    pytest.importorskip("timm")
    transformers = hf_tiny.transformers
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    cfg = transformers.DetrConfig(use_timm_backbone=True, backbone="resnet18", d_model=32, encoder_layers=1,
                                  decoder_layers=1, encoder_attention_heads=2, decoder_attention_heads=2,
                                  encoder_ffn_dim=32, decoder_ffn_dim=32, num_queries=5,
                                  id2label={0: "N/A", 1: "person"}, label2id={"N/A": 0, "person": 1})
    folder = tmp_path / "detr_timm"
    transformers.DetrForObjectDetection(cfg).save_pretrained(folder)
    transformers.DetrImageProcessor(size={"shortest_edge": 64, "longest_edge": 96}).save_pretrained(folder)
    data = json.loads((folder / "config.json").read_text())
    data.pop("backbone_config")  # the hub's (older) layout
    data.update(use_timm_backbone=True, backbone="resnet18", use_pretrained_backbone=True, dilation=False)
    (folder / "config.json").write_text(json.dumps(data))
    ad = create_adapter("detr_resnet50")
    ad.load("cpu", folder)
    assert ad.card.categories == ("N/A", "person")
    assert len(ad.predict(image, PredictParams(min_score=0.0))) == 5
