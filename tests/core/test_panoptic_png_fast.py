"""The fast panoptic PNG decoder (zlib-ng + vectorised Sub filter) equals OpenCV's decode, and every
PNG it does not cover (PIL's adaptive filters, palettes, RGBA, truncation) falls back correctly."""

from __future__ import annotations

import struct
import zlib

import cv2
import numpy as np
import pytest
from PIL import Image

from segviewer.core.errors import BadDatasetError
from segviewer.core.panoptic_io import _decode_sub_png, id2rgb, read_panoptic_png, rgb2id, write_panoptic_png


def _ids(h: int, w: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    ids = np.repeat(rng.integers(1, 50, (h, 1)), w, axis=1)
    for _ in range(12):  # blocks of large ids so every byte of the packing is exercised
        y, x = int(rng.integers(0, h)), int(rng.integers(0, w))
        ids[y:y + int(rng.integers(1, h + 1)), x:x + int(rng.integers(1, w + 1))] = int(rng.integers(1, 256**3))
    ids[rng.random((h, w)) < 0.02] = 0
    return ids.astype(np.int32)


def _png(rgb: np.ndarray, filters: list[int]) -> bytes:
    """An 8-bit RGB PNG with the given filter byte per row (0 None, 1 Sub), built by hand."""
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
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"".join(rows), 9))
            + chunk(b"IEND", b""))


@pytest.mark.parametrize("h,w,seed", [(1, 1, 0), (7, 5, 1), (48, 64, 2), (31, 333, 3)])
def test_opencv_written_pngs_take_the_fast_path_and_equal_opencv(tmp_path, h, w, seed) -> None:
    ids = _ids(h, w, seed)
    write_panoptic_png(tmp_path / "a.png", ids)
    data = (tmp_path / "a.png").read_bytes()
    fast = _decode_sub_png(data)
    assert fast is not None, "OpenCV writes None/Sub filtered rows: the fast path must take them"
    ref = rgb2id(cv2.imread(str(tmp_path / "a.png"), cv2.IMREAD_COLOR_RGB))
    assert fast.dtype == np.int32 and fast.shape == (h, w)
    assert np.array_equal(fast, ref) and np.array_equal(fast, ids)
    assert np.array_equal(read_panoptic_png(tmp_path / "a.png"), ids)


def test_mixed_none_and_sub_rows(tmp_path) -> None:
    ids = _ids(20, 30, 4)
    filters = [int(v) for v in np.random.default_rng(5).integers(0, 2, 20)]
    assert 0 in filters and 1 in filters
    data = _png(id2rgb(ids), filters)
    assert np.array_equal(_decode_sub_png(data), ids)
    (tmp_path / "m.png").write_bytes(data)
    assert np.array_equal(rgb2id(cv2.imread(str(tmp_path / "m.png"), cv2.IMREAD_COLOR_RGB)), ids)


def test_other_pngs_fall_back_to_opencv_with_the_same_ids(tmp_path) -> None:
    ids = _ids(40, 50, 6)
    rgb = id2rgb(ids)
    Image.fromarray(rgb).save(tmp_path / "pil.png")  # PIL: adaptive filters (Up, Paeth...)
    Image.fromarray(np.dstack([rgb, np.full(ids.shape, 255, np.uint8)])).save(tmp_path / "rgba.png")
    for name in ("pil.png", "rgba.png"):
        assert np.array_equal(read_panoptic_png(tmp_path / name), ids), name
    assert _decode_sub_png((tmp_path / "rgba.png").read_bytes()) is None


def test_truncated_or_corrupt_pngs_give_one_sentence(tmp_path) -> None:
    ids = _ids(30, 30, 7)
    write_panoptic_png(tmp_path / "a.png", ids)
    data = (tmp_path / "a.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    assert _decode_sub_png(data[: len(data) // 2]) is None
    with pytest.raises(BadDatasetError, match="cut.png"):
        read_panoptic_png(tmp_path / "cut.png")
    idat = data.index(b"IDAT")
    bad = bytearray(data)
    bad[idat + 10: idat + 30] = b"\x00" * 20  # corrupt the deflate stream
    assert _decode_sub_png(bytes(bad)) is None
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(BadDatasetError, match="not a readable PNG"):
        read_panoptic_png(tmp_path / "empty.png")
    with pytest.raises(BadDatasetError, match="missing"):
        read_panoptic_png(tmp_path / "nope.png")


def test_row_bands_give_the_same_ids(tmp_path, monkeypatch) -> None:
    """Large images are summed in bands of rows (int32 integral sums must not overflow)."""
    import segviewer.core.panoptic_io as pio

    ids = _ids(37, 21, 8)
    write_panoptic_png(tmp_path / "a.png", ids)
    monkeypatch.setattr(pio, "_BAND_PIXELS", 3 * 21 * 4)  # 4 rows per band
    assert np.array_equal(pio._decode_sub_png((tmp_path / "a.png").read_bytes()), ids)
