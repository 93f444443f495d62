"""The selection step of a set-prediction model, without a model: each query's fate, the query a
click means, every query's mask outlined, and Mask2Former-style queries through the model's merge,
the heuristic merge and UPSNet's head side by side."""

from __future__ import annotations

import numpy as np
import pytest

from segviewer.analysis.queries import (
    BELOW_THRESHOLD,
    DROPPED_OVERLAP,
    KEPT,
    NO_OBJECT,
    QUERY_KINDS,
    MergeTrace,
    QueryInternals,
    compare_merges,
    mask_outline_segments,
    query_at,
    query_fates,
)
from segviewer.core.results import PanopticMap, PanopticSegment

BIG = 20.0


def _detr(selected: list[int]) -> QueryInternals:
    # 4 queries over classes (a, b) + no object: q0 a, q1 no object, q2 b (weak), q3 a
    lg = np.array([[BIG, 0, 0], [0, 0, BIG], [0, 0.5, 0], [BIG, 0, 0]], np.float32)
    boxes = np.array([[0, 0, 50, 50], [10, 10, 90, 90], [20, 20, 40, 40], [5, 5, 30, 30]], np.float32)
    return QueryInternals(family="detr", image_size=(100, 100), input_size=(64, 64), categories=("a", "b"),
                          class_logits=lg, no_object=True, selected=np.array(selected, np.int64), boxes=boxes)


def test_fates_and_the_query_under_a_click_for_boxes() -> None:
    it = _detr([0, 3])
    assert query_fates(it).tolist() == [KEPT, NO_OBJECT, BELOW_THRESHOLD, KEPT]
    assert set(it.kinds) == {"query_classes", "query_boxes"} and set(it.kinds) <= set(QUERY_KINDS)
    assert query_at(it, 10, 10) == 3  # the smaller of the two kept boxes there
    assert query_at(it, 45, 45) == 0
    assert query_at(it, 60, 60) is None  # only the "no object" query's box: no real query there
    # nothing kept under the point: the most confident real-class query whose box holds it
    assert query_at(_detr([]), 30, 30) == 0


def _masks(q: int, h: int, w: int) -> np.ndarray:
    return np.full((q, h, w), -BIG, np.float32)


def test_mask_outlines_trace_each_mask_in_image_pixels() -> None:
    lg = _masks(2, 10, 20)
    lg[0, 2:6, 4:10] = BIG  # a 6 x 4 cell block; the image is 4x the logits
    out = mask_outline_segments(lg, (40, 80))
    assert len(out) == 2 and len(out[1]) == 0
    pts = out[0].reshape(-1, 2)
    # cell centres (i + 0.5) * 4: the outline runs through the outer cells' centres
    assert pts[:, 0].min() == pytest.approx(4.5 * 4) and pts[:, 0].max() == pytest.approx(9.5 * 4)
    assert pts[:, 1].min() == pytest.approx(2.5 * 4) and pts[:, 1].max() == pytest.approx(5.5 * 4)
    # closed: every segment's end is another's start
    starts = {tuple(p) for p in out[0][:, 0]}
    assert all(tuple(p) in starts for p in out[0][:, 1])


def _universal() -> tuple[QueryInternals, PanopticMap]:
    """3 queries over (thing "car", stuff "road") + no object, masks on a 20 x 20 grid:
    q0 a car on the left, q1 road in the bottom half, q2 "no object"."""
    lg = np.array([[BIG, 0, 0], [0, BIG, 0], [0, 0, BIG]], np.float32)
    masks = _masks(3, 20, 20)
    masks[0, 2:8, 2:8] = BIG
    masks[1, 10:, :] = BIG
    merge = MergeTrace(np.array([KEPT, KEPT, NO_OBJECT], np.int8), np.array([1, 2, 0], np.int32), 0.5, 0.8)
    it = QueryInternals(family="mask2former", image_size=(40, 40), input_size=(64, 64), categories=("car", "road"),
                        class_logits=lg, no_object=True, selected=np.array([0, 1]), mask_logits=masks, merge=merge)
    ids = np.zeros((40, 40), np.int32)
    ids[4:16, 4:16] = 1
    ids[20:, :] = 2
    pm = PanopticMap(ids, (PanopticSegment(1, 0, True, 144), PanopticSegment(2, 1, False, 800)), ("car", "road"),
                     (True, False))
    return it, pm


