"""``segviewer synth`` end to end through the real CLI entry point."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from segviewer.cli import main


def test_synth_scenes_and_video(tmp_path: Path, capsys) -> None:
    assert main(["synth", "scenes", "--out", str(tmp_path / "s"), "--n", "3", "--seed", "4", "--size", "48x64"]) == 0
    out = capsys.readouterr()
    assert "wrote 3 scenes" in out.out and "scenes 3/3" in out.err
    assert len(list((tmp_path / "s" / "images").glob("*.png"))) == 3
    doc = json.loads((tmp_path / "s" / "annotations" / "instances.json").read_text())
    assert doc["images"][0]["height"] == 48 and doc["images"][0]["width"] == 64
    assert main(["synth", "video", "--out", str(tmp_path / "v"), "--frames", "3", "--seed", "1",
                 "--size", "32x48", "--no-frames"]) == 0
    assert "wrote 3 frames (2 flow files" in capsys.readouterr().out
    assert (tmp_path / "v" / "video.mp4").is_file() and not (tmp_path / "v" / "frames").exists()


@pytest.mark.parametrize("argv", [
    ["synth", "scenes", "--out", "x", "--n", "0"],
    ["synth", "scenes", "--out", "x", "--n", "2", "--size", "64"],
    ["synth", "video", "--out", "x", "--frames", "2", "--size", "8x8"],
])
def test_bad_arguments_exit_with_usage_error(argv: list[str], capsys) -> None:
    with pytest.raises(SystemExit) as err:
        main(argv)
    assert err.value.code == 2
    assert "error:" in capsys.readouterr().err


def test_bad_output_is_one_line(tmp_path: Path, capsys) -> None:
    (tmp_path / "f").write_text("x")
    assert main(["synth", "scenes", "--out", str(tmp_path / "f"), "--n", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("segviewer: ") and "not a folder" in err[-1]


@pytest.mark.parametrize("what", [["scenes", "--n", "1"], ["video", "--frames", "2", "--no-frames"]])
def test_out_under_a_regular_file_is_one_line(tmp_path: Path, capsys, what: list[str]) -> None:
    (tmp_path / "f").write_text("x")
    assert main(["synth", what[0], "--out", str(tmp_path / "f" / "data"), *what[1:], "--size", "32x32"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is a file, not a folder" in err[0] and str(tmp_path / "f") in err[0]


def test_a_full_disk_is_one_line_and_leaves_no_partial_file(tmp_path: Path, capsys, monkeypatch) -> None:
    import errno
    import os

    real_write = Path.write_bytes
    calls = []

    def full(self: Path, data: bytes) -> int:
        calls.append(self)
        if len(calls) == 3:  # the third file: the disk fills up half way through it
            real_write(self, data[: len(data) // 2])
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_write(self, data)

    monkeypatch.setattr(Path, "write_bytes", full)
    assert main(["synth", "scenes", "--out", str(tmp_path / "s"), "--n", "2", "--size", "32x32"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert "no space left" in err[-1].lower() and "Traceback" not in "\n".join(err)
    assert not [p for p in (tmp_path / "s").rglob("*") if p.is_file() and "part" in p.name]
