"""Without Ray: the reductions ``eval --engine ray`` relies on (per-image partial statistics
added on the driver equal the single-process accumulation exactly) and the pool's sizing."""

from __future__ import annotations

import argparse

import numpy as np
import pytest

from segviewer.analysis.evaluation import SemanticAccumulator
from segviewer.core.errors import SegviewerError
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


class _FakeRay:
    """Only what ``pool_for`` reads: the cluster's resources."""

    def __init__(self, **resources: float) -> None:
        self.resources = resources

    def cluster_resources(self) -> dict[str, float]:
        return dict(self.resources)


def _args(**kw: object) -> argparse.Namespace:
    base = {"actors": None, "actor_cpus": None, "actor_gpus": None, "batch_size": None}
    return argparse.Namespace(**{**base, **kw})


def test_the_pool_takes_one_gpu_per_actor_and_leaves_a_cpu_for_ray_data() -> None:
    from segviewer.commands._ray_engine import pool_for

    gpus = pool_for(_FakeRay(CPU=16, GPU=4), _args(), 1000)
    assert (gpus.actors, gpus.gpus, gpus.cpus) == (4, 1.0, 0.0)
    stats = pool_for(_FakeRay(CPU=16, GPU=4), _args(), 1000, gpu_work=False)  # eval: CPUs only
    assert (stats.actors, stats.gpus, stats.cpus) == (15, 0.0, 1.0)
    laptop = pool_for(_FakeRay(CPU=2), _args(), 1000)
    assert (laptop.actors, laptop.cpus) == (1, 1.0)  # not 2: Ray Data's tasks need a CPU too
    halves = pool_for(_FakeRay(CPU=2), _args(actor_cpus=0.5), 1000)
    assert halves.actors == 2
    assert pool_for(_FakeRay(CPU=16), _args(batch_size=8), 12).actors == 2  # never more actors than batches
    with pytest.raises(SegviewerError, match="do not fit"):
        pool_for(_FakeRay(CPU=2), _args(actors=3), 1000)
