"""Semantic datasets in the dataset view: their files give no per-image classes, so the label PNGs
are decoded once in the background; then the GT column counts each image's classes and the class
filter keeps the images showing a class (metadata.csv and a Cityscapes tree)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from fakes import FakeAdapter

from segviewer.core.dataset_index import open_dataset, semantic_presence
from segviewer.core.groundtruth import read_label_png
from segviewer.ui.features.dataset import DatasetFeature
from segviewer.ui.main_window import MainWindow
from segviewer.ui.worker import InferenceWorker

SCENES = Path(__file__).resolve().parents[2] / "assets" / "scenes"
TIMEOUT = 60_000


@pytest.fixture
def window(qtbot, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    w = MainWindow(InferenceWorker(FakeAdapter, process=False), cards=[])
    qtbot.addWidget(w)
    w.resize(1366, 768)
    w.show()
    qtbot.waitExposed(w)
    feat = w.findChild(DatasetFeature)
    yield w, feat
    feat.shutdown()
    w.shutdown()


def test_presence_is_what_each_label_png_shows() -> None:
    index = open_dataset(SCENES / "metadata.csv")
    cats, counts = semantic_presence(index)
    assert counts.shape == (6, len(cats)) and cats == index.semantic_categories
    for i, mask in enumerate(index._masks.values()):  # noqa: SLF001
        lab = read_label_png(mask).labels
        shown = set(np.unique(lab[lab != 255]).tolist())
        assert set(np.flatnonzero(counts[i]).tolist()) == shown
    assert semantic_presence(index, should_stop=lambda: True) is None


def test_class_filter_on_a_metadata_csv_dataset(qtbot, window, tmp_path: Path) -> None:
    import shutil

    _w, feat = window
    scenes = shutil.copytree(SCENES, tmp_path / "scenes")  # opening a dataset writes its result store there
    with qtbot.waitSignal(feat.classesIndexed, timeout=TIMEOUT):
        feat.open_dataset(scenes / "metadata.csv")
    m, combo = feat.model, feat.panel.classes
    assert combo.isEnabled() and combo.count() == 1 + len(m.categories)
    assert np.array_equal(m.columns["gt"], m.class_counts.sum(axis=1))
    c = int(np.argmin(m.class_counts.sum(axis=0) + 100 * (m.class_counts.sum(axis=0) == 0)))  # rarest shown class
    combo.setCurrentIndex(1 + c)
    kept = sorted(int(i) for i in m.view)
    assert kept == sorted(np.flatnonzero(m.class_counts[:, c]).tolist()) and 0 < len(kept) < 6


def test_class_filter_on_a_cityscapes_tree(qtbot, window, tmp_path: Path) -> None:
    _w, feat = window
    img_dir, gt_dir = tmp_path / "leftImg8bit" / "val" / "ulm", tmp_path / "gtFine" / "val" / "ulm"
    img_dir.mkdir(parents=True)
    gt_dir.mkdir(parents=True)
    for k in range(3):
        cv2.imwrite(str(img_dir / f"ulm_{k:06d}_leftImg8bit.png"), np.zeros((8, 16, 3), np.uint8))
        lab = np.full((8, 16), 7, np.uint8)  # road
        if k == 1:
            lab[2:4, 2:6] = 26  # a car on image 1 only
        cv2.imwrite(str(gt_dir / f"ulm_{k:06d}_gtFine_labelIds.png"), lab)
    with qtbot.waitSignal(feat.classesIndexed, timeout=TIMEOUT):
        feat.open_dataset(tmp_path)
    m = feat.model
    feat.panel.classes.setCurrentIndex(1 + m.categories.index("car"))
    assert [m.names[int(i)] for i in m.view] == ["ulm_000001_leftImg8bit.png"]
    assert [int(v) for v in m.columns["gt"]] == [1, 2, 1]
