"""The inputs a (Ray or single) predict run reads: folders, a list file, a COCO JSON's images."""

from __future__ import annotations

import json
from pathlib import Path

from segviewer.cli import main
from segviewer.commands import _predict_plan as plan


def _dataset(tmp_path: Path) -> Path:
    ds = tmp_path / "ds"
    assert main(["synth", "scenes", "--out", str(ds), "--n", "3", "--size", "48x64", "--seed", "5"]) == 0
    return ds


def test_a_list_file_and_a_coco_json_give_the_folders_images_and_names(tmp_path: Path) -> None:
    ds = _dataset(tmp_path)
    folder, root, problems = plan.collect([str(ds / "images")])
    assert not problems and len(folder) == 3
    listing = tmp_path / "lists" / "some.txt"
    listing.parent.mkdir()
    listing.write_text("# two of them\n../ds/images/scene_002.png\n\n../ds/images/scene_000.png\n"
                       "../ds/images/nope.png\n")
    listed, lroot, problems = plan.collect([str(listing)])
    assert [p.resolve() for p in listed] == [folder[2].resolve(), folder[0].resolve()]
    assert problems and "1 listed image(s) missing" in problems[0]
    # outputs stay under --out: names relative to the images' folder, not the list's
    assert plan.output_stems(listed, lroot) == ["scene_002", "scene_000"]
    coco, croot, problems = plan.collect([str(ds / "annotations" / "instances.json")])
    assert not problems and [p.resolve() for p in coco] == [p.resolve() for p in folder]
    assert plan.output_stems(coco, croot) == plan.output_stems(folder, root)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"images": [{"id": 1}]}))
    found, _, problems = plan.collect([str(bad)])
    assert not found and "file_name" in problems[0]


def test_predict_on_a_coco_json_writes_what_the_folder_run_writes(tmp_path: Path) -> None:
    ds = _dataset(tmp_path)
    common = ["predict", "--model", "shapes_fcn", "--device", "cpu", "--threads", "1"]
    assert main([*common, "--out", str(tmp_path / "a"), str(ds / "images")]) == 0
    assert main([*common, "--out", str(tmp_path / "b"), str(ds / "annotations" / "instances.json")]) == 0
    a = {p.name: p.read_bytes() for p in (tmp_path / "a").iterdir()}
    b = {p.name: p.read_bytes() for p in (tmp_path / "b").iterdir()}
    assert a == b and len(a) == 7  # 3 overlays, 3 label maps, categories.json
