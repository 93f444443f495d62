"""``eval --per-image`` / ``--errors``: one per-image function serves both engines (issue #12).

These run without Ray: the engine's mapper is replaced by one that does what a Ray task does to
an image's work (the arguments and the value pickled, the images run out of order and put back in
order), so a per-image function that leans on the driver's state, or whose parts do not travel,
fails here. The two-node runs are in test_ray_engine.py.
"""

from __future__ import annotations

import csv
import json
import pickle
import shutil
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest

from segviewer.cli import main
from segviewer.commands import eval as eval_cmd
from segviewer.core.coco_results import detections_to_coco
from segviewer.core.dataset_index import open_dataset
from segviewer.synth.predictions import perturb_detections

SCENES = Path(__file__).resolve().parents[2] / "assets" / "scenes"


def _task_like(calls: list[str]) -> Callable[..., Iterator[Any]]:
    def mapper(fn: Callable[..., Any], items: Iterable[tuple[Any, ...]]) -> Iterator[Any]:
        calls.append(fn.__name__)
        blobs = [pickle.dumps(item) for item in items]
        done = {k: pickle.dumps(fn(*pickle.loads(b))) for k, b in reversed(list(enumerate(blobs)))}
        for k in range(len(blobs)):
            yield pickle.loads(done[k])
    return mapper


def _results(tmp_path: Path) -> Path:
    index = open_dataset(SCENES / "annotations" / "instances.json")
    recs: list[dict[str, Any]] = []
    for i in range(len(index)):
        gt = index.ground_truth(i).instances
        recs += detections_to_coco(perturb_detections(gt, 40 + i), int(index.image_ids[i]),
                                   [1 + k for k in range(len(gt.categories))])
    out = tmp_path / "results.json"
    out.write_text(json.dumps(recs))
    return out


def _both(args: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str) -> list[str]:
    """Run ``args`` on the plain engine and on the task-like mapper; equal CSV bytes and JSON."""
    ref_csv, got_csv = tmp_path / f"{name}_ref.csv", tmp_path / f"{name}_got.csv"
    ref_js, got_js = tmp_path / f"{name}_ref.json", tmp_path / f"{name}_got.json"
    assert main(["eval", *args, "--per-image", str(ref_csv), "--json", str(ref_js)]) == 0
    calls: list[str] = []
    with monkeypatch.context() as m:
        m.setattr(eval_cmd, "_local_map", _task_like(calls))
        assert main(["eval", *args, "--per-image", str(got_csv), "--json", str(got_js)]) == 0
    assert got_csv.read_bytes() == ref_csv.read_bytes()
    assert json.loads(got_js.read_text()) == json.loads(ref_js.read_text())
    return calls


def test_instance_rows_and_tide_through_a_task_like_mapper(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    args = ["--task", "instance", "--gt", str(SCENES / "annotations" / "instances.json"),
            "--pred", str(_results(tmp_path)), "--errors"]
    assert _both(args, tmp_path, monkeypatch, "instance") == ["instance_image"]
    errors = json.loads((tmp_path / "instance_got.json").read_text())["errors"]
    assert sum(errors["segm"]["counts"].values()) > 0 and sum(errors["bbox"]["counts"].values()) > 0


def test_panoptic_and_semantic_rows_through_a_task_like_mapper(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    gt = SCENES / "annotations" / "panoptic.json"
    calls = _both(["--task", "panoptic", "--gt", str(gt), "--pred", str(gt)], tmp_path, monkeypatch, "pan")
    assert calls == ["panoptic_image"]
    pred = tmp_path / "pred"
    shutil.copytree(SCENES / "masks", pred)
    calls = _both(["--task", "semantic", "--gt", str(SCENES / "metadata.csv"), "--pred", str(pred)], tmp_path,
                  monkeypatch, "sem")
    assert calls == ["_pair_confusion", "semantic_image"]


def test_semantic_rows_of_a_folder_follow_its_metadata_csv(tmp_path: Path) -> None:
    """A dataset folder whose COCO file lists an image metadata.csv lacks: the rows are the
    metadata.csv pairs eval scores (they were the COCO file's images, and the extra one failed)."""
    ds = tmp_path / "ds"
    shutil.copytree(SCENES, ds)
    inst = ds / "annotations" / "instances.json"
    data = json.loads(inst.read_text())
    shutil.copy(ds / "scene_000.png", ds / "zz_extra.png")
    data["images"].append(dict(data["images"][0], id=999, file_name="zz_extra.png"))
    inst.write_text(json.dumps(data))
    pred = tmp_path / "pred"
    shutil.copytree(SCENES / "masks", pred)
    out = tmp_path / "sem.csv"
    assert main(["eval", "--task", "semantic", "--gt", str(ds), "--pred", str(pred), "--per-image", str(out)]) == 0
    rows = list(csv.DictReader(out.read_text().splitlines()))
    assert [r["file_name"] for r in rows] == [f"scene_{k:03d}.png" for k in range(6)]
    assert all(float(r["miou"]) == 1.0 for r in rows)
