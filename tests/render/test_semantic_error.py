"""The semantic error layer: each status's pixel count is a sum of confusion-matrix cells (against
the metrics' own accumulator), hover names both classes with their IoU, and the layer's colors
count the same."""

from __future__ import annotations

import numpy as np
import pytest

from segviewer.analysis.evaluation import SemanticAccumulator, semantic_scores
from segviewer.core.errors import SegviewerError
from segviewer.core.results import SemanticMap
from segviewer.render.layers import LayerKind, layer_kinds, render_layer
from segviewer.render.semantic_error import (
    BACKGROUND_OK,
    SEM_STATUS_NAMES,
    SEM_STATUS_RGB,
    semantic_errors,
)
from segviewer.render.style import RenderStyle

GT_CATS = ("__background__", "sky", "grass", "circle")
PRED_CATS = ("circle", "__background__", "grass", "sky", "road")  # other order, one class GT lacks


def _pair(seed: int, background: bool = True) -> tuple[SemanticMap, SemanticMap]:
    rng = np.random.default_rng(seed)
    gcats = GT_CATS if background else GT_CATS[1:]
    pcats = PRED_CATS if background else tuple(n for n in PRED_CATS if n != "__background__")
    g = rng.integers(0, len(gcats), (40, 50))
    g[rng.random(g.shape) < 0.05] = 255  # void
    # the prediction agrees 70% of the time (by name), else a random class of its own list
    pos = {n: i for i, n in enumerate(pcats)}
    agree = np.array([pos[n] for n in gcats])[np.where(g == 255, 0, g)]
    p = np.where(rng.random(g.shape) < 0.7, agree, rng.integers(0, len(pcats), g.shape))
    return SemanticMap(p, pcats), SemanticMap(g, gcats, ignore_index=255)


def _confusion_by_name(pred: SemanticMap, gt: SemanticMap) -> tuple[np.ndarray, list[str]]:
    acc = SemanticAccumulator()
    acc.update(pred, gt)
    return acc.matrix, acc.names


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_counts_are_confusion_matrix_cells_with_a_background_class(seed: int) -> None:
    pred, gt = _pair(seed)
    em = semantic_errors(pred, gt)
    m, names = _confusion_by_name(pred, gt)
    bg = names.index("__background__")
    c = em.counts
    diag = np.trace(m)
    assert c["background"] == m[bg, bg]
    assert c["correct"] == diag - m[bg, bg]
    assert c["missed"] == m[:, bg].sum() - m[bg, bg]  # background predicted where GT has a class
    assert c["spurious"] == m[bg, :].sum() - m[bg, bg]  # a class predicted on GT background
    assert c["wrong class"] == m.sum() - diag - c["missed"] - c["spurious"]
    assert c["ignored"] == int((gt.labels == 255).sum())
    assert sum(c.values()) == gt.labels.size
    # the error map's own matrix is the accumulator's, names in the same order
    assert list(em.names) == names and np.array_equal(em.confusion, m)


def test_without_background_everything_is_correct_or_wrong() -> None:
    pred, gt = _pair(3, background=False)
    em = semantic_errors(pred, gt)
    m, _ = _confusion_by_name(pred, gt)
    assert em.background is None
    assert em.counts["correct"] == np.trace(m) and em.counts["wrong class"] == m.sum() - np.trace(m)
    assert em.counts["missed"] == em.counts["spurious"] == em.counts["background"] == 0


def test_void_prediction_and_size_mismatch() -> None:
    g = np.zeros((4, 4), np.uint8)
    g[:, 2:] = 1
    gt = SemanticMap(g, ("sky", "grass"))
    p = g.copy()
    p[0, 0] = 255
    em = semantic_errors(SemanticMap(p, ("sky", "grass"), ignore_index=255), gt)
    assert em.counts["wrong class"] == 1 and em.info_at(0.5, 0.5)["predicted"] == "(void)"
    with pytest.raises(SegviewerError, match="same size"):
        semantic_errors(SemanticMap(np.zeros((4, 5), np.uint8), ("sky",)), gt)


