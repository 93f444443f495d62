"""Mask2Former and OneFormer: one tiny checkpoint gives a panoptic map, instances or a semantic map
with the config's classes (through the processor's own post-processing), a reload gives the same,
and the panoptic merge is traced query by query from the same pass."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from segviewer.adapters.base import PredictParams
from segviewer.adapters.hf_universal import HFUniversalSegmenter
from segviewer.adapters.registry import create_adapter
from segviewer.analysis.queries import DROPPED_OVERLAP, KEPT, NO_OBJECT
from segviewer.core.errors import SegviewerError
from segviewer.core.results import Detections, PanopticMap, SemanticMap
from tests.adapters import hf_tiny

IDS = {"mask2former": "mask2former_swin_tiny_coco_panoptic", "oneformer": "oneformer_swin_tiny_ade20k"}


@pytest.fixture(autouse=True)
def _hf_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("hf_universal")
    return {fam: hf_tiny.BUILDERS[fam](root / fam) for fam in IDS}


def _adapter(fam: str, folder: Path) -> HFUniversalSegmenter:
    ad = create_adapter(IDS[fam])
    ad.load("cpu", folder)
    assert isinstance(ad, HFUniversalSegmenter)
    return ad


def _params(task: str, **kw: float) -> PredictParams:
    return PredictParams(min_score=kw.pop("min_score", 0.0), extra=(("task", task), *kw.items()))


@pytest.mark.parametrize("fam", list(IDS))
def test_panoptic_map_is_the_processors_and_reloads_the_same(fam: str, folders: dict[str, Path],
                                                             image: np.ndarray) -> None:
    ad = _adapter(fam, folders[fam])
    assert ad.card.categories == hf_tiny.CATS and ad.card.task == "panoptic"
    pan = ad.predict(image)
    assert isinstance(pan, PanopticMap) and pan.categories == hf_tiny.CATS
    assert pan.segment_ids.shape == image.shape[:2] and len(pan.segments) >= 1
    for s in pan.segments:
        assert s.area == int((pan.segment_ids == s.id).sum()) > 0
    # the processor itself, run by hand on the same outputs, gives the same map
    kw = {"task_inputs": ["panoptic"]} if fam == "oneformer" else {}
    import torch

    with torch.no_grad():
        out = ad.module(**ad.processor(images=image, return_tensors="pt", input_data_format="channels_last", **kw))
    ref = ad.processor.post_process_panoptic_segmentation(out, threshold=0.5, label_ids_to_fuse=set(),
                                                          target_sizes=[image.shape[:2]])[0]
    np.testing.assert_array_equal(pan.segment_ids, ref["segmentation"].numpy().clip(0))
    again = _adapter(fam, folders[fam]).predict(image)
    np.testing.assert_array_equal(again.segment_ids, pan.segment_ids)
    assert [(s.id, s.category_id) for s in again.segments] == [(s.id, s.category_id) for s in pan.segments]


@pytest.mark.parametrize("fam", list(IDS))
def test_instance_and_semantic_tasks_from_the_same_checkpoint(fam: str, folders: dict[str, Path],
                                                              image: np.ndarray) -> None:
    ad = _adapter(fam, folders[fam])
    det = ad.predict(image, _params("instance"))
    assert isinstance(det, Detections) and det.masks is not None and det.categories == hf_tiny.CATS
    assert len(det) >= 1 and np.all(np.diff(det.scores) <= 0)
    for i in range(len(det)):
        ys, xs = np.nonzero(det.masks.full(i))
        if len(ys):
            assert (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1) == tuple(int(v) for v in det.boxes[i])
    sem = ad.predict(image, _params("semantic"))
    assert isinstance(sem, SemanticMap) and sem.labels.shape == image.shape[:2] and sem.probs is not None
    np.testing.assert_allclose(sem.probs.sum(0), 1.0, atol=1e-4)
    assert ad.predict(image, PredictParams(extra=(("task", "semantic"),), extras=False)).probs is None
    with pytest.raises(SegviewerError, match=r"got task 'depth'"):
        ad.predict(image, _params("depth"))
    # the query behind each instance: its class probability reaches the instance's score and its
    # mask is the instance's (Mask2Former's instance masks are the query masks, thresholded)
    det2, it = ad.predict_queries(image, _params("instance"))
    np.testing.assert_array_equal(det2.scores, det.scores)
    assert len(it.selected) == len(det)
    probs = np.array([it.distribution(int(q)) for q in it.selected])
    assert np.all(probs[np.arange(len(det)), det.class_ids] >= det.scores - 1e-4)
    for i, q in enumerate(it.selected):
        full = det.masks.full(i)
        if full.any() and fam == "mask2former":
            mine = it.mask_probs(int(q)) > 0.5
            assert (mine & full).sum() / (mine | full).sum() > 0.8


@pytest.mark.parametrize("fam", list(IDS))
def test_queries_trace_the_panoptic_merge(fam: str, folders: dict[str, Path], image: np.ndarray) -> None:
    ad = _adapter(fam, folders[fam])
    pan, it = ad.predict_queries(image)
    assert isinstance(pan, PanopticMap)
    np.testing.assert_array_equal(pan.segment_ids, ad.predict(image).segment_ids)
    assert it.no_object and it.class_logits.shape == (8, len(hf_tiny.CATS) + 1)
    assert it.mask_logits is not None and it.mask_logits.shape[0] == 8
    merge = it.merge
    assert merge is not None and len(it.selected) == len(pan.segments)
    labels, scores = it.scores()
    for s, q in zip(pan.segments, it.selected):
        assert merge.segment_id[q] == s.id and merge.fate[q] == KEPT and labels[q] == s.category_id
    assert np.all((merge.fate == NO_OBJECT) == it.is_no_object())
    assert np.all(scores[merge.fate == KEPT] > 0.5)
    assert set(np.unique(merge.segment_id[merge.fate == KEPT])) == {s.id for s in pan.segments}
    assert np.all(merge.segment_id[merge.fate != KEPT] == 0)
    assert merge.describe(int(it.selected[0])).startswith("kept (segment")
    dropped = np.flatnonzero(merge.fate == DROPPED_OVERLAP)
    if len(dropped):
        assert merge.describe(int(dropped[0])) == "lost to overlapping queries"
    assert it.attention is not None and it.attention.shape[:2] == (8, 2)  # (queries, heads, fh, fw)
    amap = it.attention_map(0)
    assert amap.shape == image.shape[:2] and abs(float(amap.sum()) - 1.0) < 1e-4
    assert it.mask_probs(0).shape == image.shape[:2]


def test_padded_mask_logits_are_cropped_before_resizing() -> None:
    import torch

    out = SimpleNamespace(masks_queries_logits=torch.zeros(1, 3, 16, 32))
    mask = torch.zeros(1, 64, 128, dtype=torch.long)
    mask[:, :40, :100] = 1  # the image covers the top-left 40 x 100 of the padded 64 x 128 input
    size = HFUniversalSegmenter._crop_padding(out, {"pixel_values": torch.zeros(1, 3, 64, 128), "pixel_mask": mask})
    assert size == (40, 100) and tuple(out.masks_queries_logits.shape) == (1, 3, 10, 25)


def test_oneformer_thing_classes_from_its_class_info_file(folders: dict[str, Path], tmp_path: Path) -> None:
    folder = Path(shutil.copytree(folders["oneformer"], tmp_path / "oneformer"))
    info = {str(i): {"name": n, "isthing": int(n in ("cat", "dog"))} for i, n in enumerate(hf_tiny.CATS)}
    (tmp_path / "meta").mkdir()
    (tmp_path / "meta" / "tiny_panoptic.json").write_text(json.dumps(info))
    proc = json.loads((folder / "processor_config.json").read_text())
    proc["image_processor"].update(class_info_file="tiny_panoptic.json", repo_path=str(tmp_path / "meta"))
    (folder / "processor_config.json").write_text(json.dumps(proc))
    ad = _adapter("oneformer", folder)
    assert ad.card.isthing == (True, True, False, False)
    # the same file named on the hub, offline and not cached: loads, thing classes unknown, no network
    proc["image_processor"].update(repo_path="shi-labs/oneformer_demo")
    (folder / "processor_config.json").write_text(json.dumps(proc))
    ad = _adapter("oneformer", folder)
    assert ad.card.isthing == ()
    assert isinstance(ad.predict(np.zeros((40, 50, 3), np.uint8), _params("instance")), Detections)


def test_predict_command_picks_the_task_with_set(folders: dict[str, Path], image: np.ndarray, tmp_path: Path) -> None:
    """``segviewer predict --set task=semantic`` (or instance) runs that task of a panoptic
    checkpoint from the command line and writes that task's files."""
    import cv2

    from segviewer.cli import main
    from segviewer.core.coco_results import decode_segmentation

    path = tmp_path / "one.png"
    cv2.imwrite(str(path), image[..., ::-1])
    base = ["predict", "--model", IDS["mask2former"], "--weights", str(folders["mask2former"]), "--no-gt",
            "--score-thresh", "0", str(path)]
    assert main([*base, "--out", str(tmp_path / "sem"), "--set", "task=semantic"]) == 0
    labels = cv2.imread(str(tmp_path / "sem" / "one_labels.png"), cv2.IMREAD_UNCHANGED)
    want = _adapter("mask2former", folders["mask2former"]).predict(image, _params("semantic"))
    np.testing.assert_array_equal(labels, want.labels)
    assert main([*base, "--out", str(tmp_path / "inst"), "--set", "task=instance"]) == 0
    recs = json.loads((tmp_path / "inst" / "results.json").read_text())
    det = _adapter("mask2former", folders["mask2former"]).predict(image, _params("instance"))
    assert len(recs) == len(det) >= 1
    np.testing.assert_array_equal(decode_segmentation(recs[0]["segmentation"], image.shape[:2]), det.masks.full(0))
