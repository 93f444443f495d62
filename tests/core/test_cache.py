"""ByteLRU against a plain reference model, sizes from nbytes, and concurrent use."""

from __future__ import annotations

import random
import threading

import numpy as np
import pytest

from segviewer.core.cache import ByteLRU
from segviewer.core.results import Detections


def test_evicts_least_recently_used_first() -> None:
    c = ByteLRU(100)
    c.put("a", object(), nbytes=40)
    c.put("b", object(), nbytes=40)
    assert c.get("a") is not None  # a is now the most recent
    c.put("c", object(), nbytes=40)  # 120 > 100: b (least recent) goes
    assert "b" not in c and "a" in c and "c" in c
    assert c.total_bytes == 80 and len(c) == 2
    assert c.keys() == ["a", "c"] == list(c)


def test_sizes_from_nbytes_attribute_and_method() -> None:
    c = ByteLRU(10_000)
    arr = np.zeros((10, 10), np.float32)
    c.put("arr", arr)
    assert c.total_bytes == 400
    dets = Detections((8, 8), np.zeros((3, 4)), np.zeros(3), np.zeros(3), ("x",))
    c.put("dets", dets)
    assert c.total_bytes == 400 + dets.nbytes()
    with pytest.raises(TypeError, match="nbytes"):
        c.put("obj", object())


def test_oversized_entry_is_not_stored_and_replaces_nothing_else() -> None:
    c = ByteLRU(100)
    c.put("small", 1, nbytes=10)
    c.put("k", 1, nbytes=50)
    c.put("k", 2, nbytes=500)  # too big: the old value under k goes, small stays
    assert "k" not in c and c.get("small") == 1 and c.total_bytes == 10


def test_replacing_a_key_updates_its_size() -> None:
    c = ByteLRU(100)
    c.put("k", "v1", nbytes=60)
    c.put("k", "v2", nbytes=30)
    assert c.get("k") == "v2" and c.total_bytes == 30 and len(c) == 1
    assert c.pop("k") == "v2" and c.total_bytes == 0 and c.pop("k", "gone") == "gone"
    c.put("z", 1, nbytes=5)
    c.clear()
    assert len(c) == 0 and c.total_bytes == 0 and c.get("z", "miss") == "miss"


def test_matches_a_reference_model_on_random_operations() -> None:
    rng = random.Random(7)
    c = ByteLRU(1000)
    ref: list[tuple[int, int, int]] = []  # (key, value, size), least recent first
    for step in range(3000):
        key = rng.randrange(30)
        if rng.random() < 0.55:
            size = rng.randrange(0, 400)
            c.put(key, step, nbytes=size)
            ref = [e for e in ref if e[0] != key]
            if size <= 1000:
                ref.append((key, step, size))
                while sum(e[2] for e in ref) > 1000:
                    ref.pop(0)
        else:
            got = c.get(key)
            hit = [e for e in ref if e[0] == key]
            assert got == (hit[0][1] if hit else None)
            if hit:
                ref = [e for e in ref if e[0] != key] + hit
        assert c.keys() == [e[0] for e in ref]
        assert c.total_bytes == sum(e[2] for e in ref) <= 1000


def test_concurrent_puts_and_gets_keep_the_books_straight() -> None:
    c = ByteLRU(5000)
    errors: list[BaseException] = []

    def work(seed: int) -> None:
        rng = random.Random(seed)
        try:
            for _ in range(3000):
                k = rng.randrange(50)
                if rng.random() < 0.5:
                    size = rng.randrange(1, 500)
                    c.put(k, (k, size), nbytes=size)
                else:
                    v = c.get(k)
                    assert v is None or v[0] == k
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(s,)) for s in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert 0 < c.total_bytes <= 5000
    assert c.total_bytes == sum(c.get(k)[1] for k in c)


def test_negative_sizes_rejected() -> None:
    with pytest.raises(ValueError):
        ByteLRU(-1)
    with pytest.raises(ValueError):
        ByteLRU(10).put("k", 1, nbytes=-5)
