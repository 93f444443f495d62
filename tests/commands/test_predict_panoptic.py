"""``segviewer predict --panoptic`` end to end with the bundled shapes models on generated scenes,
scored by ``segviewer eval --task panoptic`` (the reference-equal pq_compute)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torchvision.models.detection  # noqa: F401 - imported at collection: minutes on a loaded CPU

from segviewer.analysis.pq import pq_compute
from segviewer.cli import main
from segviewer.core.panoptic_io import read_panoptic
from segviewer.synth.dataset import write_dataset

pytestmark = pytest.mark.usefixtures("offline_one_thread")  # tests/commands/conftest.py


def test_panoptic_merge_writes_coco_panoptic_that_eval_scores(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "data"
    write_dataset(data, 2, seed=11, size=(160, 160), images_dir=".")
    out = tmp_path / "out"
    # semantic model first: roles come from the cards, not the order
    args = ["predict", "--panoptic", "--model", "shapes_fcn", "--model", "shapes_maskrcnn", "--device", "cpu",
            "--stuff-min-area", "64", "--out", str(out), str(data)]
    assert main(args) == 0
    doc = json.loads((out / "panoptic.json").read_text())
    names = [c["name"] for c in doc["categories"]]
    assert names == ["sky", "grass", "water", "road", "circle", "square", "triangle", "star", "ring"]
    assert [c["isthing"] for c in doc["categories"]] == [0] * 4 + [1] * 5
    assert [a["file_name"] for a in doc["annotations"]] == ["scene_000.png", "scene_001.png"]
    assert (out / "panoptic" / "scene_000.png").is_file() and (out / "scene_001_overlay.png").is_file()
    # Our reader agrees with the JSON (areas counted from the PNG, ids unique, things and stuff both there).
    ds = read_panoptic(out / "panoptic.json")
    pm = ds.panoptic(1)
    assert pm.image_size == (160, 160)
    assert any(s.isthing for s in pm.segments) and any(not s.isthing for s in pm.segments)
    for seg, info in zip(pm.segments, doc["annotations"][0]["segments_info"]):
        assert int((pm.segment_ids == seg.id).sum()) == info["area"]

    capsys.readouterr()
    res_json = tmp_path / "pq.json"
    assert main(["eval", "--task", "panoptic", "--gt", str(data / "annotations" / "panoptic.json"),
                 "--pred", str(out / "panoptic.json"), "--json", str(res_json), "--workers", "1"]) == 0
    printed = capsys.readouterr().out
    res = json.loads(res_json.read_text())
    assert res["images"] == 2
    assert 0.3 < res["all"]["pq"] <= 1.0, printed
    assert res["things"]["n"] >= 1 and res["stuff"]["n"] >= 1
    # the same numbers through the library entry point
    again = pq_compute(data / "annotations" / "panoptic.json", out / "panoptic.json", workers=1)
    assert again["all"]["pq"] == pytest.approx(res["all"]["pq"])


def test_panoptic_needs_one_instance_and_one_semantic_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "data"
    write_dataset(data, 1, seed=1, size=(64, 64), images_dir=".")
    o = str(tmp_path / "o")
    cases = [
        (["--panoptic", "--model", "shapes_fcn"], "needs two models"),
        (["--panoptic", "--model", "shapes_fcn", "--model", "shapes_fcn"], "one instance model and one semantic model"),
        (["--model", "shapes_fcn", "--model", "shapes_maskrcnn"], "two are for --panoptic"),
    ]
    for extra, message in cases:
        capsys.readouterr()
        assert main(["predict", *extra, "--device", "cpu", "--out", o, str(data)]) == 2
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err
    assert not (tmp_path / "o" / "panoptic.json").exists()
