"""Video files and frame folders: metadata, random access, read-ahead, and every bad input."""

from __future__ import annotations

import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from segviewer.core.errors import SegviewerError
from segviewer.video.source import (
    FileVideoSource,
    FrameFolderSource,
    ReadAhead,
    VideoError,
    check_constant_rate,
    open_video,
)


def _frame(i: int, w: int = 64, h: int = 48) -> np.ndarray:
    img = np.zeros((h, w, 3), np.uint8)
    img[..., 0] = (i * 8) % 256
    img[:, (2 * i) % w : (2 * i) % w + 6] = (255, 255, 0)
    return img


def _write_video(path: Path, fourcc: str, n: int = 30, fps: float = 25.0) -> Path:
    wr = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (64, 48))
    assert wr.isOpened()
    for i in range(n):
        wr.write(cv2.cvtColor(_frame(i), cv2.COLOR_RGB2BGR))
    wr.release()
    return path


@pytest.mark.parametrize("name,fourcc", [("a.avi", "MJPG"), ("a.mp4", "mp4v"), ("a.mkv", "XVID")])
def test_file_metadata_and_random_access(tmp_path: Path, name: str, fourcc: str) -> None:
    src = open_video(_write_video(tmp_path / name, fourcc))
    assert isinstance(src, FileVideoSource)
    assert (len(src), src.size) == (30, (48, 64))
    assert src.fps == pytest.approx(25.0) and src.frame_time == pytest.approx(0.04)
    assert src.timestamp(10) == pytest.approx(0.4) and src.index_at(0.41) == 10
    seq = list(src)
    assert seq[0].dtype == np.uint8 and seq[0].shape == (48, 64, 3)
    # RGB, not BGR: the red channel carries the ramp
    assert abs(int(seq[5][0, 40, 0]) - 40) <= 6 and seq[5][0, 40, 2] <= 6
    for i in (17, 3, 29, 0, 18):
        np.testing.assert_array_equal(src.read(i), seq[i])
    with pytest.raises(VideoError, match="does not exist"):
        src.read(30)
    src.close()
    np.testing.assert_array_equal(src.read(12), seq[12])  # reopens after close


def test_frame_folder_in_natural_order(tmp_path: Path) -> None:
    for i in range(12):
        cv2.imwrite(str(tmp_path / f"frame_{i}.png"), cv2.cvtColor(_frame(i), cv2.COLOR_RGB2BGR))
    (tmp_path / "notes.txt").write_text("not a frame")
    src = open_video(tmp_path, fps=10)
    assert isinstance(src, FrameFolderSource)
    assert len(src) == 12 and src.frame_time == pytest.approx(0.1)
    for i in (0, 2, 10, 11):  # frame_10 after frame_9, not after frame_1
        np.testing.assert_array_equal(src[i], _frame(i))


def test_folder_with_a_frame_of_another_size(tmp_path: Path) -> None:
    for i in range(3):
        cv2.imwrite(str(tmp_path / f"f{i:03d}.png"), _frame(i))
    cv2.imwrite(str(tmp_path / "f003.jpg"), _frame(3, w=32))
    with pytest.raises(VideoError, match=r"f003.jpg is 32x48 but the first frame is 64x48"):
        FrameFolderSource(tmp_path)
    (tmp_path / "f003.jpg").unlink()
    cv2.imwrite(str(tmp_path / "f004.bmp"), _frame(3, h=20))  # no header check: caught on read
    src = FrameFolderSource(tmp_path)
    with pytest.raises(VideoError, match="all frames of a folder must have one size"):
        src.read(3)


def test_empty_folder_and_missing_path(tmp_path: Path) -> None:
    with pytest.raises(VideoError, match="holds no frames"):
        open_video(tmp_path)
    with pytest.raises(VideoError, match="does not exist"):
        open_video(tmp_path / "nope.mp4")


def test_not_a_video(tmp_path: Path) -> None:
    p = tmp_path / "notes.mp4"
    p.write_text("this is not a video at all, just some text to fill the file" * 3)
    with pytest.raises(VideoError, match="not a video"):
        open_video(p)
    (tmp_path / "zero.avi").write_bytes(b"")
    with pytest.raises(VideoError, match="empty"):
        open_video(tmp_path / "zero.avi")


