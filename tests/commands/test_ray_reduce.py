"""The reductions ``eval --engine ray`` relies on, without Ray: per-image partial statistics
added on the driver equal the single-process accumulation exactly."""

from __future__ import annotations

import numpy as np

from segviewer.analysis.evaluation import SemanticAccumulator
from segviewer.core.results import SemanticMap


def test_semantic_accumulators_merged_in_order_equal_one_updated_image_by_image() -> None:
    rng = np.random.default_rng(4)
    gt_names = ("bg", "a", "b")
    pred_sets = [("bg", "a", "c"), ("bg", "d", "a", "b"), ("bg", "a")]  # names appear image by image
    pairs = []
    for k, names in enumerate(pred_sets):
        g = rng.integers(0, 3, (12, 16)).astype(np.uint8)
        g[0, :4] = 255  # ignored ground truth
        p = rng.integers(0, len(names), (12, 16)).astype(np.uint8)
        if k == 1:
            p[5, 5] = 255  # a void prediction on a counted pixel: the extra "(void)" class
        pairs.append((SemanticMap(p, names, ignore_index=255), SemanticMap(g, gt_names, ignore_index=255)))
    whole = SemanticAccumulator()
    for pred, gt in pairs:
        whole.update(pred, gt)
    merged = SemanticAccumulator()
    for pred, gt in pairs:
        one = SemanticAccumulator()
        one.update(pred, gt)
        merged.merge(one)
    assert merged.names == whole.names and "(void)" in merged.names
    np.testing.assert_array_equal(merged.matrix, whole.matrix)
    assert merged.scores() == whole.scores()
