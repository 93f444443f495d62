"""The thumbnail disk cache is capped: least recently used files (oldest mtime) go first, a
cache hit counts as a use, and opening a dataset prunes in the background."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from segviewer.ui.widgets.thumbnails import ThumbnailCache, make_thumbnail, prune_cache


def _files(folder: Path, n: int, size: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for k in range(n):
        p = folder / f"t{k:02d}.png"
        p.write_bytes(b"x" * size)
        os.utime(p, ns=(k * 10**9, (1000 + k) * 10**9))  # t00 the oldest
        out.append(p)
    return out


def test_prune_removes_the_oldest_until_under_the_cap(tmp_path: Path) -> None:
    files = _files(tmp_path / "c", 10, 1000)
    (tmp_path / "c" / "notes.txt").write_bytes(b"y" * 5000)  # not a thumbnail: never counted, never removed
    removed, left = prune_cache(tmp_path / "c", 4500)
    assert (removed, left) == (6, 4000)
    assert [p.exists() for p in files] == [False] * 6 + [True] * 4
    assert (tmp_path / "c" / "notes.txt").exists()
    assert prune_cache(tmp_path / "c", 4500) == (0, 4000)  # under the cap: nothing more
    assert prune_cache(tmp_path / "missing", 1) == (0, 0)


def test_a_cache_hit_makes_the_file_recent(tmp_path: Path) -> None:
    import cv2

    img = tmp_path / "img.png"
    cv2.imwrite(str(img), np.full((300, 200, 3), 90, np.uint8))
    cache = tmp_path / "cache"
    first = make_thumbnail(img, cache)
    assert first.shape == (128, 85, 3)
    (thumb,) = list(cache.glob("*.png"))
    others = _files(cache, 3, thumb.stat().st_size)  # newer than the thumbnail...
    os.utime(thumb, ns=(0, 0))  # ...which was last used long ago
    again = make_thumbnail(img, cache)  # a hit: read from disk, and touched
    assert np.array_equal(again, first) and thumb.stat().st_mtime_ns > others[-1].stat().st_mtime_ns
    prune_cache(cache, 2 * thumb.stat().st_size)
    assert thumb.exists() and sum(p.exists() for p in others) == 1


def test_opening_a_dataset_prunes_the_disk_cache(qtbot, tmp_path: Path) -> None:
    files = _files(tmp_path / "c", 8, 1000)
    cache = ThumbnailCache(tmp_path / "c", max_bytes=3000)
    cache.set_paths([])
    assert cache.wait(10_000)
    assert sum(p.exists() for p in files) == 3 and files[-1].exists()
