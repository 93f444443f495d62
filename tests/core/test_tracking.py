"""Track ids carried across frames by mask or box IoU, with a time to live."""

import dataclasses

import numpy as np
import pytest

from segviewer.core.errors import SegviewerError
from segviewer.core.results import Detections, MaskSet, PanopticMap, PanopticSegment
from segviewer.core.tracking import InstanceTracker, box_iou, mask_iou

CATS = ("bg", "circle", "square")


def _disc(h: int, w: int, cx: float, cy: float, r: float) -> np.ndarray:
    ys, xs = np.mgrid[0:h, 0:w]
    return (xs - cx) ** 2 + (ys - cy) ** 2 <= r * r


def _frame(centres: list[tuple[float, float, int]], h: int = 60, w: int = 80) -> Detections:
    masks = np.stack([_disc(h, w, cx, cy, 8) for cx, cy, _ in centres]) if centres else np.zeros((0, h, w), bool)
    ms = MaskSet.from_full(masks)
    boxes = [[o[0], o[1], o[0] + c.shape[1], o[1] + c.shape[0]] for c, o in zip(ms.crops, ms.offsets)]
    return Detections((h, w), np.array(boxes, np.float32).reshape(-1, 4), np.ones(len(centres)),
                      np.array([c for _, _, c in centres], np.int32), CATS, masks=ms)


def test_mask_iou_matches_full_frame_iou() -> None:
    rng = np.random.default_rng(0)
    full_a = rng.random((3, 30, 40)) > 0.6
    full_b = rng.random((2, 30, 40)) > 0.6
    full_a[:, :5] = False
    a, b = MaskSet.from_full(full_a), MaskSet.from_full(full_b)
    got = mask_iou(list(zip(a.crops, a.offsets)), list(zip(b.crops, b.offsets)))
    ref = np.array([[(x & y).sum() / (x | y).sum() for y in full_b] for x in full_a])
    np.testing.assert_allclose(got, ref, rtol=1e-12)
    np.testing.assert_allclose(box_iou([[0, 0, 10, 10]], [[5, 0, 15, 10], [20, 20, 30, 30]]), [[1 / 3, 0]])


def test_ids_follow_moving_objects_and_new_ones_get_new_ids() -> None:
    tr = InstanceTracker(iou_threshold=0.3, ttl=2)
    a = tr.update_detections(_frame([(20, 20, 1), (60, 40, 2)]))
    assert a.tolist() == [1, 2]
    # moved by 3 px, listed in the other order, plus a newcomer
    b = tr.update_detections(_frame([(63, 40, 2), (23, 21, 1), (40, 50, 1)]))
    assert b.tolist() == [2, 1, 3]


def test_tracked_detections_keep_their_color_across_frames() -> None:
    from segviewer.render.style import RenderStyle, detection_colors

    style = RenderStyle()
    tr = InstanceTracker(iou_threshold=0.3)
    first = tr.track(_frame([(20, 20, 1), (60, 40, 1)]))
    # the two objects moved and are listed in the other order; a third, same class, appears
    second = tr.track(_frame([(62, 41, 1), (22, 20, 1), (90, 10, 1)]))
    assert second.instance_ids.tolist() == [2, 1, 3]
    c1, c2 = detection_colors(first, style), detection_colors(second, style)
    np.testing.assert_array_equal(c2[0], c1[1])
    np.testing.assert_array_equal(c2[1], c1[0])
    assert len({tuple(c) for c in c2}) == 3
    # without tracking, colors follow the index: the swapped listing would swap the colors
    untracked = detection_colors(dataclasses.replace(second, instance_ids=None), style)
    assert not np.array_equal(untracked[0], c1[1])


def test_one_to_one_matching_and_class_check() -> None:
    tr = InstanceTracker(iou_threshold=0.3)
    tr.update_detections(_frame([(20, 20, 1)]))
    # two new instances on top of the old one: only the better one continues the track
    ids = tr.update_detections(_frame([(24, 20, 1), (21, 20, 1)]))
    assert ids.tolist() == [2, 1]
    # same place, another class: a new track
    assert tr.update_detections(_frame([(21, 20, 2)])).tolist() == [3]


def test_time_to_live_bridges_short_gaps_only() -> None:
    tr = InstanceTracker(ttl=2)
    tr.update_detections(_frame([(20, 20, 1)]))
    tr.update_detections(_frame([]))  # missed once: survives
    assert tr.update_detections(_frame([(20, 20, 1)])).tolist() == [1]
    tr.update_detections(_frame([]))
    tr.update_detections(_frame([]))  # missed twice: forgotten
    assert tr.update_detections(_frame([(20, 20, 1)])).tolist() == [2]
    tr.reset()
    assert tr.update_detections(_frame([(20, 20, 1)])).tolist() == [1]


def test_boxes_only_and_panoptic() -> None:
    tr = InstanceTracker()
    tr.update(np.array([[0, 0, 10, 10]]), np.array([1]))
    assert tr.update(np.array([[1, 0, 11, 10]]), np.array([1])).tolist() == [1]
    seg = np.zeros((40, 40), np.int32)
    seg[5:15, 5:15] = 7
    seg[20:30, 20:30] = 9
    pm = PanopticMap(seg, (PanopticSegment(7, 1, True, 100), PanopticSegment(9, 2, True, 100)), CATS)
    tp = InstanceTracker()
    first = tp.update_panoptic(pm)
    seg2 = np.zeros((40, 40), np.int32)
    seg2[6:16, 5:15] = 3  # segment ids change between frames; tracks do not
    seg2[20:30, 21:31] = 4
    pm2 = PanopticMap(seg2, (PanopticSegment(3, 1, True, 100), PanopticSegment(4, 2, True, 100)), CATS)
    second = tp.update_panoptic(pm2)
    assert second == {3: first[7], 4: first[9]}


def test_bad_parameters() -> None:
    with pytest.raises(SegviewerError):
        InstanceTracker(iou_threshold=0)
    with pytest.raises(SegviewerError):
        InstanceTracker(ttl=0)
    with pytest.raises(SegviewerError):
        InstanceTracker().update(np.zeros((2, 4)), np.zeros(1))


def test_restart_continues_from_a_neighbour_and_never_reuses_ids() -> None:
    tr = InstanceTracker(iou_threshold=0.3)
    a = tr.track(_frame([(20, 20, 1), (60, 40, 2)]))
    assert a.instance_ids.tolist() == [1, 2]
    tr.track(_frame([(40, 10, 1)]))  # a third object gets id 3
    # a jump to a frame whose neighbour (frame a) is known: its objects keep their ids
    tr.restart(a)
    b = tr.track(_frame([(61, 41, 2), (21, 20, 1), (10, 50, 2)]))
    assert b.instance_ids.tolist() == [2, 1, 4], "continued ids, and the newcomer does not reuse 1..3"
    # a jump with no known neighbour: no tracks, but still no reused id
    tr.restart(None)
    assert tr.track(_frame([(20, 20, 1)])).instance_ids.tolist() == [5]
