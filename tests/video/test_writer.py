"""The .mp4 writer: H.264 that PyAV and OpenCV read back, the mp4v fallback and its message, atomicity."""

from __future__ import annotations

import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from segviewer.core.errors import SegviewerError
from segviewer.video import writer as writer_mod
from segviewer.video.source import open_video
from segviewer.video.writer import Mp4Writer, frame_rate

av = pytest.importorskip("av")


def _frame(i: int, h: int = 48, w: int = 64) -> np.ndarray:
    """Smooth gradients that move (lossy codecs keep them close) and a flat block."""
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.empty((h, w, 3), np.uint8)
    img[..., 0] = xx * 3 + 5 * i
    img[..., 1] = yy * 255 // max(h - 1, 1)
    img[..., 2] = 90
    img[8:24, 8:24] = (200, 40, 160)
    return img


def _decode(path: Path) -> tuple[dict, list[np.ndarray], list[float]]:
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        frames = list(c.decode(s))
        info = {"codec": s.codec_context.name, "rate": s.average_rate, "w": s.width, "h": s.height,
                "pix_fmt": s.codec_context.pix_fmt}
        return info, [f.to_ndarray(format="rgb24") for f in frames], [float(f.time) for f in frames]


def test_h264_round_trip(tmp_path: Path) -> None:
    out = tmp_path / "clip.mp4"
    frames = [_frame(i) for i in range(10)]
    with Mp4Writer(out, 12.0) as w:
        for f in frames:
            w.write(f)
            assert not out.exists(), "the target appears only when the file is complete"
    assert w.codec == "h264" and w.note is None
    info, got, times = _decode(out)
    assert info["codec"] == "h264" and info["pix_fmt"] == "yuv420p"
    assert (info["w"], info["h"]) == (64, 48) and info["rate"] == 12
    assert len(got) == 10
    assert np.allclose(times, np.arange(10) / 12.0)
    for a, b in zip(got, frames):
        diff = np.abs(a.astype(int) - b)
        assert diff.mean() < 3 and np.percentile(diff, 99) < 20
    # the app's own reader (OpenCV) plays it at the same rate
    src = open_video(out)
    assert src.frame_count == 10 and src.size == (48, 64) and abs(src.fps - 12.0) < 1e-6
    assert np.abs(src.read(7).astype(int) - frames[7]).mean() < 3
    assert [p.name for p in tmp_path.iterdir()] == ["clip.mp4"]


def test_odd_size_is_padded_and_ntsc_rate_is_exact(tmp_path: Path) -> None:
    out = tmp_path / "odd.mp4"
    frames = [_frame(i, 47, 63) for i in range(4)]
    with Mp4Writer(out, 30000 / 1001) as w:
        for f in frames:
            w.write(f)
    info, got, times = _decode(out)
    assert (info["w"], info["h"]) == (64, 48)
    assert info["rate"] == Fraction(30000, 1001)
    assert np.allclose(times, np.arange(4) * 1001 / 30000)
    assert np.abs(got[2][:47, :63].astype(int) - frames[2]).mean() < 3
    assert np.abs(got[2][47, :63].astype(int) - frames[2][46]).mean() < 6  # padding repeats the edge
    assert frame_rate(12.5) == Fraction(25, 2) and frame_rate(12) == 12


def test_key_frame_interval(tmp_path: Path) -> None:
    out = tmp_path / "gop.mp4"
    with Mp4Writer(out, 10, gop=4) as w:
        for i in range(10):
            w.write(_frame(i))
    with av.open(str(out)) as c:
        keys = [f.key_frame for f in c.decode(video=0)]
    assert [i for i, k in enumerate(keys) if k] == [0, 4, 8]


def _assert_mp4v(out: Path, frames: list[np.ndarray]) -> None:
    info, got, _ = _decode(out)  # the module imported above, even while `import av` is made to fail
    assert info["codec"] == "mpeg4" and len(got) == len(frames)
    assert np.abs(got[1].astype(int) - frames[1]).mean() < 8
    src = open_video(out)
    assert src.frame_count == len(frames) and abs(src.fps - 12.0) < 1e-6


def test_falls_back_to_mp4v_without_pyav(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "av", None)  # `import av` now raises ImportError
    out = tmp_path / "fallback.mp4"
    frames = [_frame(i) for i in range(5)]
    with Mp4Writer(out, 12) as w:
        for f in frames:
            w.write(f)
    assert w.codec == "mpeg4"
    assert "PyAV is not installed" in w.note and "mp4v" in w.note and "browsers" in w.note
    _assert_mp4v(out, frames)


def test_falls_back_without_an_h264_encoder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(writer_mod, "H264_ENCODERS", ("no_such_h264_encoder",))
    out = tmp_path / "fallback.mp4"
    frames = [_frame(i) for i in range(3)]
    with Mp4Writer(out, 12) as w:
        for f in frames:
            w.write(f)
    assert w.codec == "mpeg4" and "no H.264 encoder" in w.note
    _assert_mp4v(out, frames)


def test_an_error_leaves_nothing_and_keeps_the_old_file(tmp_path: Path) -> None:
    out = tmp_path / "keep.mp4"
    out.write_bytes(b"old")
    with pytest.raises(RuntimeError), Mp4Writer(out, 12) as w:
        w.write(_frame(0))
        raise RuntimeError("the caller failed mid-way")
    assert out.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["keep.mp4"]
    w2 = Mp4Writer(out, 12)
    w2.write(_frame(0))
    with pytest.raises(SegviewerError, match="96x48; the video is 64x48"):
        w2.write(np.zeros((48, 96, 3), np.uint8))
    with pytest.raises(SegviewerError, match="RGB uint8"):
        w2.write(np.zeros((48, 64), np.uint8))
    w2.abort()
    assert [p.name for p in tmp_path.iterdir()] == ["keep.mp4"]


def test_bad_targets_are_one_line_errors(tmp_path: Path) -> None:
    with pytest.raises(SegviewerError, match="no frames"), Mp4Writer(tmp_path / "empty.mp4", 12):
        pass
    assert not list(tmp_path.iterdir())
    with pytest.raises(SegviewerError, match="another extension"):
        Mp4Writer(tmp_path / "x.avi", 12)
    with pytest.raises(SegviewerError, match="positive frame rate"):
        Mp4Writer(tmp_path / "x.mp4", 0)
    (tmp_path / "file").write_text("")
    with pytest.raises(SegviewerError, match="cannot write"):
        Mp4Writer(tmp_path / "file" / "x.mp4", 12)


def test_synth_video_is_h264_and_refuses_odd_sizes(tmp_path: Path) -> None:
    from segviewer.synth.video_files import write_video

    res = write_video(tmp_path / "clip", seed=1, n_frames=4, size=(32, 48), flow_every=0, frames_png=False)
    assert res.codec == "h264" and res.note is None
    info, got, _ = _decode(tmp_path / "clip" / "video.mp4")
    assert info["codec"] == "h264" and len(got) == 4 and got[0].shape == (32, 48, 3)
    assert not [p for p in (tmp_path / "clip").iterdir() if "part" in p.name]
    with pytest.raises(SegviewerError, match="even height and width, got 33x48"):
        write_video(tmp_path / "odd", seed=1, n_frames=2, size=(33, 48))
    assert not (tmp_path / "odd").exists()