def test_the_same_queries_through_three_merges() -> None:
    it, pm = _universal()
    assert query_fates(it).tolist() == [KEPT, KEPT, NO_OBJECT]
    assert query_at(it, 10, 10) == 0 and query_at(it, 10, 30) == 1
    mc = compare_merges(it, (True, False), pm, threshold=0.5)
    assert set(mc.maps) == {"model", "heuristic", "upsnet"} and not mc.notes
    heur, ups = mc.maps["heuristic"], mc.maps["upsnet"]
    # the heuristic: the car query as an instance, road from the query mixture's semantic map
    assert [(heur.categories[s.category_id], s.isthing) for s in heur.segments] == [("car", True), ("road", False)]
    car = next(s for s in heur.segments if s.isthing)
    assert car.area == 36 and (heur.segment_ids[2:8, 2:8] == car.id).all()
    # UPSNet: stuff first in its categories; the car wins its box, road the bottom half
    assert ups.categories == ("road", "car")
    assert ups.segment_ids[5, 5] != ups.segment_ids[15, 5] and ups.segment_ids[15, 5] > 0
    assert mc.agreement["model"] == 1.0
    # the top half outside the car is background in every map (void in the model's, nothing in ours
    # but the mixture's argmax there is "car" or "road": count what matches by hand)
    ref = mc.maps["model"]
    names = lambda m: np.array([[m.categories[next(s.category_id for s in m.segments if s.id == v)] if v else ""  # noqa: E731
                                 for v in row] for row in m.segment_ids])
    for key in ("heuristic", "upsnet"):
        assert mc.agreement[key] == pytest.approx(float((names(mc.maps[key]) == names(ref)).mean()))


def test_merges_need_masks_and_upsnet_needs_stuff() -> None:
    with pytest.raises(ValueError, match="boxes, not masks"):
        compare_merges(_detr([0]), ())
    it, _ = _universal()
    mc = compare_merges(it, (True, True))
    assert "upsnet" not in mc.maps and "stuff" in mc.notes["upsnet"]
    assert "model" not in mc.maps and mc.agreement == {}
    assert DROPPED_OVERLAP not in query_fates(it)


def test_merges_with_no_confident_query() -> None:
    it, pm = _universal()
    weak = QueryInternals(family=it.family, image_size=it.image_size, input_size=it.input_size,
                          categories=it.categories, class_logits=np.zeros_like(it.class_logits), no_object=True,
                          selected=np.zeros(0, np.int64), mask_logits=it.mask_logits, merge=it.merge)
    mc = compare_merges(weak, (True, False), pm, threshold=0.5)
    assert not any(s.isthing for s in mc.maps["heuristic"].segments)
    assert not any(s.isthing for s in mc.maps["upsnet"].segments)


def test_attention_on_a_display_grid_keeps_its_peak_and_mass() -> None:
    att = np.zeros((1, 2, 4, 8), np.float16)
    att[0, :, 1, 6] = 1.0  # both heads look at cell (row 1, col 6) of a 4 x 8 map
    it = QueryInternals(family="detr", image_size=(400, 800), input_size=(64, 128), categories=("a",),
                        class_logits=np.zeros((1, 2), np.float32), no_object=True, selected=np.zeros(0, np.int64),
                        attention=att)
    full, small = it.attention_map(0), it.attention_map(0, None, (100, 200))
    assert small.shape == (100, 200) and small.sum() == pytest.approx(1.0, abs=1e-5)
    for m, (h, w) in ((full, (400, 800)), (small, (100, 200))):
        y, x = np.unravel_index(np.argmax(m), m.shape)
        assert abs((x + 0.5) / w - 6.5 / 8) < 0.02 and abs((y + 0.5) / h - 1.5 / 4) < 0.02
