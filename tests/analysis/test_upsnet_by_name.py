"""UPSNet's head on two models with different label spaces (classes mapped by name), and on the
bundled shapes models against the sample scenes' ground truth, beside the heuristic."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from segviewer.analysis.evaluation import (
    UNKNOWN,
    MergeParams,
    image_report,
    merge_by_name,
    merge_panoptic,
    upsnet_by_name,
    upsnet_missing,
)
from segviewer.core.errors import SegviewerError
from segviewer.core.results import Detections, MaskSet, SemanticMap

SEM_CATS = ("__background__", "sky", "grass", "circle")
DET_CATS = ("__background__", "circle", "square")


def _scene(square_logit: float = 3.0) -> tuple[Detections, SemanticMap]:
    """40x40: sky on top, grass below, a background strip; a circle at rows/cols 10..20 that the
    semantic head sees; a square (no semantic channel) at 25..35 x 5..15."""
    h = w = 40
    lg = np.full((4, h, w), -5.0, np.float32)
    lg[1, :20] = 5.0  # sky top half
    lg[2, 20:] = 5.0  # grass bottom half
    lg[0, :, 30:] = 8.0  # background: the right strip
    lg[3, 10:20, 10:20] = 6.0  # the semantic head sees the circle
    sem = SemanticMap(np.argmax(lg, 0).astype(np.uint8), SEM_CATS, logits=lg.astype(np.float16))
    boxes = np.array([[10, 10, 20, 20], [5, 25, 15, 35]], np.float32)
    ml = np.full((2, 28, 28), 4.0, np.float32)
    ml[1] = square_logit
    masks = MaskSet.from_full(np.stack([np.pad(np.ones((10, 10), bool), ((10, 20), (10, 20))),
                                        np.pad(np.ones((10, 10), bool), ((25, 5), (5, 25)))]))
    det = Detections((h, w), boxes, [0.9, 0.8], [1, 2], DET_CATS, masks=masks, mask_logits=ml)
    return det, sem


def test_categories_things_stuff_background_and_void() -> None:
    det, sem = _scene()
    pm = upsnet_by_name(det, sem)
    heur = merge_by_name(det, sem, MergeParams(stuff_min_area=1))
    assert pm.categories == heur.categories and pm.isthing == heur.isthing  # interchangeable downstream
    names = {pm.categories[s.category_id]: s for s in pm.segments}
    assert set(names) == {"sky", "grass", "circle"} and UNKNOWN not in pm.categories
    assert "__background__" not in names  # its pixels are void
    assert (pm.segment_ids[:, 30:] == 0).all()
    # a confident instance owns its box (its mask logit plus its class's semantic logit win)
    assert (pm.segment_ids[10:20, 10:20] == names["circle"].id).all()
    # the square has no semantic channel: mask logit 3 + 0 < stuff logit 5, so grass keeps it
    assert (pm.segment_ids[25:35, 5:15] == names["grass"].id).all()
    det2, sem2 = _scene(square_logit=9.0)
    pm2 = upsnet_by_name(det2, sem2)
    sq = [s for s in pm2.segments if pm2.categories[s.category_id] == "square"]
    assert len(sq) == 1 and (pm2.segment_ids[25:35, 5:15] == sq[0].id).all()


def test_thing_pixels_no_instance_claims_become_void() -> None:
    det, sem = _scene()
    lg = sem.logits.astype(np.float32).copy()
    lg[3, :10, :10] = 9.0  # the semantic head sees a circle top-left, where nothing was detected
    sem = SemanticMap(sem.labels, SEM_CATS, logits=lg)
    pm = upsnet_by_name(det, sem)
    assert (pm.segment_ids[:10, :10] == 0).all()


def test_min_score_and_missing_logits() -> None:
    det, sem = _scene()
    pm = upsnet_by_name(det, sem, MergeParams(min_score=0.85))
    assert sum(s.isthing for s in pm.segments) == 1
    plain = Detections(det.image_size, det.boxes, det.scores, det.class_ids, det.categories, masks=det.masks)
    why = upsnet_missing(plain, sem, ("shapes_maskrcnn", "shapes_fcn"))
    assert "shapes_maskrcnn" in why and "mask logits" in why
    assert "semantic" in upsnet_missing(det, SemanticMap(sem.labels, SEM_CATS))
    assert upsnet_missing(det, sem) == ""
    with pytest.raises(SegviewerError, match="mask logits"):
        upsnet_by_name(plain, sem)
    merged, note = merge_panoptic(plain, sem, MergeParams(method="upsnet"))
    assert "heuristic merge was used" in note and merged.categories == pm.categories
    with pytest.raises(SegviewerError, match="heuristic, upsnet"):
        MergeParams(method="softmax")


@pytest.mark.slow
def test_bundled_models_upsnet_pq_close_to_the_heuristic() -> None:
    import torch

    from segviewer.adapters.registry import create_adapter
    from segviewer.core.groundtruth import find_ground_truth
    from segviewer.core.imageio import read_image
    from segviewer.ui.main_window import ASSETS

    torch.set_num_threads(1)
    mr, fcn = create_adapter("shapes_maskrcnn"), create_adapter("shapes_fcn")
    mr.load("cpu")
    fcn.load("cpu")
    pq: dict[str, list[float]] = {"heuristic": [], "upsnet": []}
    for scene in sorted(Path(ASSETS / "scenes").glob("scene_*.png"))[:3]:
        img = read_image(scene)
        gt = find_ground_truth(scene, image_size=img.shape[:2])
        det, sem = mr.predict(img), fcn.predict(img)
        for method in pq:
            ev = image_report(det, sem, gt, MergeParams(method=method), scene.name, want_ap=False)
            assert ev.merge_method == method and not ev.notes
            pq[method].append(ev.metrics["panoptic"]["all"]["pq"])
    h, u = np.mean(pq["heuristic"]), np.mean(pq["upsnet"])
    assert u > 0.85 and abs(u - h) < 0.05, pq


def test_a_background_detection_is_refused_by_name_like_the_heuristic() -> None:
    det, sem = _scene()
    bg = Detections(det.image_size, det.boxes, det.scores, [0, 2], DET_CATS, masks=det.masks,
                    mask_logits=det.mask_logits)
    with pytest.raises(SegviewerError, match="'__background__' is not a thing category") as heur:
        merge_by_name(bg, sem, MergeParams(stuff_min_area=1))
    with pytest.raises(SegviewerError, match="'__background__' is not a thing category") as ups:
        upsnet_by_name(bg, sem)
    assert str(ups.value) == str(heur.value)
