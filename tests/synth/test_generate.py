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
