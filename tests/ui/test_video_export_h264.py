"""The window's annotated-video export writes H.264 (browsers play it), and says so when it
cannot and falls back to mp4v. The real bundled shapes FCN on a tiny generated clip."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from segviewer.synth.video import generate_video
from segviewer.ui.features._video_engine import EngineConfig, VideoEngine
from segviewer.video.writer import Mp4Writer

av = pytest.importorskip("av")
TIMEOUT = 120_000


def _codec_and_frames(path: Path) -> tuple[str, int]:
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        return s.codec_context.name, sum(1 for _ in c.decode(s))


def test_export_is_h264_and_the_fallback_says_why(qtbot, tmp_path: Path, monkeypatch) -> None:
    clip = tmp_path / "clip.mp4"
    with Mp4Writer(clip, 10, prefer_h264=False) as w:  # an mp4v source, as phones and old tools write
        for f in generate_video(3, 6, (96, 128)):
            w.write(f.image)
    engine = VideoEngine(clip, EngineConfig(model="shapes_fcn", interval=3, reference=False))
    try:
        out = tmp_path / "annotated.mp4"
        with qtbot.waitSignal(engine.jobFinished, timeout=TIMEOUT) as blocker:
            assert engine.start_job("export", out)
        assert blocker.args == ["export", False, str(out)]
        assert _codec_and_frames(out) == ("h264", 6)

        monkeypatch.setitem(sys.modules, "av", None)  # PyAV missing: mp4v, and the status line says why
        old = tmp_path / "annotated_mp4v.mp4"
        with qtbot.waitSignal(engine.jobFinished, timeout=TIMEOUT) as blocker:
            assert engine.start_job("export", old)
        what, cancelled, detail = blocker.args
        assert (what, cancelled) == ("export", False)
        assert detail.startswith(str(old)) and "PyAV is not installed" in detail and "mp4v" in detail
        monkeypatch.undo()
        assert _codec_and_frames(old) == ("mpeg4", 6)
        assert sorted(p.name for p in tmp_path.iterdir()) == ["annotated.mp4", "annotated_mp4v.mp4", "clip.mp4"]
    finally:
        assert engine.close()
