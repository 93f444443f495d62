"""Display state, undo commands and the pure helpers behind the panels and the inspector."""

from __future__ import annotations

import numpy as np
from PySide6.QtGui import QUndoStack

from segviewer.core.colors import palette_for
from segviewer.core.results import Detections, MaskSet, SemanticMap
from segviewer.ui import display as disp
from segviewer.ui.canvas import tiling

CATS = ("__background__", "circle", "square")


def _dets() -> Detections:
    masks = np.zeros((3, 20, 30), bool)
    masks[0, 2:10, 2:10] = True
    masks[1, 5:15, 5:15] = True  # overlaps mask 0, which has the higher score -> 0 is on top
    masks[2, 0:4, 20:30] = True
    boxes = np.array([[2, 2, 10, 10], [5, 5, 15, 15], [20, 0, 30, 4]], np.float32)
    return Detections((20, 30), boxes, np.array([0.9, 0.6, 0.2], np.float32), np.array([1, 2, 1], np.int32),
                      CATS, masks=MaskSet.from_full(masks))


def _sem() -> SemanticMap:
    labels = np.zeros((20, 30), np.uint8)
    labels[:, 15:] = 2
    probs = np.zeros((3, 10, 15), np.float32)
    probs[0] = 0.7
    probs[2] = 0.3
    return SemanticMap(labels, CATS, probs=probs)


def test_filter_by_score_and_class_without_rerun() -> None:
    d = _dets()
    assert len(disp.filter_result(d, 0.5, set())) == 2
    kept = disp.filter_result(d, 0.0, {"circle"})
    assert kept.names == ("square",)
    assert disp.filter_result(_sem(), 0.9, {"circle"}) is not None


def test_class_counts_and_legend() -> None:
    counts = disp.class_counts({"inst": _dets(), "sem": _sem()}, 0.5)
    names = [(c.name, c.count, c.unit) for c in counts]
    assert ("circle", 1, "") in names and ("square", 1, "") in names
    assert not any(n == "__background__" for n, _, _ in names)
    # square is also a semantic class here, but instances take precedence in the listing
    legend = disp.legend_entries({"inst": _dets()})
    pal = palette_for(_dets().categories)  # the renderer's colors: one per class name
    assert legend == [("circle", tuple(int(v) for v in pal[1])), ("square", tuple(int(v) for v in pal[2]))]
    # the same class from a semantic model gets the same swatch, so the legend lists it once
    both = disp.legend_entries({"inst": _dets(), "sem": _sem()})
    assert [n for n, _ in both].count("square") <= 1 or len({c for n, c in both if n == "square"}) == 1


def test_inspector_reports_topmost_mask_then_box_and_semantic_probability() -> None:
    image = np.zeros((20, 30, 3), np.uint8)
    image[6, 7] = (1, 2, 3)
    lines = disp.inspect_point(image, {"inst": _dets()}, 7.5, 6.5)
    assert lines[0] == "x 7  y 6" and lines[1] == "RGB 1, 2, 3"
    assert lines[2] == "inst: #0 circle 0.90 (mask)"  # painted over mask 1 (higher score)
    assert lines[3] == "    box 2,2 – 10,10"
    lines = disp.inspect_point(image, {"inst": _dets()}, 12.5, 12.5)
    assert lines[2] == "inst: #1 square 0.60 (mask)"
    d = _dets()
    nomask = Detections(d.image_size, d.boxes, d.scores, d.class_ids, CATS)
    assert disp.inspect_point(image, {"inst": nomask}, 7.5, 6.5)[2] == "inst: #0 circle 0.90 (box)"
    lines = disp.inspect_point(image, {"sem": _sem()}, 20.5, 3.5)
    assert lines[2] == "sem: square p=0.30"
    assert disp.inspect_point(image, {}, 30.0, 3.0) == []  # outside the image


