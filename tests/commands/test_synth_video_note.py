"""``segviewer synth video`` says why the clip is not H.264 when the writer fell back to mp4v."""

from __future__ import annotations

from pathlib import Path

import pytest

from segviewer.cli import main
from segviewer.video import writer as writer_mod


def _video(tmp_path: Path) -> list[str]:
    return ["synth", "video", "--out", str(tmp_path / "clip"), "--frames", "2", "--size", "32x48",
            "--flow-every", "0", "--no-frames"]


def test_fallback_note_is_printed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(writer_mod, "H264_ENCODERS", ("no_such_h264_encoder",))
    assert main(_video(tmp_path)) == 0
    err = capsys.readouterr().err
    assert "no H.264 encoder" in err and "mp4v" in err and "video.mp4" in err
    assert (tmp_path / "clip" / "video.mp4").is_file()


def test_no_note_when_h264_was_written(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    if writer_mod.h264_encoder()[0] is None:
        pytest.skip("this machine has no H.264 encoder (PyAV missing or without libx264)")
    assert main(_video(tmp_path)) == 0
    assert "mp4v" not in capsys.readouterr().err
