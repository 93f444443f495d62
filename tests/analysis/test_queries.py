"""Set-prediction internals without a model: class distributions, deformable attention drawn as a
map, and which query became which panoptic segment."""

from __future__ import annotations

import numpy as np
import pytest

from segviewer.analysis.queries import (
    DeformableSampling,
    QueryInternals,
    class_distribution,
    match_segments,
    splat_points,
)


def test_class_distribution_softmax_with_no_object_or_sigmoids() -> None:
    lg = np.array([[2.0, 0.0, -1.0], [0.0, 0.0, 5.0]], np.float32)
    p = class_distribution(lg, no_object=True)
    np.testing.assert_allclose(p.sum(1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(p[0], np.exp([2, 0, -1]) / np.exp([2, 0, -1]).sum(), rtol=1e-6)
    s = class_distribution(lg, no_object=False)
    np.testing.assert_allclose(s, 1 / (1 + np.exp(-lg)), rtol=1e-6)


def test_splat_points_is_bilinear_about_pixel_centres() -> None:
    # a point on the centre of pixel (row 1, col 2) of a 4 x 5 grid puts all its weight there
    m = splat_points(np.array([[2.5 / 5, 1.5 / 4]]), np.array([0.6]), (4, 5))
    assert m[1, 2] == pytest.approx(0.6) and m.sum() == pytest.approx(0.6)
    # halfway between four centres: a quarter each
    m = splat_points(np.array([[2.0 / 5, 2.0 / 4]]), np.array([1.0]), (4, 5))
    np.testing.assert_allclose(m[1:3, 1:3], 0.25)
    # outside the image: nothing (deformable attention reads zeros there)
    assert splat_points(np.array([[1.5, 0.5]]), np.array([1.0]), (4, 5)).sum() == 0


def test_deformable_attention_map_peaks_where_the_query_looks() -> None:
    q, heads, levels, points = 2, 2, 2, 1
    loc = np.zeros((q, heads, levels, points, 2), np.float32)
    loc[0] = (0.25, 0.75)  # query 0 looks at x = 1/4, y = 3/4 on every head and level
    loc[1] = (0.9, 0.1)
    wts = np.full((q, heads, levels, points), 0.5, np.float32)
    it = QueryInternals(family="rt_detr", image_size=(40, 80), input_size=(64, 64), categories=("a",),
                        class_logits=np.zeros((q, 1), np.float32), no_object=False, selected=np.array([0]),
                        sampling=DeformableSampling(loc, wts, ((8, 8), (4, 4))))
    amap = it.attention_map(0)
    assert amap.shape == (40, 80) and amap.sum() == pytest.approx(1.0, abs=1e-5)
    y, x = np.unravel_index(np.argmax(amap), amap.shape)
    assert abs(x - 20) <= 5 and abs(y - 30) <= 5
    assert it.heads() == 2 and it.attention_map(1, head=0)[:20, 60:].sum() > 0.9


def test_match_segments_follows_the_kept_queries_in_order() -> None:
    labels = np.array([1, 2, 1, 0, 2])
    scores = np.array([0.9, 0.8, 0.7, 0.95, 0.6])
    kept = np.array([True, True, True, False, True])
    # query 1 lost its pixels to others; 2 and 4 became segments 2 and 3 (ids as transformers counts)
    seg = match_segments(labels, scores, kept, [(1, 1, 0.9), (2, 1, 0.7), (3, 2, 0.6)])
    assert seg.tolist() == [1, 0, 2, 0, 3]
    with pytest.raises(ValueError, match="match no kept query"):
        match_segments(labels, scores, kept, [(1, 0, 0.95)])