def test_undo_restores_each_toggle(qtbot) -> None:
    state = disp.DisplayState()
    stack = QUndoStack()
    layer = ("m", "masks")
    seen: list[str] = []
    state.changed.connect(seen.append)
    stack.push(disp.SetVisible(state, layer, False))
    assert not state.is_visible(layer)
    for v in (0.3, 0.2, 0.1):  # a slider drag merges into one step
        stack.push(disp.SetOpacity(state, layer, v))
    assert stack.count() == 2 and state.opacity_of(layer) == 0.1
    stack.push(disp.SetClassHidden(state, "circle", True))
    stack.undo()
    assert "circle" not in state.hidden_classes
    stack.undo()
    assert state.opacity_of(layer) == disp.DEFAULT_OPACITY["masks"]
    stack.undo()
    assert state.is_visible(layer)
    stack.redo()
    assert not state.is_visible(layer)
    assert seen[0] == "visible" and "classes" in seen


def test_tiling_levels_and_detail_window() -> None:
    assert tiling.overview_size(600, 800) == (600, 800)
    assert tiling.overview_size(9000, 12000) == (1536, 2048)
    assert not tiling.needs_detail(9000, 12000, 2048 / 12000)
    assert tiling.needs_detail(9000, 12000, 1.0)
    win, out = tiling.detail_request(9000, 12000, (1000.0, 1000.0, 2000.0, 1600.0), 1.5)
    assert win == (750, 850, 2250, 1750) and out == (900, 1500)  # margin, capped at full resolution
    win, out = tiling.detail_request(9000, 12000, (0.0, 0.0, 12000.0, 9000.0), 0.5)
    assert win == (0, 0, 12000, 9000) and max(out) <= tiling.DETAIL_MAX
    assert tiling.detail_request(9000, 12000, (13000.0, 0.0, 14000.0, 10.0), 1.0) is None
    assert tiling.window_covers((0, 0, 10, 10), (1.0, 1.0, 9.0, 9.0))
    assert not tiling.window_covers((0, 0, 10, 10), (1.0, 1.0, 11.0, 9.0))


def test_many_layers_scroll_instead_of_growing_the_panel(qtbot) -> None:
    """A dozen layer rows (several models plus ground truth) must not push the window taller
    than a laptop screen: the rows scroll inside a panel of bounded minimum height."""
    from segviewer.ui.widgets.layer_panel import LayerPanel

    panel = LayerPanel()
    qtbot.addWidget(panel)
    state = disp.DisplayState()
    few = [("m0", "masks")]
    panel.set_layers(few, {}, state)
    base = panel.minimumSizeHint().height()
    many = [(f"model{i}", kind) for i in range(5) for kind in ("masks", "boxes", "labels")]
    panel.set_layers(many, {}, state)
    panel.show()
    assert panel.checkbox(many[-1]) is not None  # every row exists
    assert panel.minimumSizeHint().height() <= base + 10, "the rows scroll; the panel does not grow"
    assert panel.rows_scroll.widget().sizeHint().height() > panel.rows_scroll.minimumHeight()


def test_view_overview_renders_huge_photos_at_the_views_resolution() -> None:
    """A 4000 x 3000 photo in a 1000 x 700 view: the overview is the fitted size (700 x 934), not
    the photo's 12 MP (2 s of layer rendering); small photos keep their own size."""
    assert tiling.view_overview_size(3000, 4000, 700, 1000) == (700, 934)
    assert tiling.view_overview_size(600, 800, 300, 400) == (600, 800)
    # 1024..2048 px: only when fitted below 0.5 zoom (where 2 px outlines start to alias away).
    assert tiling.view_overview_size(1500, 2000, 1000, 1400) == (1500, 2000)
    assert tiling.view_overview_size(1500, 2000, 300, 400) == (300, 400)
    # Never above the GPU-safe overview, never below the floor (a canvas not laid out yet).
    assert tiling.view_overview_size(9000, 12000, 3000, 4000) == tiling.overview_size(9000, 12000)
    assert max(tiling.view_overview_size(3000, 4000, 30, 40)) == tiling.VIEW_OVERVIEW_FLOOR
    assert tiling.view_overview_size(3000, 4000, 0, 0) == (3000, 4000)
    # Zooming past the view-sized overview asks for detail renders.
    assert not tiling.needs_detail(3000, 4000, 0.23, (700, 934))
    assert tiling.needs_detail(3000, 4000, 0.5, (700, 934))
