"""Middlebury .flo round trip, byte layout, and clear errors on bad files."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from segviewer.core.errors import BadDatasetError, SegviewerError
from segviewer.core.flo import read_flo, write_flo


def test_round_trip_is_exact_and_layout_is_middlebury(tmp_path) -> None:
    rng = np.random.default_rng(0)
    flow = rng.normal(0, 5, (7, 11, 2)).astype(np.float32)
    path = tmp_path / "a.flo"
    write_flo(path, flow)
    raw = path.read_bytes()
    assert raw[:4] == b"PIEH"
    assert struct.unpack("<fii", raw[:12]) == (202021.25, 11, 7)
    assert len(raw) == 12 + 7 * 11 * 8
    # u, v interleaved per pixel, row-major
    assert struct.unpack("<ff", raw[12:20]) == (float(flow[0, 0, 0]), float(flow[0, 0, 1]))
    back = read_flo(path)
    assert back.dtype == np.float32 and back.shape == (7, 11, 2)
    assert np.array_equal(back, flow)


def test_float64_input_is_stored_as_float32(tmp_path) -> None:
    flow = np.full((2, 3, 2), 1 / 3)
    write_flo(tmp_path / "b.flo", flow)
    assert np.array_equal(read_flo(tmp_path / "b.flo"), flow.astype(np.float32))


@pytest.mark.parametrize("data,match", [
    (b"", "too short"),
    (b"XXXX" + struct.pack("<ii", 2, 2) + bytes(32), "not a .flo"),
    (struct.pack("<fii", 202021.25, 2, 2) + bytes(31), "needs 44"),
    (struct.pack("<fii", 202021.25, -1, 2), "impossible size"),
])
def test_bad_files_raise_one_sentence(tmp_path, data: bytes, match: str) -> None:
    p = tmp_path / "bad.flo"
    p.write_bytes(data)
    with pytest.raises(BadDatasetError, match=match):
        read_flo(p)


def test_missing_file_and_bad_array(tmp_path) -> None:
    with pytest.raises(BadDatasetError, match="missing"):
        read_flo(tmp_path / "nope.flo")
    with pytest.raises(SegviewerError, match=r"\(H, W, 2\)"):
        write_flo(tmp_path / "c.flo", np.zeros((4, 4, 3)))
    assert not list(tmp_path.iterdir())
