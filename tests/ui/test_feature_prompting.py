"""SAM 2 prompt mode in the window, on a tiny random SAM 2 checkpoint (no download): clicks and a
drag on the canvas go through the inference worker, the answer becomes the ``sam2 prompt`` layer
(checked against the adapter run directly with the points the feature drew), undo, the candidate
gallery, the COCO RLE export, and File > Load Weights… with a folder."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QPoint, Qt
from PySide6.QtWidgets import QFileDialog

from segviewer.adapters.registry import create_adapter, get_card
from segviewer.core.coco_results import decode_segmentation
from segviewer.core.imageio import read_image
from segviewer.ui.features.prompting import LAYER, PromptFeature
from segviewer.ui.model_host import registry_factory
from tests.adapters import hf_tiny

MODEL = "sam2_hiera_tiny"
TIMEOUT = 60_000
SCENE = Path(__file__).resolve().parents[2] / "assets" / "scenes" / "scene_000.png"


@pytest.fixture(scope="module")
def sam_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return hf_tiny.sam2(tmp_path_factory.mktemp("sam2") / "sam2")


@pytest.fixture(scope="module")
def direct(sam_folder: Path):
    """The same checkpoint loaded here, to recompute what the window shows."""
    ad = create_adapter(MODEL)
    ad.load("cpu", sam_folder)
    return ad


@pytest.fixture
def opened(qtbot, show_window, sam_folder: Path, tmp_path: Path):
    """A window with the SAM 2 card, its weights folder loaded and an image shown."""
    img = tmp_path / "scene.png"
    shutil.copy(SCENE, img)
    w = show_window(registry_factory, [get_card(MODEL)], size=(1100, 750))
    w.load_weights(MODEL, sam_folder)
    with qtbot.waitSignal(w.session.imageShown, timeout=TIMEOUT):
        w.session.open_paths([img])
    feat = w.findChild(PromptFeature)
    assert feat is not None and feat.model_id == MODEL
    return w, feat


def _widget_pos(w, x: float, y: float) -> QPoint:
    return w.canvas.image_to_widget(x, y)


def _click(qtbot, w, feat, x: float, y: float, button=Qt.MouseButton.LeftButton,
           mods=Qt.KeyboardModifier.NoModifier) -> None:
    with qtbot.waitSignal(w.worker.promptReady, timeout=TIMEOUT):
        qtbot.mouseClick(w.canvas.viewport(), button, mods, _widget_pos(w, x, y))
    qtbot.waitUntil(lambda: not feat.running, timeout=TIMEOUT)


def _shown_mask(w) -> np.ndarray:
    det = w.session.results[LAYER]
    assert len(det) == 1 and det.names == ("object",)
    return det.masks.full(0)


def test_clicks_box_undo_and_candidates_through_the_worker(qtbot, opened, direct) -> None:
    w, feat = opened
    image = w.session.image
    before = set(w.session.results)
    qtbot.keyClick(w, Qt.Key.Key_P)  # Model > Prompt with SAM 2
    assert feat.active and feat.panel.mode.isChecked()

    _click(qtbot, w, feat, 60, 40)
    (x, y, pos), = feat.points
    assert pos and abs(x - 60) < 1.5 and abs(y - 40) < 1.5  # where the click landed on the image
    ref = direct.prompt(image, points=feat.points)
    np.testing.assert_array_equal(_shown_mask(w), ref.masks.full(ref.best))
    assert w.session.results[LAYER].scores[0] == pytest.approx(ref.ious.max())
    assert LAYER in w.session.derived and set(w.session.results) == before | {LAYER}
    assert feat.panel.candidates[ref.best].isChecked()
    assert [b.text() for b in feat.panel.candidates] == [f"IoU {v:.2f}" for v in ref.ious]

    # right click: a negative point; Shift+left click too
    _click(qtbot, w, feat, 120, 90, Qt.MouseButton.RightButton)
    _click(qtbot, w, feat, 30, 100, mods=Qt.KeyboardModifier.ShiftModifier)
    assert [p[2] for p in feat.points] == [True, False, False]
    ref3 = direct.prompt(image, points=feat.points)
    np.testing.assert_array_equal(_shown_mask(w), ref3.masks.full(ref3.best))

    # undo (Backspace) twice: back to the first click's answer
    for _ in range(2):
        with qtbot.waitSignal(w.worker.promptReady, timeout=TIMEOUT):
            qtbot.keyClick(w, Qt.Key.Key_Backspace)
    qtbot.waitUntil(lambda: not feat.running, timeout=TIMEOUT)
    assert len(feat.points) == 1
    np.testing.assert_array_equal(_shown_mask(w), ref.masks.full(ref.best))

    # another candidate from the gallery
    other = (ref.best + 1) % 3
    feat.panel.candidates[other].click()
    np.testing.assert_array_equal(_shown_mask(w), ref.masks.full(other))
    assert w.session.results[LAYER].scores[0] == pytest.approx(ref.ious[other])

    # a drag draws the box (with the point still there)
    vp = w.canvas.viewport()
    with qtbot.waitSignal(w.worker.promptReady, timeout=TIMEOUT):
        qtbot.mousePress(vp, Qt.MouseButton.LeftButton, pos=_widget_pos(w, 20, 15))
        qtbot.mouseMove(vp, _widget_pos(w, 60, 50))
        qtbot.mouseMove(vp, _widget_pos(w, 100, 80))
        qtbot.mouseRelease(vp, Qt.MouseButton.LeftButton, pos=_widget_pos(w, 100, 80))
    qtbot.waitUntil(lambda: not feat.running, timeout=TIMEOUT)
    x0, y0, x1, y1 = feat.box
    assert abs(x0 - 20) < 1.5 and abs(y0 - 15) < 1.5 and abs(x1 - 100) < 1.5 and abs(y1 - 80) < 1.5
    assert feat.box_item.isVisible() and len(feat.points) == 1
    refb = direct.prompt(image, points=feat.points, box=feat.box)
    np.testing.assert_array_equal(_shown_mask(w), refb.masks.full(refb.best))

    # Clear: no prompt, no layer; Esc leaves the mode
    feat.panel.clear.click()
    assert feat.points == () and feat.box is None and LAYER not in w.session.results
    qtbot.keyClick(w, Qt.Key.Key_Escape)
    assert not feat.active and not feat.panel.mode.isChecked()
    # out of prompt mode a click is not a prompt
    qtbot.mouseClick(vp, Qt.MouseButton.LeftButton, pos=_widget_pos(w, 60, 40))
    assert feat.points == ()


def test_a_box_alone_and_the_rle_export(qtbot, opened, direct, tmp_path: Path) -> None:
    w, feat = opened
    feat.set_active(True)
    with qtbot.waitSignal(w.worker.promptReady, timeout=TIMEOUT):
        feat.set_box((90.0, 70.0, 30.0, 20.0))  # drawn from bottom right to top left
    qtbot.waitUntil(lambda: not feat.running, timeout=TIMEOUT)
    assert feat.box == (30.0, 20.0, 90.0, 70.0) and feat.points == ()
    ref = direct.prompt(w.session.image, box=feat.box)
    np.testing.assert_array_equal(_shown_mask(w), ref.masks.full(ref.best))
    out = tmp_path / "mask.json"
    with qtbot.waitSignal(w.exported, timeout=TIMEOUT):
        feat.export(out)
    (rec,) = json.loads(out.read_text())
    assert rec["image_id"] == 0 and rec["category_id"] == 0 and rec["score"] == pytest.approx(ref.ious.max())
    np.testing.assert_array_equal(decode_segmentation(rec["segmentation"], w.session.image.shape[:2]),
                                  ref.masks.full(ref.best))
    # a new image forgets the prompt and its layer
    with qtbot.waitSignal(w.session.imageShown, timeout=TIMEOUT):
        w.session.open_paths([SCENE.parent / "scene_001.png"])
    assert feat.box is None and LAYER not in w.session.results and feat.answer is None


def test_without_weights_the_dock_says_what_to_do(qtbot, show_window, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty_cache"))
    monkeypatch.setenv("SEGVIEWER_OFFLINE", "1")
    w = show_window(registry_factory, [get_card(MODEL)])
    with qtbot.waitSignal(w.session.imageShown, timeout=TIMEOUT):
        w.session.open_paths([SCENE])
    feat = w.findChild(PromptFeature)
    assert "No SAM 2 weights" in feat.panel.weights.text() and "Load Weights" in feat.panel.weights.text()
    feat.set_active(True)
    with qtbot.waitSignal(w.worker.promptFailed, timeout=TIMEOUT):
        feat.add_point(50, 50, True)
    assert "facebook/sam2.1-hiera-tiny" in feat.panel.status.text()
    assert "--weights DIR" in feat.panel.status.text() and LAYER not in w.session.results


def test_load_weights_takes_a_folder_and_refuses_wrong_ones(qtbot, show_window, sam_folder: Path,
                                                            tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    w = show_window(registry_factory, [get_card(MODEL)])
    from PySide6.QtWidgets import QTreeWidgetItemIterator

    it = QTreeWidgetItemIterator(w.picker.tree)
    while it.value() is not None and it.value().data(0, Qt.ItemDataRole.UserRole) != MODEL:
        it += 1
    w.picker.tree.setCurrentItem(it.value())
    assert w.picker.current() == MODEL
    chosen: list[str] = []

    def pick(folder: Path):
        def fake(*args, **kwargs):  # noqa: ANN202
            chosen.append(str(folder))
            return str(folder)
        return fake

    def refuse_file(*args, **kwargs):  # noqa: ANN202
        raise AssertionError("a transformers model asks for a folder, not a file")

    monkeypatch.setattr(QFileDialog, "getOpenFileName", refuse_file)
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", pick(empty))
    w.load_weights_dialog()
    assert "no config.json" in w.last_error and MODEL not in w.session.weights

    code = tmp_path / "with_code"
    shutil.copytree(sam_folder, code)
    (code / "modeling_evil.py").write_text("raise SystemExit\n")
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", pick(code))
    w.load_weights_dialog()
    assert "carries its own Python code" in w.last_error and MODEL not in w.session.weights

    other = tmp_path / "segformer"
    hf_tiny.segformer(other)
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", pick(other))
    w.load_weights_dialog()
    assert "is a segformer checkpoint" in w.last_error and MODEL not in w.session.weights

    monkeypatch.setattr(QFileDialog, "getExistingDirectory", pick(sam_folder))
    w.load_weights_dialog()
    assert w.session.weights[MODEL] == sam_folder and len(chosen) == 4
    assert str(sam_folder) in w.findChild(PromptFeature).panel.weights.text()


def test_thumbnail_is_the_mask_subsampled(direct) -> None:
    from segviewer.ui.widgets.prompt_panel import mask_thumbnail

    image = read_image(SCENE)
    pm = direct.prompt(image, points=[(50.0, 40.0, True)])
    for i in range(3):
        thumb = mask_thumbnail(image, pm.masks, i, size=40)
        full = pm.masks.full(i)
        step = int(np.ceil(max(full.shape) / 40))
        sub, img = full[::step, ::step], image[::step, ::step].astype(np.float32)
        assert thumb.shape == img.shape
        # masked pixels tinted towards yellow, the others dimmed to 35 %
        want = img * 0.35
        want[sub] = img[sub] * 0.45 + np.array([255.0, 200.0, 40.0]) * 0.55
        np.testing.assert_allclose(thumb, want.astype(np.uint8), atol=1)
    assert any(pm.masks.full(i).any() for i in range(3))  # the comparison saw masked pixels
