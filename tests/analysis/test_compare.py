"""Two checkpoints of the same model compared over a dataset: per-image deltas in the table rows
and a disagreement layer (B against A by the ground-truth scoring code) with each side's class."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from segviewer.analysis.compare import disagreement, row_deltas
from segviewer.analysis.dataset_eval import ROW_KEYS, run_dataset
from segviewer.analysis.evaluation import hover_text
from segviewer.core.dataset_index import open_dataset
from segviewer.core.result_store import ResultStore, file_hash
from segviewer.core.results import Detections, MaskSet, SemanticMap


def _dets(rects, cls, cats=("a", "b")) -> Detections:
    m = np.zeros((len(rects), 40, 40), bool)
    for k, (x0, y0, x1, y1) in enumerate(rects):
        m[k, y0:y1, x0:x1] = True
    return Detections((40, 40), np.array(rects, np.float32).reshape(-1, 4), np.linspace(0.9, 0.5, len(rects)),
                      np.array(cls, np.int32), cats, masks=MaskSet.from_full(m))


def test_disagreement_of_instances_names_both_sides() -> None:
    a = _dets([(0, 0, 10, 10), (20, 20, 30, 30), (0, 30, 8, 38)], [0, 0, 1])
    b = _dets([(0, 0, 10, 10), (20, 20, 30, 30)], [0, 1])  # same, class changed, one dropped
    ev = disagreement(a, b)
    assert ev.errors.counts == {"TP": 1, "FP": 1, "FN": 2}
    text = hover_text(ev, 25, 25)
    assert "FP b" in text and "FN a" in text  # B says b, A says a
    assert ev.errors.pred_type[2] == "classification"


def test_disagreement_of_label_maps() -> None:
    la = np.zeros((6, 6), np.uint8)
    lb = la.copy()
    lb[:2] = 1
    ev = disagreement(SemanticMap(la, ("sky", "sea")), SemanticMap(lb, ("sky", "sea")))
    assert ev.semantic_errors.counts["wrong class"] == 12


def test_row_deltas_sort_where_b_is_worse() -> None:
    d = row_deltas({0: {"mask_ap": 0.5, "fp": 1}, 1: {"mask_ap": 0.2}, 2: {"mask_ap": None}},
                   {0: {"mask_ap": 0.3, "fp": 4}, 1: {"mask_ap": 0.6}, 2: {"mask_ap": 0.1}}, ["mask_ap", "fp"])
    assert d == {0: {"d_mask_ap": pytest.approx(-0.2), "d_fp": 3.0}, 1: {"d_mask_ap": pytest.approx(0.4)}}


@pytest.mark.slow
def test_two_checkpoints_of_the_bundled_mask_rcnn(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    from segviewer.adapters.base import PredictParams
    from segviewer.adapters.registry import create_adapter, models_dir
    from segviewer.core.imageio import read_image
    from segviewer.synth.dataset import write_dataset

    write_dataset(tmp_path / "ds", 4, seed=21, size=(128, 128))
    index = open_dataset(tmp_path / "ds")
    ck = torch.load(models_dir() / "shapes_maskrcnn.pt", map_location="cpu", weights_only=False)
    g = torch.Generator().manual_seed(0)
    for k, v in ck["state_dict"].items():  # checkpoint B: the box head's weights nudged
        if "roi_heads.box_predictor" in k and v.is_floating_point():
            ck["state_dict"][k] = v + 0.3 * v.std() * torch.randn(v.shape, generator=g)
    b_path = tmp_path / "b.pt"
    torch.save(ck, b_path)
    rows = {}
    preds = {}
    with ResultStore(tmp_path / "r.sqlite") as store:
        for name, weights in (("A", None), ("B", b_path)):
            adapter = create_adapter("shapes_maskrcnn")
            adapter.load("cpu", weights)

            def predict(i: int, adapter=adapter, name=name):
                out = adapter.predict(read_image(index.paths[i]), PredictParams())
                preds[name, i] = out
                return out, 0.0

            wh = "bundled" if weights is None else file_hash(weights)
            rows[name] = run_dataset(index, predict, store, "shapes_maskrcnn", wh)
        assert len(store.runs()) == 2  # two checkpoints, two stored runs
    deltas = row_deltas(rows["A"], rows["B"], ROW_KEYS)
    assert set(deltas) == set(range(4))
    for i, d in deltas.items():
        if rows["A"][i].get("mask_ap") is not None and rows["B"][i].get("mask_ap") is not None:
            assert d["d_mask_ap"] == pytest.approx(rows["B"][i]["mask_ap"] - rows["A"][i]["mask_ap"])
    differing = [i for i in range(4) if disagreement(preds["A", i], preds["B", i]).errors.counts["FP"]
                 + disagreement(preds["A", i], preds["B", i]).errors.counts["FN"] > 0]
    same = disagreement(preds["A", 0], preds["A", 0]).errors.counts
    assert same["FP"] == same["FN"] == 0
    assert differing, "the nudged checkpoint should disagree somewhere"
