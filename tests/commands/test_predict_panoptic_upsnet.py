"""``segviewer predict --panoptic --merge upsnet``: UPSNet's head from the bundled models' logits,
written as COCO panoptic and scored by the reference-equal pq_compute beside the heuristic."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torchvision.models.detection  # noqa: F401 - imported at collection: minutes on a loaded CPU

from segviewer.analysis.pq import pq_compute
from segviewer.cli import main
from segviewer.synth.dataset import write_dataset

pytestmark = pytest.mark.usefixtures("offline_one_thread")  # tests/commands/conftest.py


def test_upsnet_merge_from_the_command_line(tmp_path: Path) -> None:
    data = tmp_path / "data"
    write_dataset(data, 2, seed=5, size=(160, 160), images_dir=".")
    pq = {}
    for method in ("heuristic", "upsnet"):
        out = tmp_path / method
        assert main(["predict", "--panoptic", "--merge", method, "--model", "shapes_maskrcnn", "--model",
                     "shapes_fcn", "--device", "cpu", "--stuff-min-area", "64", "--out", str(out), str(data)]) == 0
        doc = json.loads((out / "panoptic.json").read_text())
        assert doc["info"]["merge"]["method"] == method
        pq[method] = pq_compute(data / "annotations" / "panoptic.json", out / "panoptic.json", workers=1)["all"]["pq"]
    assert pq["upsnet"] > 0.6 and abs(pq["upsnet"] - pq["heuristic"]) < 0.1, pq


def test_bad_merge_name_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["predict", "--panoptic", "--merge", "softmax", "--model", "shapes_fcn", "--model", "shapes_maskrcnn",
              "--out", str(tmp_path), str(tmp_path)])
    assert "invalid choice" in capsys.readouterr().err
