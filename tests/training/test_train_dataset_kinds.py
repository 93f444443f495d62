"""``segviewer train --data FOLDER``: the model's task picks the annotations of a folder that holds
both kinds (what ``synth scenes`` writes), ground truth pointing at unlisted images is refused,
and output failures are one line (issue #10)."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import pytest
import torch

from segviewer.cli import main
from segviewer.training import checkpoint


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def scenes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("kinds") / "scenes"
    assert main(["synth", "scenes", "--out", str(root), "--n", "3", "--seed", "2", "--size", "64x64"]) == 0
    return root


def _train(*argv: str) -> int:
    return main(["train", *argv, "--steps", "1", "--batch-size", "2", "--crop", "32", "--val", "1"])


def test_a_synth_scenes_folder_trains_semantic_and_instance_models(scenes: Path, tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    assert _train("--model", "fcn", "--data", str(scenes), "--out", str(tmp_path / "fcn")) == 0
    assert "reads metadata.csv" in capsys.readouterr().err
    names = [c["name"] for c in json.loads((scenes / "annotations" / "instances.json").read_text())["categories"]]
    assert checkpoint.load(tmp_path / "fcn" / "model.pt")["categories"] == names  # the dataset's own names
    assert _train("--model", "maskrcnn", "--data", str(scenes), "--out", str(tmp_path / "mrcnn")) == 0
    assert "reads annotations/instances.json" in capsys.readouterr().err
    cats = checkpoint.load(tmp_path / "mrcnn" / "model.pt")["categories"]
    assert cats[0] == "__background__" and cats[1:] == names


def test_the_message_says_what_the_folder_holds(scenes: Path, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    (scenes.parent / "only_coco").mkdir(exist_ok=True)
    only = scenes.parent / "only_coco"
    (only / "annotations").mkdir(exist_ok=True)
    (only / "annotations" / "instances.json").write_text((scenes / "annotations" / "instances.json").read_text())
    assert _train("--model", "unet", "--data", str(only), "--out", str(tmp_path / "u")) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "needs metadata.csv" in err[0] and "it holds annotations/instances.json" in err[0]
    assert not (tmp_path / "u").exists()


def test_annotations_of_unlisted_images_are_named_and_stop_training(scenes: Path, tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    import shutil

    data = tmp_path / "data"
    shutil.copytree(scenes, data)
    doc = json.loads((data / "annotations" / "instances.json").read_text())
    doc["images"] = [im for im in doc["images"] if im["id"] != 2]
    (data / "annotations" / "instances.json").write_text(json.dumps(doc))
    assert _train("--model", "maskrcnn", "--data", str(data), "--out", str(tmp_path / "r")) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert "refer to image ids" in err[-1] and err[-1].endswith(": 2") and "Traceback" not in "".join(err)
    assert not (tmp_path / "r" / "model.pt").exists()


def test_out_under_a_regular_file_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "f").write_text("x")
    assert _train("--model", "fcn", "--data", "shapes", "--out", str(tmp_path / "f" / "run")) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is a file, not a folder" in err[0] and str(tmp_path / "f") in err[0]


def test_a_full_disk_while_saving_is_one_line_and_leaves_no_partial_checkpoint(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    def full(obj, f, *a, **k):  # noqa: ANN001, ANN002, ANN003, ANN202
        Path(f).write_bytes(b"PK half")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(torch, "save", full)
    out = tmp_path / "run"
    assert _train("--model", "fcn", "--data", "shapes", "--out", str(out)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert "cannot write" in err[-1] and "last.pt" in err[-1] and "no space left" in err[-1].lower()
    assert "Traceback" not in "\n".join(err)
    assert not [p.name for p in out.iterdir() if p.suffix == ".pt" or "part" in p.name]