def test_hover_names_both_classes_and_their_iou() -> None:
    pred, gt = _pair(4)
    em = semantic_errors(pred, gt)
    per_class = semantic_scores(pred, gt)["per_class"]
    ys, xs = np.nonzero(em.status == SEM_STATUS_NAMES.index("wrong class"))
    x, y = float(xs[0]) + 0.5, float(ys[0]) + 0.5
    info = em.info_at(x, y)
    t_name, p_name = GT_CATS[gt.labels[int(y), int(x)]], PRED_CATS[pred.labels[int(y), int(x)]]
    assert (info["true"], info["predicted"]) == (t_name, p_name) and t_name != p_name
    assert info["true_iou"] == pytest.approx(per_class[t_name]["iou"], abs=1e-12)
    text = em.hover_text(x, y)
    assert text == (f"Pixel: wrong class, predicted {p_name} (IoU {per_class[p_name]['iou']:.2f}), "
                    f"true {t_name} (IoU {per_class[t_name]['iou']:.2f})")
    ys, xs = np.nonzero(gt.labels == 255)
    assert em.hover_text(xs[0] + 0.5, ys[0] + 0.5).startswith("Pixel: ignored (ground truth void)")
    assert em.info_at(-1, 0) is None and em.hover_text(1e6, 0) == ""


def test_layer_colors_count_like_the_statuses() -> None:
    pred, gt = _pair(5)
    em = semantic_errors(pred, gt)
    assert layer_kinds(em) == (LayerKind.MASKS,)
    rgba = render_layer(em, LayerKind.MASKS, RenderStyle())
    assert rgba.shape == (*em.image_size, 4)
    assert int((rgba[..., 3] == 0).sum()) == em.counts["background"]  # background-right is not drawn
    for code, name in enumerate(SEM_STATUS_NAMES):
        if code == BACKGROUND_OK:
            continue
        drawn = np.all(rgba[..., :3] == SEM_STATUS_RGB[code], axis=-1) & (rgba[..., 3] > 0)
        assert int(drawn.sum()) == em.counts[name], name


def test_void_on_void_hovers_as_void_and_void_on_background_is_wrong() -> None:
    g = np.array([[0, 0, 1, 255]], np.uint8)  # background, background, sky, void
    gt = SemanticMap(g, ("__background__", "sky"), ignore_index=255)
    # void predicted only where the ground truth is void: "(void)" is no counted class
    em = semantic_errors(SemanticMap(np.array([[0, 0, 1, 255]], np.uint8), ("__background__", "sky"),
                                     ignore_index=255), gt)
    assert "(void)" not in em.names
    assert em.info_at(3.5, 0.5)["predicted"] == "(void)"
    assert em.hover_text(3.5, 0.5) == "Pixel: ignored (ground truth void), predicted (void)"
    # a void prediction on a counted background pixel predicts no class: wrong, as on a class pixel
    em = semantic_errors(SemanticMap(np.array([[255, 0, 255, 255]], np.uint8), ("__background__", "sky"),
                                     ignore_index=255), gt)
    assert [SEM_STATUS_NAMES[s] for s in em.status[0]] == ["wrong class", "background", "wrong class", "ignored"]
    assert em.counts["spurious"] == 0 and em.info_at(0.5, 0.5)["predicted"] == "(void)"


@pytest.mark.parametrize("g_bg,p_bg", [("background", "__background__"), ("__background__", "background"),
                                       ("Background", "background")])
def test_either_background_spelling_on_either_side(g_bg: str, p_bg: str) -> None:
    gt = SemanticMap(np.array([[0, 0, 1, 1]], np.uint8), (g_bg, "sky"))
    pred = SemanticMap(np.array([[1, 0, 1, 0]], np.uint8), ("sky", p_bg))
    em = semantic_errors(pred, gt)
    assert [SEM_STATUS_NAMES[s] for s in em.status[0]] == ["background", "spurious", "missed", "correct"]
    assert em.names == (g_bg, "sky") and em.background == 0
    assert em.info_at(0.5, 0.5)["predicted"] == g_bg
    m, names = _confusion_by_name(pred, gt)  # the metrics match the spellings the same way
    assert names == [g_bg, "sky"] and np.array_equal(em.confusion, m)
    assert semantic_scores(pred, gt)["per_class"][g_bg]["iou"] == pytest.approx(1 / 3)
