"""Compact per-frame encoding: exact round trips, and 18,000 frames of 1280x720 results in 2 GiB."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from segviewer.core.errors import SegviewerError
from segviewer.core.results import Detections, FlowField, MaskSet, PanopticMap, PanopticSegment, SemanticMap
from segviewer.synth.classes import CATEGORIES, THINGS
from segviewer.synth.generate import generate_scene
from segviewer.video.cache import DEFAULT_BUDGET, FLOW_QUANTUM, decode_result, encode_result

FRAMES_10_MIN_30_FPS = 10 * 60 * 30


@pytest.fixture(scope="module")
def frame_results() -> tuple[SemanticMap, Detections, PanopticMap]:
    """A representative 1280x720 frame: the shapes world's semantic, instance and panoptic truth."""
    s = generate_scene(11, (720, 1280))
    sem = SemanticMap(s.semantic, CATEGORIES)
    ms = MaskSet.from_full(np.stack([i.mask for i in s.instances]))
    boxes = np.array([[o[0], o[1], o[0] + c.shape[1], o[1] + c.shape[0]] for c, o in zip(ms.crops, ms.offsets)],
                     np.float32).reshape(-1, 4)
    dets = Detections((720, 1280), boxes, np.linspace(0.9, 0.5, len(boxes)),
                      np.array([i.category - 3 for i in s.instances]), ("__background__",) + THINGS, masks=ms)
    ids = np.zeros((720, 1280), np.int32)
    segs = []
    for i in s.instances:
        ids[i.mask] = i.instance_id
        segs.append(PanopticSegment(i.instance_id, i.category, True, int(i.mask.sum())))
    stuff = s.semantic.copy()
    for k in range(4):  # stuff segments get ids 1000 + class
        sel = (ids == 0) & (stuff == k)
        if sel.any():
            ids[sel] = 1000 + k
            segs.append(PanopticSegment(1000 + k, k, False, int(sel.sum())))
    pan = PanopticMap(ids, tuple(segs), CATEGORIES)
    return sem, dets, pan


def test_round_trips_are_exact(frame_results: tuple[SemanticMap, Detections, PanopticMap]) -> None:
    sem, dets, pan = frame_results
    s2 = decode_result(encode_result(sem))
    assert isinstance(s2, SemanticMap)
    np.testing.assert_array_equal(s2.labels, sem.labels)
    assert s2.categories == sem.categories and s2.labels.dtype == np.uint8
    d2 = decode_result(encode_result(dets))
    assert isinstance(d2, Detections) and d2.masks is not None and dets.masks is not None
    np.testing.assert_array_equal(d2.masks.to_full(), dets.masks.to_full())
    np.testing.assert_array_equal(d2.masks.offsets, dets.masks.offsets)
    np.testing.assert_array_equal(d2.boxes, dets.boxes)
    np.testing.assert_array_equal(d2.class_ids, dets.class_ids)
    assert d2.instance_ids is None
    tracked = dataclasses.replace(dets, instance_ids=np.arange(7, 7 + len(dets)))
    d3 = decode_result(encode_result(tracked))
    assert isinstance(d3, Detections) and d3.instance_ids is not None
    np.testing.assert_array_equal(d3.instance_ids, tracked.instance_ids)  # track colors survive the cache
    p2 = decode_result(encode_result(pan))
    assert isinstance(p2, PanopticMap)
    np.testing.assert_array_equal(p2.segment_ids, pan.segment_ids)
    assert p2.segments == pan.segments


def test_flow_is_quantised_to_a_64th_of_a_pixel() -> None:
    uv = np.random.default_rng(0).normal(scale=20, size=(48, 64, 2)).astype(np.float32)
    back = decode_result(encode_result(FlowField(uv)))
    assert isinstance(back, FlowField)
    assert np.abs(back.uv - uv).max() <= FLOW_QUANTUM / 2 + 1e-6


def test_empty_masks_and_unknown_types() -> None:
    ms = MaskSet((10, 10), (np.zeros((0, 0), bool), np.ones((2, 3), bool)), np.array([[0, 0], [4, 5]]))
    d = Detections((10, 10), np.array([[0, 0, 1, 1], [4, 5, 7, 7]]), np.ones(2), np.zeros(2), ("a",), masks=ms)
    back = decode_result(encode_result(d))
    assert isinstance(back, Detections) and back.masks is not None
    np.testing.assert_array_equal(back.masks.to_full(), ms.to_full())
    with pytest.raises(SegviewerError, match="cannot store"):
        encode_result(np.zeros(3))


def test_ten_minutes_of_720p_results_fit_in_two_gib(frame_results: tuple[SemanticMap, Detections, PanopticMap]) -> None:
    sem, dets, pan = frame_results
    per_frame = sum(encode_result(r).nbytes for r in (sem, dets, pan))
    raw = sem.labels.nbytes + dets.masks.nbytes() + pan.segment_ids.nbytes  # type: ignore[union-attr]
    assert per_frame * 20 < raw  # the encoding is what makes it fit, not a generous bound
    assert per_frame * FRAMES_10_MIN_30_FPS <= DEFAULT_BUDGET
    # a real network's label map is ragged at the borders: flip 1% of pixels (pessimistic) and still fit
    rng = np.random.default_rng(0)
    noisy = sem.labels.copy()
    idx = rng.choice(noisy.size, noisy.size // 100, replace=False)
    noisy.ravel()[idx] = rng.integers(0, len(CATEGORIES), idx.size)
    worst = encode_result(SemanticMap(noisy, CATEGORIES)).nbytes + per_frame - encode_result(sem).nbytes
    assert worst * FRAMES_10_MIN_30_FPS <= DEFAULT_BUDGET


def test_frame_cache_drops_the_oldest_past_its_budget(frame_results: tuple[SemanticMap, Detections, PanopticMap]) -> None:
    from segviewer.video.cache import FrameResultCache

    sem = frame_results[0]
    size = encode_result(sem).nbytes
    cache = FrameResultCache(max_bytes=int(size * 3.5))  # room for three frames
    for i in range(5):
        assert cache.put(i, "shapes_fcn", sem) == size
    assert cache.frames("shapes_fcn") == [2, 3, 4] and len(cache) == 3
    assert cache.nbytes == 3 * size <= cache.max_bytes
    assert cache.get(0, "shapes_fcn") is None
    back = cache.get(2, "shapes_fcn")  # a use: frame 2 is now the most recent
    assert isinstance(back, SemanticMap)
    np.testing.assert_array_equal(back.labels, sem.labels)
    cache.put(5, "shapes_fcn", sem)
    assert cache.frames("shapes_fcn") == [2, 4, 5] and (3, "shapes_fcn") not in cache
    assert cache.get(4, "other model") is None
    with pytest.raises(SegviewerError):
        FrameResultCache(0)
