"""SAM 2: point and box prompts give three candidate masks with predicted IoUs (the image embedding
cached between clicks), "segment everything" gives Detections, and prompted objects are tracked
through frames with their ids -- all on tiny random checkpoints."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from segviewer.adapters.base import PredictParams
from segviewer.adapters.hf_sam2 import HFSam2, ObjectPrompt
from segviewer.adapters.registry import create_adapter
from segviewer.core.coco_results import decode_segmentation, detections_to_coco
from segviewer.core.errors import CheckpointMismatchError, SegviewerError
from segviewer.core.results import Detections
from tests.adapters import hf_tiny


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("hf_sam2")
    return {"image": hf_tiny.sam2(root / "sam2"), "video": hf_tiny.sam2_video(root / "sam2_video")}


def _adapter(folder: Path) -> HFSam2:
    ad = create_adapter("sam2_hiera_tiny")
    ad.load("cpu", folder)
    assert isinstance(ad, HFSam2)
    return ad


def test_point_prompt_gives_three_candidates_like_transformers_itself(folders: dict[str, Path],
                                                                      image: np.ndarray) -> None:
    import torch

    ad = _adapter(folders["image"])
    assert ad.card.categories == ("object",)
    pts = [(40.0, 30.0, True), (100.0, 70.0, False)]
    pm = ad.prompt(image, points=pts)
    assert len(pm.masks) == 3 and pm.ious.shape == (3,) and pm.masks.image_size == image.shape[:2]
    assert 0 <= pm.best < 3 and pm.ious[pm.best] == pm.ious.max()
    assert pm.low_res_logits.shape[0] == 3
    # the same prompt through transformers' own processor and model
    enc = ad.processor(images=image, input_points=[[[[40.0, 30.0], [100.0, 70.0]]]], input_labels=[[[1, 0]]],
                       return_tensors="pt", input_data_format="channels_last")
    with torch.no_grad():
        out = ad.module(pixel_values=enc["pixel_values"], input_points=enc["input_points"],
                        input_labels=enc["input_labels"], multimask_output=True)
    ref = ad.processor.post_process_masks(out.pred_masks, enc["original_sizes"])[0][0].numpy()
    np.testing.assert_array_equal(pm.masks.to_full(), ref)
    np.testing.assert_allclose(pm.ious, out.iou_scores[0, 0].numpy(), atol=1e-5)
    det = pm.detections()
    assert isinstance(det, Detections) and len(det) == 1 and det.names == ("object",)


def test_embedding_is_cached_between_clicks_on_one_image(folders: dict[str, Path], image: np.ndarray) -> None:
    ad = _adapter(folders["image"])
    calls = []
    handle = ad.module.vision_encoder.register_forward_hook(lambda *a: calls.append(1))
    try:
        a = ad.prompt(image, points=[(40.0, 30.0, True)])
        b = ad.prompt(image, box=(10, 10, 90, 60))
        a2 = ad.prompt(image, points=[(40.0, 30.0, True)], multimask=False)
        assert len(calls) == 1 and len(a2.masks) == 1
        assert not np.array_equal(a.masks.to_full(), b.masks.to_full())
        ad.prompt(image[::-1].copy(), points=[(40.0, 30.0, True)])
        assert len(calls) == 2  # another image: a new embedding
    finally:
        handle.remove()
    with pytest.raises(SegviewerError, match=r"at least one point or a box"):
        ad.prompt(image)
    with pytest.raises(SegviewerError, match=r"x1 > x0"):
        ad.prompt(image, box=(50, 10, 20, 40))


def test_segment_everything_gives_object_detections(folders: dict[str, Path], image: np.ndarray) -> None:
    ad = _adapter(folders["image"])
    loose = PredictParams(min_score=0.0, extra=(("pred_iou_thresh", 0.0), ("stability_thresh", 0.0),
                                                ("points_per_side", 4)))
    det = ad.predict(image, loose)
    assert isinstance(det, Detections) and det.masks is not None and len(det) >= 1
    assert set(det.names) == {"object"} and np.all(np.diff(det.scores) <= 0)
    strict = ad.predict(image, PredictParams(extra=(("points_per_side", 4), ("pred_iou_thresh", 0.99))))
    assert len(strict) == 0 and strict.masks is not None


def test_tracking_follows_prompted_objects_with_their_ids(folders: dict[str, Path]) -> None:
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 255, (48, 80, 3), dtype=np.uint8) for _ in range(4)]
    ad = _adapter(folders["video"])
    prompts = [ObjectPrompt(3, 1, points=((20.0, 30.0, True),)), ObjectPrompt(9, 1, box=(40.0, 5.0, 70.0, 30.0)),
               ObjectPrompt(12, 2, points=((60.0, 40.0, True),))]
    seen = list(ad.track(iter(frames), prompts))
    assert [i for i, _ in seen] == [1, 2, 3]  # from the first prompted frame on
    ids = [tuple(d.instance_ids.tolist()) for _, d in seen]
    assert ids == [(3, 9), (3, 9, 12), (3, 9, 12)]
    for idx, det in seen:
        assert det.masks is not None and det.masks.image_size == (48, 80) and set(det.names) == {"object"}
        assert np.all(det.masks.areas() > 0)
        for i, rec in enumerate(detections_to_coco(det, image_id=idx)):  # exportable as COCO RLE
            np.testing.assert_array_equal(decode_segmentation(rec["segmentation"], (48, 80)), det.masks.full(i))
    with pytest.raises(SegviewerError, match=r"at least one prompt"):
        list(ad.track(frames, []))


def test_image_only_checkpoint_refuses_tracking_in_one_sentence(folders: dict[str, Path]) -> None:
    ad = _adapter(folders["image"])
    with pytest.raises(CheckpointMismatchError, match=r"image-only SAM 2 checkpoint .* needs a sam2_video checkpoint"):
        list(ad.track([np.zeros((8, 8, 3), np.uint8)], [ObjectPrompt(1, 0, points=((2.0, 2.0, True),))]))


def test_saved_and_reloaded_folder_gives_the_same_masks(folders: dict[str, Path], image: np.ndarray,
                                                        tmp_path: Path) -> None:
    ad = _adapter(folders["image"])
    pts = [(40.0, 30.0, True)]
    a = ad.prompt(image, points=pts)
    ad.module.save_pretrained(tmp_path / "again")
    ad.processor.save_pretrained(tmp_path / "again")
    b = _adapter(tmp_path / "again").prompt(image, points=pts)
    np.testing.assert_array_equal(b.masks.to_full(), a.masks.to_full())
    np.testing.assert_array_equal(b.ious, a.ious)
    other = _adapter(hf_tiny.sam2(tmp_path / "other", seed=1)).prompt(image, points=pts)
    assert not np.array_equal(other.ious, a.ious)  # the weights are what was read


def test_predict_command_takes_a_prompt_and_writes_its_mask_as_coco_rle(folders: dict[str, Path], image: np.ndarray,
                                                                        tmp_path: Path) -> None:
    """``segviewer predict --set points=... --set box=...``: SAM 2's prompted mask in results.json
    as COCO RLE (not only from the app), scored by its predicted IoU."""
    import json

    import cv2

    from segviewer.cli import main

    path = tmp_path / "one.png"
    cv2.imwrite(str(path), image[..., ::-1])
    out = tmp_path / "out"
    assert main(["predict", "--model", "sam2_hiera_tiny", "--weights", str(folders["image"]), "--no-gt",
                 "--out", str(out), "--score-thresh", "0", "--set", "points=40,30;100,70,-",
                 "--set", "box=10,10,90,60", str(path)]) == 0
    recs = json.loads((out / "results.json").read_text())
    want = _adapter(folders["image"]).prompt(image, points=[(40.0, 30.0, True), (100.0, 70.0, False)],
                                             box=(10, 10, 90, 60))
    assert len(recs) == 1
    np.testing.assert_array_equal(decode_segmentation(recs[0]["segmentation"], image.shape[:2]),
                                  want.masks.full(want.best))
    assert recs[0]["score"] == pytest.approx(float(want.ious.max()), abs=1e-5)
    # all three candidates, best first
    ad = _adapter(folders["image"])
    three = ad.predict(image, PredictParams(min_score=0.0, extra=(("points", [[40, 30, 1]]), ("candidates", "all"))))
    one = ad.prompt(image, points=[(40.0, 30.0, True)])
    assert len(three) == 3 and np.all(np.diff(three.scores) <= 0)
    np.testing.assert_array_equal(three.masks.full(0), one.masks.full(one.best))
    with pytest.raises(SegviewerError, match=r"a SAM box is x0,y0,x1,y1"):
        ad.predict(image, PredictParams(extra=(("box", "1,2,3"),)))
    with pytest.raises(SegviewerError, match=r"label is \+ or -"):
        ad.predict(image, PredictParams(extra=(("points", "4,5,maybe"),)))
