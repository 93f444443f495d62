"""``segviewer eval``: ground truth that points at unlisted images is refused, and an unwritable
``--json`` is one line (issue #10)."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import pytest

from segviewer.cli import main


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from segviewer.synth.dataset import write_dataset

    root = tmp_path_factory.mktemp("evalerr") / "ds"
    write_dataset(root, 3, seed=5, size=(48, 64))
    return root


def _perfect_results(gt: Path, path: Path) -> Path:
    anns = json.loads(gt.read_text())["annotations"]
    path.write_text(json.dumps([{"image_id": a["image_id"], "category_id": a["category_id"], "bbox": a["bbox"],
                                 "segmentation": a["segmentation"], "score": 0.9} for a in anns]))
    return path


def _drop_images(src: Path, dst: Path, ids: set[int]) -> Path:
    doc = json.loads(src.read_text())
    doc["images"] = [im for im in doc["images"] if im["id"] not in ids]
    dst.write_text(json.dumps(doc))
    return dst


def test_instance_ground_truth_with_unlisted_images_is_refused(dataset: Path, tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    gt = dataset / "annotations" / "instances.json"
    res = _perfect_results(gt, tmp_path / "res.json")
    broken = _drop_images(gt, tmp_path / "gt.json", {2, 3})
    out = tmp_path / "ap.json"
    rc = main(["eval", "--task", "instance", "--gt", str(broken), "--pred", str(res), "--json", str(out)])
    cap = capsys.readouterr()
    err = cap.err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "image ids" in err[0] and "2, 3" in err[0]
    assert "AP" not in cap.out and not out.exists()


def test_panoptic_ground_truth_with_unlisted_images_is_refused(dataset: Path, tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    import shutil

    gt = dataset / "annotations" / "panoptic.json"
    shutil.copytree(dataset / "annotations" / "panoptic", tmp_path / "gt")
    broken = _drop_images(gt, tmp_path / "gt.json", {1})
    rc = main(["eval", "--task", "panoptic", "--gt", str(broken), "--pred", str(gt), "--workers", "1"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "refer to image ids" in err[0] and ": 1" in err[0]


def test_json_under_a_regular_file_is_one_line(dataset: Path, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    gt = dataset / "annotations" / "instances.json"
    res = _perfect_results(gt, tmp_path / "res.json")
    (tmp_path / "f").write_text("x")
    target = tmp_path / "f" / "ap.json"
    rc = main(["eval", "--task", "instance", "--gt", str(gt), "--pred", str(res), "--json", str(target)])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and str(target) in err[0] and "is a file, not a folder" in err[0]


def test_json_on_a_full_disk_is_one_line_and_nothing_half_written(dataset: Path, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    gt = dataset / "annotations" / "instances.json"
    res = _perfect_results(gt, tmp_path / "res.json")
    out_dir = tmp_path / "o"
    real_write = Path.write_bytes

    def full(self: Path, data: bytes) -> int:
        if self.parent == out_dir:
            real_write(self, data[: len(data) // 2])  # what a full disk leaves: half a file
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_write(self, data)

    monkeypatch.setattr(Path, "write_bytes", full)
    rc = main(["eval", "--task", "instance", "--gt", str(gt), "--pred", str(res), "--json", str(out_dir / "ap.json")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "ap.json" in err[0] and "no space left" in err[0].lower()
    assert list(out_dir.iterdir()) == []


def test_json_in_an_unwritable_folder_is_one_line(dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """Tests run as root, whom chmod does not stop: the refusal is simulated where the file is made."""
    import tempfile

    gt = dataset / "annotations" / "instances.json"
    res = _perfect_results(gt, tmp_path / "res.json")

    def denied(*a, **k):  # noqa: ANN002, ANN003, ANN202
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES))

    monkeypatch.setattr(tempfile, "mkstemp", denied)
    target = tmp_path / "ro" / "ap.json"
    rc = main(["eval", "--task", "instance", "--gt", str(gt), "--pred", str(res), "--json", str(target)])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and err == [f"segviewer: cannot write {target}: permission denied"]
