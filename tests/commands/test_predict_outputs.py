"""``segviewer predict``: one failing image is skipped, output names keep relative paths, earlier
outputs are not overwritten silently, output-path failures are one line, and loading a bundled
model prints no download progress (issue #10)."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import cv2
import numpy as np
import pytest

from segviewer.cli import main
from segviewer.core.fileio import write_image_atomic

pytestmark = pytest.mark.usefixtures("offline_one_thread")  # tests/commands/conftest.py


def _img(h: int = 48, w: int = 64, value: int = 90) -> np.ndarray:
    img = np.full((h, w, 3), value, np.uint8)
    cv2.circle(img, (w // 3, h // 2), h // 4, (230, 40, 40), -1)
    return img


def _predict(*argv: str) -> int:
    return main(["predict", "--model", "shapes_fcn", "--device", "cpu", *argv])


def _files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def test_a_model_error_on_one_image_is_reported_and_the_rest_are_written(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from segviewer.adapters.shapes import ShapesFCN

    src = tmp_path / "in"
    for name, h in (("a.png", 48), ("b.png", 40), ("c.png", 48)):
        write_image_atomic(src / name, _img(h))
    real = ShapesFCN.predict

    def flaky(self, image, params=None, timings=None):  # noqa: ANN001, ANN202 - mirrors the adapter
        if image.shape[0] == 40:
            raise RuntimeError("CUDA out of memory (simulated)\nsecond line of the message")
        return real(self, image, params, timings)

    monkeypatch.setattr(ShapesFCN, "predict", flaky)
    out = tmp_path / "out"
    assert _predict("--out", str(out), str(src)) == 1
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if "b.png" in ln]
    assert len(lines) == 1 and "RuntimeError: CUDA out of memory (simulated); skipped" in lines[0]
    assert "second line" not in err and "Traceback" not in err
    assert "1 of 3 input(s) failed" in err.splitlines()[-1]
    assert {"a_labels.png", "a_overlay.png", "c_labels.png", "c_overlay.png"} <= set(_files(out))
    assert not list(out.glob("b_*"))


def test_same_file_names_from_two_folders_keep_their_relative_paths(tmp_path: Path) -> None:
    for sub, v in (("x", 60), ("y", 200)):
        write_image_atomic(tmp_path / "in" / sub / "img.png", _img(value=v))
    out = tmp_path / "out"
    assert _predict("--out", str(out), str(tmp_path / "in" / "x"), str(tmp_path / "in" / "y" / "img.png")) == 0
    assert _files(out) == ["categories.json", "x/img_labels.png", "x/img_overlay.png",
                           "y/img_labels.png", "y/img_overlay.png"]
    a, b = (cv2.imread(str(out / s / "img_overlay.png")) for s in ("x", "y"))
    assert not np.array_equal(a, b)  # each kept its own image


def test_a_second_run_into_the_same_out_is_refused_without_overwrite(tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    write_image_atomic(tmp_path / "in" / "a.png", _img())
    out = tmp_path / "out"
    assert _predict("--out", str(out), str(tmp_path / "in")) == 0
    before = {p: (out / p).stat().st_mtime_ns for p in _files(out)}
    capsys.readouterr()
    assert _predict("--out", str(out), str(tmp_path / "in")) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--overwrite" in err[0] and "already holds" in err[0]
    assert {p: (out / p).stat().st_mtime_ns for p in _files(out)} == before
    assert _predict("--overwrite", "--out", str(out), str(tmp_path / "in")) == 0


def test_out_under_a_regular_file_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_image_atomic(tmp_path / "a.png", _img())
    (tmp_path / "f").write_text("a file")
    assert _predict("--out", str(tmp_path / "f" / "out"), str(tmp_path / "a.png")) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(tmp_path / "f") in err[0] and "is a file, not a folder" in err[0]


def test_a_full_disk_is_one_line_and_leaves_no_partial_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    write_image_atomic(tmp_path / "a.png", _img())
    real_replace = os.replace

    def full(src, dst):  # noqa: ANN001, ANN202
        if str(dst).endswith("_labels.png"):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", full)
    out = tmp_path / "out"
    assert _predict("--out", str(out), str(tmp_path / "a.png")) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "a_labels.png" in err[0] and "no space left on device" in err[0].lower()
    assert not [f for f in _files(out) if "part" in f or f.endswith("_labels.png")]


def test_a_bundled_model_prints_no_download_progress(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_image_atomic(tmp_path / "a.png", _img())
    assert _predict("--out", str(tmp_path / "out"), str(tmp_path / "a.png")) == 0
    cap = capsys.readouterr()
    assert "downloading" not in cap.err and "\r" not in cap.err
    assert "1 class present" in cap.out or "classes present" in cap.out


def test_a_real_download_line_ends_with_a_newline(capsys: pytest.CaptureFixture[str]) -> None:
    import argparse

    from segviewer.commands.predict import _load

    class Downloading:
        card = type("Card", (), {"id": "big_model"})()

        def load(self, device, weights=None, progress=None):  # noqa: ANN001, ANN202
            for done in (0, 1 << 20, 3 << 20):
                progress(done, 3 << 20)

    _load(Downloading(), argparse.Namespace(no_download=False, weights=None), "cpu")
    err = capsys.readouterr().err
    assert err.endswith("downloading weights for big_model: 3.0 / 3.0 MB\n") and err.count("\n") == 1


def test_classes_present_is_singular_for_one() -> None:
    from segviewer.commands.predict import _classes_present

    assert _classes_present(1) == "1 class present" and _classes_present(3) == "3 classes present"


def test_help_documents_the_exit_status(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["predict", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "the exit status is then 1" in text and "--overwrite" in text and "results.json" in text
