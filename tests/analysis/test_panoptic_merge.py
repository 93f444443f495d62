"""Panoptic merging: the heuristic and UPSNet's head, each against a dense, plain reference."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from segviewer.analysis.panoptic_merge import heuristic_merge, paste_mask_logits, upsnet_merge
from segviewer.core.errors import SegviewerError
from segviewer.core.results import Detections, MaskSet, SemanticMap

CATS = ("sky", "grass", "road", "circle", "square")
DET_CATS = ("__background__", "circle", "square")


def _random_case(seed: int, h: int = 48, w: int = 64):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 9))
    masks = np.zeros((n, h, w), bool)
    for i in range(n):
        m = np.zeros((h, w), np.uint8)
        cv2.circle(m, (int(rng.integers(0, w)), int(rng.integers(0, h))), int(rng.integers(3, 16)), 1, -1)
        masks[i] = m > 0
    boxes = np.array([[0, 0, w, h]] * n, np.float32)
    dets = Detections((h, w), boxes, rng.random(n).astype(np.float32), rng.integers(1, 3, n), DET_CATS,
                      masks=MaskSet.from_full(masks))
    labels = rng.integers(0, 3, (h, w)).astype(np.uint8)
    labels[: h // 3] = 0
    labels[h // 3:] = np.where(rng.random((h - h // 3, w)) < 0.9, 1, 2)
    labels[rng.random((h, w)) < 0.05] = 255
    labels[5:9, 5:9] = 3  # a 'circle' semantic blob: things never become stuff
    return dets, SemanticMap(labels, CATS, ignore_index=255), masks


def _dense_heuristic(dets, sem, masks, overlap, min_score, min_area):
    """A plain re-statement with full masks and Python loops, returning category/thing maps."""
    h, w = sem.image_size
    owner = np.full((h, w), -1)
    kept = []
    for i in sorted(range(len(dets)), key=lambda k: -float(dets.scores[k])):
        if dets.scores[i] < min_score:
            break
        m = masks[i]
        free = m & (owner < 0)
        if m.sum() == 0 or free.sum() == 0 or free.sum() < overlap * m.sum():
            continue
        owner[free] = len(kept)
        kept.append(CATS.index(DET_CATS[int(dets.class_ids[i])]))
    cat = np.full((h, w), -1)
    for k, c in enumerate(kept):
        cat[owner == k] = c
    for c in range(3):  # stuff classes
        region = (owner < 0) & (sem.labels == c)
        if region.sum() >= min_area and region.sum() > 0:
            cat[region] = c
    return cat, owner, len(kept)


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("overlap,min_area", [(0.5, 30), (0.2, 0), (0.9, 500)])
def test_heuristic_equals_dense_reference(seed, overlap, min_area):
    dets, sem, masks = _random_case(seed)
    pm = heuristic_merge(dets, sem, overlap_thresh=overlap, min_score=0.3, stuff_min_area=min_area)
    ref_cat, ref_owner, n_kept = _dense_heuristic(dets, sem, masks, overlap, 0.3, min_area)
    lut = {s.id: s.category_id for s in pm.segments}
    cat = np.vectorize(lambda i: lut.get(int(i), -1))(pm.segment_ids)
    assert np.array_equal(cat, ref_cat)
    things = [s for s in pm.segments if s.isthing]
    assert len(things) == n_kept
    # each kept instance is one segment whose pixels are exactly the reference owner's
    for k, s in enumerate(things):
        assert np.array_equal(pm.segment_ids == s.id, ref_owner == k)
        assert s.area == int((ref_owner == k).sum())
    assert pm.isthing == (False, False, False, True, True)


def test_heuristic_drops_mostly_covered_instance_and_small_stuff():
    h, w = 20, 20
    m = np.zeros((2, h, w), bool)
    m[0, 0:10, 0:10] = True
    m[1, 0:10, 4:12] = True  # 80 px, 60 covered by the first -> 20 free < 0.5 * 80: dropped
    dets = Detections((h, w), [[0, 0, 10, 10], [4, 0, 12, 10]], [0.9, 0.8], [1, 1], DET_CATS,
                      masks=MaskSet.from_full(m))
    labels = np.zeros((h, w), np.uint8)
    labels[18:, :3] = 2  # 6 px of road: under the minimum area, void
    pm = heuristic_merge(dets, SemanticMap(labels, CATS), stuff_min_area=10)
    assert [s.category_id for s in pm.segments] == [3, 0]
    assert int((pm.segment_ids == 0).sum()) == 6
    with pytest.raises(SegviewerError, match="no instance masks|none"):
        heuristic_merge(Detections((h, w), np.zeros((0, 4)), [], [], DET_CATS), SemanticMap(labels, CATS))


def _dense_upsnet(st, th, boxes, classes, mlog, outside):
    s, h, w = st.shape
    n = len(boxes)
    z = np.full((s + n, h, w), outside, np.float64)
    z[:s] = st
    for i in range(n):
        pasted, (x0, y0, x1, y1) = paste_mask_logits(mlog[i], boxes[i], (h, w))
        z[s + i, y0:y1, x0:x1] = pasted + th[classes[i], y0:y1, x0:x1]
    with np.errstate(invalid="ignore"):
        e = np.exp(z - z.max(axis=0))
        p = e / e.sum(axis=0)
    return p.argmax(axis=0)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("outside", [-np.inf, 0.0])
def test_upsnet_equals_dense_softmax_argmax(seed, outside):
    rng = np.random.default_rng(seed)
    s, t, h, w, n = 3, 2, 40, 50, 5
    st = rng.normal(size=(s, h, w)).astype(np.float32)
    th = rng.normal(size=(t, h, w)).astype(np.float32)
    xy = rng.uniform(-5, 40, (n, 2))
    boxes = np.concatenate([xy, xy + rng.uniform(4, 25, (n, 2))], 1)
    classes = rng.integers(0, t, n)
    mlog = rng.normal(scale=3, size=(n, 14, 14)).astype(np.float32)
    pm = upsnet_merge(st, th, boxes, classes, mlog, ("sky", "grass", "road"), ("circle", "square"),
                      scores=rng.random(n), outside_logit=outside)
    winner = _dense_upsnet(st, th, boxes, classes, mlog, outside)
    # map our segments back to channels: stuff c -> c, instance i -> s + i (ids in instance order)
    inst_ids = [seg.id for seg in pm.segments if seg.isthing]
    present = [i for i in range(n) if (winner == s + i).any()]
    assert len(inst_ids) == len(present)
    chan = {}
    for sid, i in zip(inst_ids, present):
        chan[sid] = s + i
    for seg in pm.segments:
        if not seg.isthing:
            chan[seg.id] = seg.category_id
    ours = np.vectorize(chan.get)(pm.segment_ids)
    assert np.array_equal(ours, winner)
    for seg in pm.segments:
        assert seg.area == int((pm.segment_ids == seg.id).sum())
    assert pm.categories == ("sky", "grass", "road", "circle", "square")


def test_upsnet_confident_mask_claims_its_box_only():
    st = np.zeros((1, 20, 20), np.float32)
    th = np.zeros((1, 20, 20), np.float32)
    pm = upsnet_merge(st, th, [[5, 5, 15, 15]], [0], [np.full((7, 7), 10.0, np.float32)], ("sky",), ("circle",))
    thing = [seg for seg in pm.segments if seg.isthing][0]
    assert thing.area == 100 and thing.category_id == 1
    assert (pm.segment_ids[5:15, 5:15] == thing.id).all()
