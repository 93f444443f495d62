"""What the user chose to see, separate from what the models produced.

:class:`DisplayState` holds layer visibility and opacity, the score threshold and the hidden
classes; widgets read it and undo commands change it, so Ctrl+Z restores exactly one toggle.
The pure helpers below (filtering, class counts, legend entries, hover text) have no Qt in
them and are unit-tested directly.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace

import numpy as np
from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QUndoCommand

from segviewer.core.colors import palette_for
from segviewer.core.results import Detections, PanopticMap, SemanticMap

LayerId = tuple[str, str]  # (model id, LayerKind value)

#: Stacking order of layer kinds (bottom to top); unknown kinds go just under the labels.
KIND_Z = {"semantic": 0, "panoptic": 1, "masks": 2, "boxes": 3, "keypoints": 4, "labels": 6}
DEFAULT_OPACITY = {"semantic": 0.5, "panoptic": 0.6, "masks": 0.6, "boxes": 1.0, "keypoints": 1.0,
                   "labels": 1.0}


def layer_z(layer: LayerId, model_rank: int) -> float:
    return 10.0 + KIND_Z.get(layer[1], 5) * 10.0 + model_rank * 0.1


def layer_title(layer: LayerId) -> str:
    return f"{layer[1]} · {layer[0]}"


class DisplayState(QObject):
    """Visibility, opacity, score threshold and class filter; ``changed(what)`` on each edit.

    ``what`` is "visible", "opacity", "score" or "classes" so the canvas can skip re-rendering
    when only a visibility or opacity changed (those are ImageItem properties).
    """

    changed = Signal(str)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.visible: dict[LayerId, bool] = {}
        self.opacity: dict[LayerId, float] = {}
        self.kind_opacity: dict[str, float] = dict(DEFAULT_OPACITY)
        self.score_threshold = 0.5
        self.hidden_classes: set[str] = set()
        self.overlays_shown = True

    def is_visible(self, layer: LayerId) -> bool:
        return self.overlays_shown and self.visible.get(layer, True)

    def opacity_of(self, layer: LayerId) -> float:
        return self.opacity.get(layer, self.kind_opacity.get(layer[1], 0.6))

    def set_visible(self, layer: LayerId, on: bool) -> None:
        self.visible[layer] = bool(on)
        self.changed.emit("visible")

    def set_opacity(self, layer: LayerId, value: float) -> None:
        v = float(min(max(value, 0.0), 1.0))
        self.opacity[layer] = v
        self.kind_opacity[layer[1]] = v
        self.changed.emit("opacity")

    def set_score_threshold(self, value: float) -> None:
        self.score_threshold = float(min(max(value, 0.0), 1.0))
        self.changed.emit("score")

    def set_class_hidden(self, name: str, hidden: bool) -> None:
        (self.hidden_classes.add if hidden else self.hidden_classes.discard)(name)
        self.changed.emit("classes")

    def set_overlays_shown(self, on: bool) -> None:
        self.overlays_shown = bool(on)
        self.changed.emit("visible")


# ---- undo commands ---------------------------------------------------------------------------
class SetVisible(QUndoCommand):
    def __init__(self, state: DisplayState, layer: LayerId, on: bool) -> None:
        super().__init__(f"{'Show' if on else 'Hide'} {layer_title(layer)}")
        self._s, self._layer, self._on = state, layer, on
        self._before = state.visible.get(layer, True)

    def redo(self) -> None:
        self._s.set_visible(self._layer, self._on)

    def undo(self) -> None:
        self._s.set_visible(self._layer, self._before)


class SetOpacity(QUndoCommand):
    """Slider drags merge into one undo step per layer."""

    ID = 1001

    def __init__(self, state: DisplayState, layer: LayerId, value: float) -> None:
        super().__init__(f"Opacity of {layer_title(layer)}")
        self._s, self._layer, self._value = state, layer, value
        self._before = state.opacity_of(layer)

    def id(self) -> int:
        return self.ID

    def mergeWith(self, other: QUndoCommand) -> bool:  # noqa: N802 - Qt override
        if not isinstance(other, SetOpacity) or other._layer != self._layer:
            return False
        self._value = other._value
        return True

    def redo(self) -> None:
        self._s.set_opacity(self._layer, self._value)

    def undo(self) -> None:
        self._s.set_opacity(self._layer, self._before)


class SetScoreThreshold(QUndoCommand):
    ID = 1002

    def __init__(self, state: DisplayState, value: float) -> None:
        super().__init__("Score threshold")
        self._s, self._value, self._before = state, value, state.score_threshold

    def id(self) -> int:
        return self.ID

    def mergeWith(self, other: QUndoCommand) -> bool:  # noqa: N802 - Qt override
        if not isinstance(other, SetScoreThreshold):
            return False
        self._value = other._value
        return True

    def redo(self) -> None:
        self._s.set_score_threshold(self._value)

    def undo(self) -> None:
        self._s.set_score_threshold(self._before)


class SetClassHidden(QUndoCommand):
    def __init__(self, state: DisplayState, name: str, hidden: bool) -> None:
        super().__init__(f"{'Hide' if hidden else 'Show'} class {name}")
        self._s, self._name, self._hidden = state, name, hidden
        self._before = name in state.hidden_classes

    def redo(self) -> None:
        self._s.set_class_hidden(self._name, self._hidden)

    def undo(self) -> None:
        self._s.set_class_hidden(self._name, self._before)


# ---- pure helpers ----------------------------------------------------------------------------
def filter_result(result: object, score_threshold: float, hidden: Iterable[str]) -> object:
    """Apply the score slider and the class filter to a cached result (no model re-run).

    Detections are subset with ``above`` and ``select``; semantic maps are returned as they are
    (hidden classes become transparent through the render style, see :func:`style_for`).
    """
    hidden = set(hidden)
    if isinstance(result, Detections):
        d = result.above(score_threshold)
        if hidden and len(d):
            keep = np.array([n not in hidden for n in d.names], bool)
            d = d.select(keep)
        return d
    return result


def style_for(base: object, result: object, hidden: Iterable[str]) -> object:
    """The render style with the hidden classes of a dense result made transparent."""
    hidden = frozenset(hidden)
    if hidden and isinstance(result, SemanticMap | PanopticMap) and hasattr(base, "transparent_classes"):
        return replace(base, transparent_classes=frozenset(base.transparent_classes) | hidden)
    return base


_COUNTS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def semantic_counts(result: SemanticMap) -> np.ndarray:
    """Pixels per class, memoised per result: a bincount of a 12000 x 9000 map takes ~0.3 s, so the
    worker computes it once beside the prediction and the UI thread only looks it up."""
    hit = _COUNTS.get(result)
    if hit is None:
        hit = result.counts()
        _COUNTS[result] = hit
    return hit


@dataclass(frozen=True)
class ClassCount:
    name: str
    count: int  # instances, or pixels for dense results
    unit: str  # "" for instances, "%" for a share of the pixels
    share: float = 0.0
    model: str = ""  # the result it was counted in


def class_counts(results: Mapping[str, object], score_threshold: float) -> list[ClassCount]:
    """The classes present (after the score threshold, before the class filter) with counts,
    grouped by model in ``results`` order: two semantic models each cover the image, so their
    shares are never summed (that gave "water 142%"); within one model they add up to at most 100%.
    """
    out: list[ClassCount] = []
    for model, r in results.items():
        out += _model_class_counts(model, r, score_threshold)
    return out


def _model_class_counts(model: str, r: object, score_threshold: float) -> list[ClassCount]:
    inst: dict[str, int] = {}
    pix: dict[str, int] = {}
    total = 0
    if isinstance(r, Detections):
        for n in r.above(score_threshold).names:
            inst[n] = inst.get(n, 0) + 1
    elif isinstance(r, SemanticMap):
        counts = semantic_counts(r)
        total = int(counts.sum())
        for i, c in enumerate(counts):
            if c and r.categories[i] != "__background__":
                pix[r.categories[i]] = pix.get(r.categories[i], 0) + int(c)
    elif isinstance(r, PanopticMap):
        total = r.segment_ids.size
        for seg in r.segments:
            n = r.categories[seg.category_id]
            if seg.isthing:
                inst[n] = inst.get(n, 0) + 1
            else:
                pix[n] = pix.get(n, 0) + seg.area
    out = [ClassCount(n, c, "", model=model) for n, c in sorted(inst.items(), key=lambda kv: (-kv[1], kv[0]))]
    out += [ClassCount(n, c, "%", c / max(total, 1), model=model)
            for n, c in sorted(pix.items(), key=lambda kv: -kv[1]) if n not in inst]
    return out


def result_summary(result: object, shown: object | None = None) -> str:
    """A few words for the status bar on what a model answered ("0 detections", "3 classes").

    ``shown`` is the same result after the score slider and class filter
    (:func:`filter_result`): when they hide detections the line says how many are left on screen
    ("31 detections, 0 shown"), so a model whose every answer lies below the slider does not look
    as if it drew nothing by mistake."""
    if isinstance(result, Detections):
        n = len(result)
        text = f"{n} detection{'' if n == 1 else 's'}"
        if isinstance(shown, Detections) and len(shown) != n:
            text += f", {len(shown)} shown"
        return text
    if isinstance(result, SemanticMap):
        k = sum(1 for i, c in enumerate(semantic_counts(result)) if c and result.categories[i] != "__background__")
        return f"{k} class{'' if k == 1 else 'es'}"
    if isinstance(result, PanopticMap):
        n = len(result.segments)
        return f"{n} segment{'' if n == 1 else 's'}"
    return ""


def legend_entries(results: Mapping[str, object]) -> list[tuple[str, tuple[int, int, int]]]:
    """(class name, RGB) for every class drawn, in the colors the renderer uses for categories."""
    seen: dict[tuple[str, tuple[int, int, int]], None] = {}
    for r in results.values():
        if isinstance(r, Detections):
            ids = sorted(set(int(c) for c in r.class_ids))
        elif isinstance(r, SemanticMap):
            ids = [i for i, c in enumerate(semantic_counts(r)) if c]
        elif isinstance(r, PanopticMap):
            ids = sorted({s.category_id for s in r.segments})
        else:
            continue
        palette = palette_for(r.categories)
        for i in ids:
            name = r.categories[i]
            if name != "__background__":
                seen[(name, tuple(int(v) for v in palette[i]))] = None
    return list(seen)


def inspect_point(image: np.ndarray | None, results: Mapping[str, object], x: float, y: float) -> list[str]:
    """Lines for the hover inspector at image point (x, y) (continuous pixel coordinates).

    ``results`` are the *filtered* results (what is on screen). The instance reported is the
    topmost mask containing the point (the renderer paints by ascending score), else the topmost box.
    """
    if image is None:
        return []
    h, w = image.shape[:2]
    col, row = int(np.floor(x)), int(np.floor(y))
    if not (0 <= col < w and 0 <= row < h):
        return []
    rgb = image[row, col]
    lines = [f"x {col}  y {row}", f"RGB {int(rgb[0])}, {int(rgb[1])}, {int(rgb[2])}"]
    for model_id, r in results.items():
        if isinstance(r, SemanticMap):
            lab = int(r.labels[row, col])
            if r.ignore_index is not None and lab == r.ignore_index:
                lines.append(f"{model_id}: void")
                continue
            p = r.prob_at(x, y)
            prob = f" p={float(p[lab]):.2f}" if p is not None and lab < len(p) else ""
            lines.append(f"{model_id}: {r.categories[lab]}{prob}")
        elif isinstance(r, Detections):
            hit = _instance_at(r, x, y)
            if hit is not None:
                i, how = hit
                b = r.boxes[i]
                lines.append(f"{model_id}: #{i} {r.names[i]} {float(r.scores[i]):.2f} ({how})")
                lines.append(f"    box {b[0]:.0f},{b[1]:.0f} – {b[2]:.0f},{b[3]:.0f}")
        elif isinstance(r, PanopticMap):
            sid = int(r.segment_ids[row, col])
            seg = r.segment(sid) if sid else None
            lines.append(f"{model_id}: " + (f"segment {sid} {r.categories[seg.category_id]}" if seg else "void"))
    return lines


def _instance_at(d: Detections, x: float, y: float) -> tuple[int, str] | None:
    """Topmost in the renderer's painting order (ascending score: the best is drawn last)."""
    from segviewer.render.masks import paint_order

    order = paint_order(d.scores)[::-1]
    if d.masks is not None:
        for i in order:
            if d.masks.contains(int(i), x, y):
                return int(i), "mask"
    b = d.boxes
    for i in order:
        if b[i, 0] <= x < b[i, 2] and b[i, 1] <= y < b[i, 3]:
            return int(i), "box"
    return None