@pytest.mark.parametrize("name,fourcc", [("e.avi", "MJPG"), ("e.mp4", "mp4v")])
def test_video_without_frames(tmp_path: Path, name: str, fourcc: str) -> None:
    p = _write_video(tmp_path / name, fourcc, n=0)
    with pytest.raises(VideoError, match="no frames"):
        open_video(p)


@pytest.mark.parametrize("name,fourcc", [("t.avi", "MJPG"), ("t.mp4", "mp4v")])
def test_truncated_file(tmp_path: Path, name: str, fourcc: str) -> None:
    p = _write_video(tmp_path / name, fourcc)
    data = p.read_bytes()
    p.write_bytes(data[: len(data) * 6 // 10])
    with pytest.raises(VideoError, match="truncated"):
        open_video(p)


def test_constant_rate_check() -> None:
    assert check_constant_rate([0, 40, 80, 120]) == pytest.approx(40)
    assert check_constant_rate([0, 33, 67, 100, 133, 167]) == pytest.approx(33.5, abs=0.6)  # 29.97 rounded
    with pytest.raises(VideoError, match="variable frame rate"):
        check_constant_rate([0, 40, 140, 180, 280])


def test_variable_frame_rate_file(tmp_path: Path) -> None:
    av = pytest.importorskip("av")
    from fractions import Fraction

    p = tmp_path / "vfr.mp4"
    out = av.open(str(p), "w")
    st = out.add_stream("mpeg4", rate=25)
    st.width, st.height, st.pix_fmt = 64, 48, "yuv420p"
    st.time_base = Fraction(1, 1000)
    t = 0
    for i in range(20):
        fr = av.VideoFrame.from_ndarray(_frame(i), format="rgb24")
        fr.pts, fr.time_base = t, Fraction(1, 1000)
        t += 40 if i % 2 == 0 else 100
        for pkt in st.encode(fr):
            out.mux(pkt)
    for pkt in st.encode():
        out.mux(pkt)
    out.close()
    with pytest.raises(VideoError, match="variable frame rate"):
        open_video(p)


def test_errors_are_segviewer_errors() -> None:
    assert issubclass(VideoError, SegviewerError)


def test_read_ahead_buffers_the_next_frames(tmp_path: Path) -> None:
    src = open_video(_write_video(tmp_path / "r.avi", "MJPG"))
    ref = [src.read(i) for i in range(30)]
    ready: list[int] = []
    ra = ReadAhead(src, depth=4, on_ready=ready.append)
    try:
        np.testing.assert_array_equal(ra.get(5), ref[5])
        deadline = time.monotonic() + 10
        while (ra.buffered() != [5, 6, 7, 8, 9] or not {6, 7, 8, 9} <= set(ready)) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert ra.buffered() == [5, 6, 7, 8, 9]
        assert {6, 7, 8, 9} <= set(ready)
        for i in (6, 7, 20, 21, 2):
            np.testing.assert_array_equal(ra.get(i), ref[i])
        assert all(2 <= k <= 6 for k in ra.buffered())  # the jump back dropped frames out of the window
    finally:
        ra.close()
    sync = ReadAhead(src, depth=2, start=False)
    np.testing.assert_array_equal(sync.get(29), ref[29])
    assert sync.buffered() == [29]
    with pytest.raises(VideoError):
        sync.get(30)


def test_the_bundled_sample_video_opens() -> None:
    asset = Path(__file__).resolve().parents[2] / "assets" / "video" / "video.mp4"
    if not asset.is_file():
        pytest.skip("assets/video/video.mp4 is not generated in this checkout")
    import json

    meta = json.loads((asset.parent / "video.json").read_text())
    with open_video(asset) as src:
        assert len(src) == meta["n_frames"] and src.fps == pytest.approx(meta["fps"])
        assert src.size == tuple(meta["size"])
        last = src.read(len(src) - 1)
        assert last.shape == (*meta["size"], 3)
