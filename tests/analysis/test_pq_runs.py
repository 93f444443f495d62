"""PQ from run-length id maps read straight from the PNG bytes: the runs equal libpng's decode,
the run-by-run pair histogram equals the per-pixel one (matrix, errors and messages), and
pq_compute gives identical numbers whichever path reads the files."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

import segviewer.analysis.matching as matchmod
import segviewer.analysis.pq as pqmod
import segviewer.core.panoptic_io as pio
from segviewer.analysis.matching import pair_counts
from segviewer.analysis.pq import pair_counts_runs, pq_compute
from segviewer.core.errors import BadDatasetError
from segviewer.core.panoptic_io import (
    IdRuns,
    id2rgb,
    read_panoptic_png,
    read_panoptic_runs,
    write_panoptic_png,
)

try:
    from .pq_files import make_panoptic_files
except ImportError:
    from pq_files import make_panoptic_files

pytestmark = pytest.mark.skipif(pio._inflate_fast is None, reason="zlib-ng is not installed: no runs path")


def _ids(h: int, w: int, seed: int) -> np.ndarray:
    """Piecewise-constant maps with ids over all three bytes, some void, and a noisy corner."""
    rng = np.random.default_rng(seed)
    ids = np.repeat(rng.integers(1, 50, (h, 1)), w, axis=1)
    for _ in range(15):
        y, x = int(rng.integers(0, h)), int(rng.integers(0, w))
        ids[y:y + int(rng.integers(1, h + 1)), x:x + int(rng.integers(1, w + 1))] = int(rng.integers(1, 256**3))
    ids[: h // 4, : w // 4] = rng.integers(0, 256**3, (h // 4, w // 4))
    ids[rng.random((h, w)) < 0.01] = 0
    return ids.astype(np.int32)


def _runs_of(ids: np.ndarray) -> IdRuns:
    flat = ids.reshape(-1).astype(np.int64)
    h, w = ids.shape
    change = np.r_[True, flat[1:] != flat[:-1]]
    change[::w] = True
    starts = np.flatnonzero(change)
    return IdRuns((h, w), starts, flat[starts])


@pytest.mark.parametrize("h,w,seed", [(1, 1, 0), (3, 7, 1), (48, 64, 2), (120, 333, 3)])
def test_runs_equal_libpng_on_opencv_written_pngs(tmp_path, h, w, seed) -> None:
    ids = _ids(h, w, seed)
    write_panoptic_png(tmp_path / "a.png", ids)
    runs = read_panoptic_runs(tmp_path / "a.png")
    assert runs is not None, "OpenCV writes None/Sub rows: the runs path must take them"
    assert runs.starts[0] == 0 and np.all(np.diff(runs.starts) > 0)
    assert set(range(0, h * w, w)) <= set(runs.starts.tolist())  # no run crosses a row end
    assert np.array_equal(runs.to_map(), ids) and np.array_equal(read_panoptic_png(tmp_path / "a.png"), ids)


def _png(rgb: np.ndarray, filters: list[int]) -> bytes:
    """An 8-bit RGB PNG with a chosen filter per row (0 None, 1 Sub), built by hand."""
    h, w, _ = rgb.shape
    rows = []
    for y in range(h):
        r = rgb[y].reshape(-1).astype(np.int16)
        if filters[y] == 1:
            r = r - np.concatenate([np.zeros(3, np.int16), r[:-3]])
        rows.append(bytes([filters[y]]) + (r % 256).astype(np.uint8).tobytes())

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"tEXt", b"a\x00b")
            + chunk(b"IDAT", zlib.compress(b"".join(rows), 9)) + chunk(b"IEND", b""))


def test_rows_filtered_none_and_other_encoders(tmp_path) -> None:
    ids = _ids(30, 40, 4)
    filters = [int(v) for v in np.random.default_rng(5).integers(0, 2, 30)]
    (tmp_path / "mixed.png").write_bytes(_png(id2rgb(ids), filters))
    assert np.array_equal(read_panoptic_runs(tmp_path / "mixed.png").to_map(), ids)
    assert np.array_equal(read_panoptic_png(tmp_path / "mixed.png"), ids)
    # PIL's adaptive filters (Up, Paeth...) go through libspng when pyspng is installed; RGBA and
    # palettes are left to libpng
    Image.fromarray(id2rgb(ids)).save(tmp_path / "pil.png")
    Image.fromarray(np.dstack([id2rgb(ids), np.full(ids.shape, 255, np.uint8)])).save(tmp_path / "rgba.png")
    Image.fromarray(id2rgb(ids % 5)).convert("P", palette=Image.Palette.ADAPTIVE, colors=5).save(tmp_path / "p.png")
    for name in ("rgba.png", "p.png"):
        assert read_panoptic_runs(tmp_path / name) is None, name
    pil = read_panoptic_runs(tmp_path / "pil.png")
    assert (pil is None) == (pio._spng is None)
    assert pil is None or np.array_equal(pil.to_map(), ids)
    # noise is no segmentation: left to libpng (and to per-pixel counting)
    noise = np.random.default_rng(6).integers(0, 256**3, (150, 200)).astype(np.int32)
    write_panoptic_png(tmp_path / "noise.png", noise)
    assert read_panoptic_runs(tmp_path / "noise.png") is None
    assert np.array_equal(read_panoptic_png(tmp_path / "noise.png"), noise)
    # broken bytes: None here, and the libpng path names the problem
    data = (tmp_path / "mixed.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    assert read_panoptic_runs(tmp_path / "cut.png") is None
    with pytest.raises(BadDatasetError, match="missing"):
        read_panoptic_runs(tmp_path / "nope.png")


def test_a_chunk_crc_error_is_refused_like_libpng(tmp_path: Path) -> None:
    """A corrupted IDAT CRC: libpng refuses the file, so the runs path must not score it."""
    gj, pj = make_panoptic_files(tmp_path)
    gt_dir = gj.with_suffix("")
    name = sorted(p.name for p in gt_dir.glob("*.png"))[0]
    data = bytearray((gt_dir / name).read_bytes())
    i = data.find(b"IDAT")
    length = int.from_bytes(data[i - 4:i], "big")
    data[i + 4 + length] ^= 0xFF  # the chunk's CRC, not its data
    (gt_dir / name).write_bytes(bytes(data))
    assert read_panoptic_runs(gt_dir / name) is None
    with pytest.raises(BadDatasetError, match=f"{name} is not a readable PNG"):
        read_panoptic_png(gt_dir / name)
    with pytest.raises(BadDatasetError, match=f"{name} is not a readable PNG"):
        pq_compute(gj, pj, workers=1)
    # an ancillary chunk's CRC error is only a warning to libpng: the runs path reads on, the same
    ids = _ids(12, 20, 3)
    png = bytearray(_png(id2rgb(ids), [1] * 12))
    j = png.find(b"tEXt")
    png[j + 4 + int.from_bytes(png[j - 4:j], "big")] ^= 0xFF
    (tmp_path / "text.png").write_bytes(bytes(png))
    runs = read_panoptic_runs(tmp_path / "text.png")
    assert runs is None or np.array_equal(runs.to_map(), ids)
    assert np.array_equal(read_panoptic_png(tmp_path / "text.png"), ids)


def _filtered_png(rgb: np.ndarray, filters: list[int]) -> bytes:
    """An 8-bit RGB PNG with any filter per row (0 None, 1 Sub, 2 Up, 3 Average, 4 Paeth)."""
    h, w, _ = rgb.shape
    cur = rgb.reshape(h, -1).astype(np.int16)
    out = []
    for y in range(h):
        x = cur[y]
        a = np.concatenate([np.zeros(3, np.int16), x[:-3]])
        b = cur[y - 1] if y else np.zeros_like(x)
        c = np.concatenate([np.zeros(3, np.int16), b[:-3]])
        pa, pb, pc = np.abs(b - c), np.abs(a - c), np.abs(a + b - 2 * c)
        pred = [0, a, b, (a + b) // 2, np.where((pa <= pb) & (pa <= pc), a, np.where(pb <= pc, b, c))][filters[y]]
        out.append(bytes([filters[y]]) + ((x - pred) % 256).astype(np.uint8).tobytes())

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"".join(out), 6))
            + chunk(b"IEND", b""))


@pytest.mark.skipif(pio._spng is None, reason="pyspng is not installed: adaptive filters go to libpng")
@pytest.mark.parametrize("seed", range(3))
def test_every_row_filter_reads_as_libpng_does(tmp_path: Path, seed: int) -> None:
    """PIL's files (and panopticapi's) mix Up, Average and Paeth rows: the runs and the dense map
    equal libpng's decode, whatever filter each row uses, void rows and 1-pixel images included."""
    rng = np.random.default_rng(seed)
    for h, w in ((1, 1), (5, 1), (1, 9), (37, 53)):
        ids = _ids(h, w, seed)
        ids[: h // 3] = 0
        filters = [int(v) for v in rng.integers(0, 5, h)]
        (tmp_path / "f.png").write_bytes(_filtered_png(id2rgb(ids), filters))
        want = cv2.imread(str(tmp_path / "f.png"))[..., ::-1]
        assert np.array_equal(id2rgb(ids), want)  # the file is what libpng says it is
        runs = read_panoptic_runs(tmp_path / "f.png")
        assert runs is not None and np.array_equal(runs.to_map(), ids), (h, w, filters)
        assert np.array_equal(read_panoptic_png(tmp_path / "f.png"), ids)
    Image.fromarray(id2rgb(_ids(60, 80, seed))).save(tmp_path / "pil.png")
    assert np.array_equal(read_panoptic_runs(tmp_path / "pil.png").to_map(), _ids(60, 80, seed))


def test_without_pyspng_adaptive_files_go_to_libpng(tmp_path: Path, monkeypatch) -> None:
    ids = _ids(60, 80, 7)
    Image.fromarray(id2rgb(ids)).save(tmp_path / "pil.png")
    write_panoptic_png(tmp_path / "cv.png", ids)
    monkeypatch.setattr(pio, "_spng", None)
    assert read_panoptic_runs(tmp_path / "pil.png") is None
    assert np.array_equal(read_panoptic_png(tmp_path / "pil.png"), ids)
    assert np.array_equal(read_panoptic_runs(tmp_path / "cv.png").to_map(), ids)  # no libspng needed


def test_runs_of_map_equal_numpy() -> None:
    for h, w, seed in ((1, 1, 0), (4, 1, 1), (1, 7, 2), (40, 50, 3)):
        ids = _ids(h, w, seed)
        want = _runs_of(ids)
        for m in (ids, ids.astype(np.int64), ids.astype(np.uint32)):
            got = pio.runs_of_map(m)
            assert np.array_equal(got.starts, want.starts) and np.array_equal(got.ids, want.ids)
    big = np.array([[2**40, 2**40, 1]], np.int64)  # not a panoptic id, still counted right
    assert pio.runs_of_map(big).ids.tolist() == [2**40, 1]


@pytest.mark.parametrize("seed", range(4))
def test_pair_counts_from_runs_equal_per_pixel(seed) -> None:
    rng = np.random.default_rng(seed)
    g = _ids(40, 50, seed)
    p = np.where(rng.random(g.shape) < 0.9, g, np.roll(g, 3, axis=1)).astype(np.int32)
    gids, pids = np.unique(g[g > 0]), np.unique(p[p > 0])
    ref = pair_counts(g, gids, p, pids, where="x")
    got = pair_counts_runs(_runs_of(g), gids, _runs_of(p), pids, where="x")
    assert np.array_equal(got.matrix, ref.matrix)
    assert np.array_equal(got.gt_ids, ref.gt_ids) and np.array_equal(got.pred_ids, ref.pred_ids)


@pytest.mark.parametrize("edit", ["extra_in_png", "absent_from_png", "duplicate", "void_id", "size"])
def test_pair_counts_from_runs_refuse_like_per_pixel(edit) -> None:
    g = _ids(20, 30, 9)
    p = g.copy()
    gids, pids = np.unique(g[g > 0]), np.unique(p[p > 0])
    if edit == "extra_in_png":
        pids = pids[1:]
    elif edit == "absent_from_png":
        pids = np.append(pids, 16777000)
    elif edit == "duplicate":
        pids = np.append(pids, pids[0])
    elif edit == "void_id":
        pids = np.append(pids, 0)
    elif edit == "size":
        p = p[:, :-1]
    with pytest.raises(BadDatasetError) as ref:
        pair_counts(g, gids, p, pids, where="image 3")
    with pytest.raises(BadDatasetError) as got:
        pair_counts_runs(_runs_of(g), gids, _runs_of(p), pids, where="image 3")
    assert str(got.value) == str(ref.value)


def test_both_pair_counts_share_one_listed_ids_check(monkeypatch) -> None:
    """The 'in the PNG but not listed / listed but not in the PNG' check is one function in
    matching, called by the per-pixel and the run-by-run counts alike."""
    g = _ids(20, 30, 9)
    ids = np.unique(g[g > 0])
    calls: list[str] = []
    real = matchmod.check_listed_ids

    def spy(matrix, gt_ids, pred_ids, gt_values, pred_values, where):
        calls.append(where)
        return real(matrix, gt_ids, pred_ids, gt_values, pred_values, where)

    monkeypatch.setattr(matchmod, "check_listed_ids", spy)
    monkeypatch.setattr(pqmod, "check_listed_ids", spy)
    pair_counts(g, ids, g, ids, where="pixels")
    pair_counts(g, ids, g, ids, where="lenient", strict=False)
    pair_counts_runs(_runs_of(g), ids, _runs_of(g), ids, where="runs")
    assert calls == ["pixels", "runs"]
    with pytest.raises(BadDatasetError, match=r"^x: ground-truth segment id 5 is in the JSON segments_info but"):
        real(np.array([[0, 4, 0], [0, 0, 0], [0, 0, 0]]), np.array([5]), np.array([6]), g, g, "x")


def test_pq_compute_is_identical_through_either_path(tmp_path: Path, monkeypatch) -> None:
    gj, pj = make_panoptic_files(tmp_path)
    calls: list[bool] = []
    real = pqmod.read_panoptic_ids

    def counting(path):
        r = real(path)
        calls.append(isinstance(r, IdRuns))
        return r

    monkeypatch.setattr(pqmod, "read_panoptic_ids", counting)
    fast = pq_compute(gj, pj, workers=1)
    assert calls and all(calls), "these files were written by OpenCV: every one reads as runs"
    monkeypatch.setattr(pqmod, "read_panoptic_ids", read_panoptic_png)
    plain = pq_compute(gj, pj, workers=1)
    assert fast == plain  # the very same floats, not merely close
    # the same maps written by PIL (adaptive filters): dense maps, the same numbers again
    for side in (gj.with_suffix(""), pj.with_suffix("")):
        for png in side.glob("*.png"):
            Image.fromarray(id2rgb(read_panoptic_png(png))).save(png)
    monkeypatch.setattr(pqmod, "read_panoptic_ids", real)
    assert pq_compute(gj, pj, workers=1) == plain
    # and mixed: ground truth from PIL, predictions from OpenCV
    for png in pj.with_suffix("").glob("*.png"):
        write_panoptic_png(png, read_panoptic_png(png))
    assert pq_compute(gj, pj, workers=2) == plain


def test_read_panoptic_ids_picks_the_cheapest_exact_form(tmp_path: Path, monkeypatch) -> None:
    ids = _ids(30, 40, 11)
    write_panoptic_png(tmp_path / "cv.png", ids)
    Image.fromarray(id2rgb(ids)).save(tmp_path / "pil.png")
    Image.fromarray(np.dstack([id2rgb(ids), np.full(ids.shape, 255, np.uint8)])).save(tmp_path / "rgba.png")
    cv, pil, rgba = (pio.read_panoptic_ids(tmp_path / n) for n in ("cv.png", "pil.png", "rgba.png"))
    assert isinstance(cv, IdRuns) and np.array_equal(cv.to_map(), ids)
    assert isinstance(pil, np.ndarray) and pil.dtype == np.int32 and np.array_equal(pil, ids)
    assert isinstance(rgba, np.ndarray) and np.array_equal(rgba, ids)  # libpng
    with pytest.raises(BadDatasetError, match="missing"):
        pio.read_panoptic_ids(tmp_path / "nope.png")


@pytest.mark.parametrize("seed", range(3))
def test_dense_pair_counts_equal_per_pixel(seed) -> None:
    """pair_counts' run path (OpenCV compares for int32 maps) equals the per-pixel histogram."""
    rng = np.random.default_rng(seed)
    for h, w in ((1, 1), (3, 1), (1, 6), (40, 50)):
        g = _ids(h, w, seed)
        p = np.where(rng.random(g.shape) < 0.9, g, np.roll(g, 1, axis=1)).astype(np.int32)
        gids, pids = np.unique(g[g > 0]), np.unique(p[p > 0])
        want = matchmod._count_pixels(g, gids, p, pids, matchmod.IdIndexer())
        for a, b in ((g, p), (g.astype(np.int64), p.astype(np.int64))):
            got = matchmod._count_runs(a, gids, b, pids)
            assert got is None or np.array_equal(got, want)
        assert np.array_equal(pair_counts(g, gids, p, pids).matrix, want)


_FORKED = """
import json, sys
import segviewer.analysis.pq as pqmod
from segviewer.core.errors import BadDatasetError
gj, pj, broken = sys.argv[1:4]
forks = []
real = pqmod._forked_stats
def spy(*a, **k):
    forks.append(1)
    yield from real(*a, **k)
pqmod._forked_stats = spy
one = pqmod.pq_compute(gj, pj, workers=1)
same = pqmod.pq_compute(gj, pj, workers=2, processes=True) == one
open(broken, "wb").write(b"not a png")
msgs = []
for kw in ({"workers": 1}, {"workers": 2, "processes": True}):
    try:
        pqmod.pq_compute(gj, pj, **kw)
    except BadDatasetError as err:
        msgs.append(str(err))
import os
parent, real_stats = os.getpid(), pqmod.pair_stats
def dying(*a, **k):  # a child killed mid-run
    if os.getpid() != parent:
        os._exit(1)
    return real_stats(*a, **k)
pqmod.pair_stats = dying
try:
    pqmod.pq_compute(gj, pj, workers=2, processes=True)
    died = "no error"
except RuntimeError as err:
    died = str(err)
print(json.dumps({"same": same, "forks": len(forks), "msgs": msgs, "died": died}))
"""


def test_forked_workers_give_the_same_numbers_and_errors(tmp_path: Path, monkeypatch) -> None:
    """``segviewer eval``'s way (forked worker processes), in a fresh interpreter (one thread, as
    the command runs): the very same floats as one thread, and a worker's refusal surfaces with
    its own message. With another thread running it stays in threads (a fork would copy that
    thread's held locks)."""
    import json
    import subprocess
    import sys
    import threading

    gj, pj = make_panoptic_files(tmp_path)
    gt_dir = gj.with_suffix("")
    name = sorted(p.name for p in gt_dir.glob("*.png"))[-1]
    out = subprocess.run([sys.executable, "-c", _FORKED, str(gj), str(pj), str(gt_dir / name)],
                         capture_output=True, text=True, timeout=120, check=True)
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["same"] and got["forks"] == 3  # the very same floats; forked every time
    assert len(got["msgs"]) == 2 and got["msgs"][0] == got["msgs"][1] and name in got["msgs"][0]
    assert got["died"] == "a PQ worker process died"  # a killed child is an error, not missing images
    forks: list[int] = []
    monkeypatch.setattr(pqmod, "_forked_stats", lambda *a, **k: forks.append(1) or [])
    stop = threading.Event()
    other = threading.Thread(target=stop.wait)
    other.start()
    try:
        with pytest.raises(BadDatasetError, match=name):
            pq_compute(gj, pj, workers=2, processes=True)
    finally:
        stop.set()
        other.join()
    assert forks == []  # threads, not a fork, while another thread ran
