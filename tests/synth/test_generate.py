"""The scene generator: determinism, the Scene contract, and the properties training relies on."""

from __future__ import annotations

import numpy as np
import pytest

from segviewer.core.errors import SegviewerError
from segviewer.synth.classes import CATEGORIES, ISTHING
from segviewer.synth.generate import generate_scene


def test_same_seed_same_scene_and_different_seed_differs() -> None:
    a, b, c = generate_scene(7, (96, 128)), generate_scene(7, (96, 128)), generate_scene(8, (96, 128))
    assert a.image.tobytes() == b.image.tobytes()
    assert a.semantic.tobytes() == b.semantic.tobytes()
    assert [i.mask.tobytes() for i in a.instances] == [i.mask.tobytes() for i in b.instances]
    assert a.image.tobytes() != c.image.tobytes()


def test_scene_contract() -> None:
    for seed in range(10):
        s = generate_scene(seed, (120, 160))
        assert s.image.shape == (120, 160, 3) and s.image.dtype == np.uint8
        assert s.semantic.shape == (120, 160) and s.semantic.dtype == np.uint8
        assert s.semantic.max() < len(CATEGORIES)
        assert s.seed == seed
        cover = np.zeros((120, 160), np.int32)
        for k, inst in enumerate(s.instances, start=1):
            assert inst.instance_id == k
            assert ISTHING[inst.category]
            assert inst.mask.shape == (120, 160) and inst.mask.dtype == bool
            # the semantic map agrees with every visible instance mask
            assert np.all(s.semantic[inst.mask] == inst.category)
            cover += inst.mask
        assert cover.max() <= 1, "instance masks overlap"
        # pixels outside all instances are stuff
        assert not np.any(np.array(ISTHING)[s.semantic[cover == 0]])


def test_bad_options_raise_one_clear_error() -> None:
    with pytest.raises(SegviewerError, match="unknown scene option"):
        generate_scene(0, (64, 64), colour="red")
    with pytest.raises(SegviewerError, match="at least 16x16"):
        generate_scene(0, (8, 64))


@pytest.fixture(scope="module")
def scenes() -> list:
    return [generate_scene(1000 + i, (256, 256)) for i in range(50)]


def _touching(a: np.ndarray, b: np.ndarray) -> bool:
    grown = a.copy()
    grown[1:] |= a[:-1]
    grown[:-1] |= a[1:]
    grown[:, 1:] |= a[:, :-1]
    grown[:, :-1] |= a[:, 1:]
    return bool(np.any(grown & b))


def test_world_statistics_over_50_scenes(scenes: list) -> None:
    areas, spans, counts = [], [], []
    occluded = touching = 0
    for s in scenes:
        counts.append(len(s.instances))
        for inst in s.instances:
            area = int(inst.mask.sum())
            areas.append(area)
            rows, cols = np.flatnonzero(inst.mask.any(1)), np.flatnonzero(inst.mask.any(0))
            spans.append(max(rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1))
            # partial occlusion only: every thing keeps >= 60 % of its own area and >= 40 px
            assert area >= 40 and area >= 0.6 * inst.full_area - 1e-9
            occluded += area < inst.inframe_area
        masks = [i.mask for i in s.instances]
        touching += any(_touching(masks[i], masks[j]) for i in range(len(masks)) for j in range(i))
    areas_a = np.array(areas)
    assert min(counts) >= 1 and max(counts) <= 8
    assert len(set(counts)) >= 5, f"thing counts hardly vary: {sorted(set(counts))}"
    # COCO size classes all occur, each in a fair share; tiny things (< 12 px across) are rare
    small, large = np.mean(areas_a < 32**2), np.mean(areas_a >= 96**2)
    assert small > 0.1 and large > 0.05 and 1 - small - large > 0.2, (small, large)
    assert np.mean(np.array(spans) < 12) < 0.05
    assert occluded >= 5 and touching >= 10, (occluded, touching)


def test_every_thing_class_and_stuff_class_appears(scenes: list) -> None:
    seen = set()
    for s in scenes:
        seen |= set(np.unique(s.semantic).tolist())
    assert seen == set(range(len(CATEGORIES)))


def test_rings_have_holes_showing_what_is_behind(scenes: list) -> None:
    import cv2

    ring = CATEGORIES.index("ring")
    checked = 0
    for s in scenes:
        for inst in s.instances:
            if inst.category != ring or inst.pose is None:
                continue
            cx, cy = inst.pose.cx, inst.pose.cy
            r, c = int(cy), int(cx)
            if not (0 <= r < s.semantic.shape[0] and 0 <= c < s.semantic.shape[1]):
                continue
            assert not inst.mask[r, c], "a ring's centre is part of its mask"
            assert s.semantic[r, c] != ring or any(o.mask[r, c] for o in s.instances if o is not inst)
            if inst.full_area == int(inst.mask.sum()):  # whole and unoccluded: the hole is enclosed
                n, _ = cv2.connectedComponents((~inst.mask).astype(np.uint8), connectivity=4)
                assert n - 1 >= 2
            checked += 1
    assert checked >= 5
