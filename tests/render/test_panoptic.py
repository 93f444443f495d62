"""Panoptic colors, boundaries, hover, and the error layer."""

from __future__ import annotations

import numpy as np
import pytest

from segviewer.core.colors import category_color, color_index
from segviewer.core.results import Detections, MaskSet, PanopticMap, PanopticSegment
from segviewer.render.error_layer import STATUS_RGB, ErrorMap, instance_errors, panoptic_errors
from segviewer.render.layers import LayerKind, RenderStyle, layer_kinds, render_layer
from segviewer.render.panoptic import BOUNDARY_RGB, panoptic_colors, segment_at

CATS = ("sky", "grass", "circle", "square")
ISTHING = (False, False, True, True)


def _scene() -> PanopticMap:
    ids = np.zeros((40, 60), np.int32)
    ids[:20] = 1000  # sky
    ids[20:] = 2000  # grass
    ids[5:15, 5:15] = 3001  # circle #1
    ids[5:15, 20:30] = 3002  # circle #2
    ids[25:35, 40:55] = 4001  # square
    ids[38:, :3] = 0  # void
    segs = tuple(PanopticSegment(i, c, ISTHING[c], int((ids == i).sum()))
                 for i, c in ((1000, 0), (2000, 1), (3001, 2), (3002, 2), (4001, 3)))
    return PanopticMap(ids, segs, CATS, ISTHING)


def _base(k: int) -> tuple[int, int, int]:
    """Category k's color: colors follow class names (core.colors.color_index)."""
    return category_color(color_index(CATS[k], k))


def test_colors_stuff_plain_things_jittered_void_transparent():
    pm = _scene()
    layer = render_layer(pm, LayerKind.PANOPTIC, RenderStyle(mask_border=0))
    assert layer.shape == (40, 60, 4) and layer.dtype == np.uint8
    assert tuple(layer[0, 0, :3]) == _base(0) and layer[0, 0, 3] == 255
    assert tuple(layer[30, 0, :3]) == _base(1)
    c1, c2 = tuple(layer[10, 10, :3]), tuple(layer[10, 25, :3])
    assert c1 != c2 and c1 != _base(2)  # two circles differ from each other and the base
    # jitter is a small move of the base color
    assert np.abs(np.array(c1, int) - _base(2)).max() < 140
    assert layer[39, 0, 3] == 0  # void
    # deterministic
    assert np.array_equal(layer, render_layer(pm, "panoptic", RenderStyle(mask_border=0)))
    plain = panoptic_colors(pm, RenderStyle(instance_jitter=0))
    assert tuple(plain[3, :3]) == tuple(plain[4, :3]) == _base(2)
    assert LayerKind.PANOPTIC in layer_kinds(pm)


def test_boundaries_are_two_colors_per_segment_and_window_consistent():
    pm = _scene()
    style = RenderStyle(mask_border=1)
    full = render_layer(pm, "panoptic", style)
    inside = full[5:15, 20:30]  # circle #2: interior plus its 1px boundary ring
    colors = {tuple(v) for v in inside.reshape(-1, 4)}
    assert colors == {(*BOUNDARY_RGB, 255), tuple(full[10, 25])}
    assert tuple(full[5, 22]) == (*BOUNDARY_RGB, 255)  # top edge of circle #2
    assert tuple(full[4, 22]) == (*BOUNDARY_RGB, 255)  # the sky's side of it too
    assert tuple(full[1, 1, :3]) == _base(0)
    win = render_layer(pm, "panoptic", style, window=(10, 3, 50, 30))
    assert np.array_equal(win, full[3:30, 10:50])
    small = render_layer(pm, "panoptic", style, out_size=(20, 30))
    assert np.array_equal(small, full[1::2, 1::2])  # nearest at output pixel centres


def test_segment_at_for_hover():
    pm = _scene()
    info = segment_at(pm, 25.5, 10.2)
    assert info["id"] == 3002 and info["category"] == "circle" and info["isthing"]
    assert segment_at(pm, 0.5, 39.5) is None  # void
    assert segment_at(pm, -1, 3) is None and segment_at(pm, 60.0, 3) is None


def _pred_from(gt: PanopticMap) -> PanopticMap:
    ids = np.array(gt.segment_ids)
    ids[5:15, 20:30] = 1000  # circle #2 missed (painted as sky): FN
    ids[25:35, 40:55] = 2000
    ids[25:35, 40:50] = 4001  # square shrunk to 2/3: still IoU 0.667 > 0.5
    ids[28:33, 10:15] = 5000  # a spurious square: FP
    segs = tuple(PanopticSegment(i, c, ISTHING[c], int((ids == i).sum()))
                 for i, c in ((1000, 0), (2000, 1), (3001, 2), (4001, 3), (5000, 3)))
    return PanopticMap(ids, segs, CATS, ISTHING)


def test_panoptic_error_layer_statuses_and_hover():
    gt = _scene()
    pred = _pred_from(gt)
    em = panoptic_errors(pred, gt)
    assert em.counts == {"TP": 4, "FP": 1, "FN": 1}
    assert em.info_at(10, 10)["status"] == "TP" and em.info_at(10, 10)["iou"] == pytest.approx(1.0)
    assert em.info_at(25, 10)["status"] == "FN" and em.info_at(25, 10)["gt_id"] == 3002
    assert em.info_at(12, 30)["status"] == "FP" and em.info_at(12, 30)["iou"] is None
    sq = em.info_at(45, 30)
    assert sq["status"] == "TP" and sq["iou"] == pytest.approx(100 / 150)
    layer = render_layer(em, LayerKind.MASKS, RenderStyle())
    assert tuple(layer[30, 12, :3]) == tuple(STATUS_RGB[2])
    assert tuple(layer[10, 25, :3]) == tuple(STATUS_RGB[3])
    assert isinstance(em, ErrorMap) and layer[39, 0, 3] == 0


def test_instance_error_layer():
    h, w = 30, 40
    g = np.zeros((2, h, w), bool)
    g[0, 2:12, 2:12] = True
    g[1, 15:25, 20:35] = True
    p = np.zeros((3, h, w), bool)
    p[0, 2:12, 3:12] = True  # TP (IoU 0.9)
    p[1, 0:5, 30:40] = True  # FP
    p[2, 2:12, 2:12] = True  # duplicate of gt 0 with a lower score: FP
    cats = ("__background__", "circle")
    gt = Detections((h, w), [[2, 2, 12, 12], [20, 15, 35, 25]], [1, 1], [1, 1], cats, masks=MaskSet.from_full(g))
    pr = Detections((h, w), [[3, 2, 12, 12], [30, 0, 40, 5], [2, 2, 12, 12]], [0.9, 0.8, 0.3], [1, 1, 1], cats,
                    masks=MaskSet.from_full(p))
    em = instance_errors(pr, gt)
    assert em.counts == {"TP": 1, "FP": 2, "FN": 1}
    assert em.info_at(25, 20)["status"] == "FN"
    assert em.info_at(35, 2)["status"] == "FP"
    top = em.info_at(5, 5)
    assert top["status"] == "TP" and top["iou"] == pytest.approx(0.9) and top["pred_id"] == 1
    assert em.best_iou[3] == pytest.approx(1.0)  # the duplicate is exact but came second
    assert em.info_at(2.5, 5)["status"] == "FP"
