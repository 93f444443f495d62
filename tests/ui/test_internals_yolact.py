"""The Internals dock with the bundled YOLACT (shapes_yolact): the YOLACT tab is the one listed, one
pass per image gives the layers' boxes and masks and the prototypes; the gallery's tiles are the
pass's prototypes, a click on a detection's mask shows its coefficients as bars, and the four step
pictures rebuild, from the drawn numbers alone (bars x gallery -> P c -> sigmoid -> torch's bilinear
resize -> crop -> threshold), the very mask the layer shows."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from segviewer.adapters.base import PredictParams
from segviewer.adapters.registry import models_dir
from segviewer.render.heatmap import heatmap_rgba

MODEL = "shapes_yolact"
COLUMN = 270  # tests/ui/test_internals_width.py: the dock's left column
pytestmark = pytest.mark.skipif(not (models_dir() / f"{MODEL}.toml").is_file(),
                                reason=f"{MODEL} is not shipped in models/")


@pytest.fixture
def yolact_window(qtbot, tmp_path, internals_window):  # noqa: ANN001, ANN201
    import cv2

    from segviewer.training.data import VAL_SEED, shapes_instance

    smp = shapes_instance(VAL_SEED + 600_000, size=(300, 400))  # not the model's 256 frame: a real rescale
    path = tmp_path / "scene.png"
    cv2.imwrite(str(path), smp.image[..., ::-1])
    w, feat = internals_window(MODEL, path, params=PredictParams(min_score=0.05))
    yield w, feat


def _inside(crop: np.ndarray, offset: np.ndarray) -> tuple[float, float]:
    """An image point on one of the mask's pixels (the middle one in raster order)."""
    ys, xs = np.nonzero(crop)
    j = len(ys) // 2
    return float(offset[0] + xs[j] + 0.5), float(offset[1] + ys[j] + 0.5)


def test_yolact_tab_gallery_bars_and_assembly(qtbot, yolact_window) -> None:  # noqa: ANN001
    w, feat = yolact_window
    p = feat.panel
    tabs = {k: p.tabs.isTabVisible(i) for i, k in enumerate(p.keys)}
    assert tabs["yolact"] and tabs["yolo"] and not tabs["roi"]  # a YOLACT pass is a YOLO pass too
    assert p.tab_name() == "yolact"  # the model's own view first
    view = feat.view
    assert view is not None and view.key == "yolact"
    it = view.it
    assert it is feat.internals and it.coef.shape == (len(it.detections), it.proto.shape[0])
    k = it.proto.shape[0]
    assert f"k = {k} prototypes" in p.status.text()
    # the gallery: tile j is prototype j of this pass on the drawn colour scale
    d = view.drawn
    lo, hi = d["range"]
    assert len(d["rects"]) == k
    for j, (x, y, tw, th) in enumerate(d["rects"]):
        tile = d["gallery"][y: y + th, x: x + tw]
        np.testing.assert_array_equal(tile, heatmap_rgba(it.proto[j], lo, hi, "viridis", alpha=255))
    assert view.tab.gallery.item.image is not None
    # a click on the mask of a detection other than the one shown first
    layer = w.session.results[MODEL]
    assert layer.masks is not None and len(layer) >= 2
    first = view.index
    i = next(n for n in range(len(layer)) if n != first and layer.masks.crops[n].any())
    x, y = _inside(layer.masks.crops[i], layer.masks.offsets[i])
    want = it.detection_at(x, y)
    with qtbot.waitSignal(feat.viewUpdated, timeout=5000):
        feat.click(x, y)
    assert feat.message == ""
    assert view.index == want and view.tab.detection.currentData() == want
    i = want
    bars = view.tab.bars.values
    np.testing.assert_array_equal(bars, it.coef[i])
    assert np.all(np.abs(bars) <= 1.0)
    # the steps: it.assembly(i)'s arrays, pictured; rebuilt here from the bars and the prototypes alone
    a = it.assembly(i)
    d = view.drawn
    for name in ("linear", "sigmoid", "crop", "mask"):
        np.testing.assert_array_equal(getattr(d["assembly"], name), getattr(a, name))
    steps = d["steps"]
    np.testing.assert_array_equal(view.tab.steps["linear"].rgba, steps["linear"])
    lin = np.einsum("k,khw->hw", bars.astype(np.float64), d["proto"].astype(np.float64))
    np.testing.assert_allclose(a.linear, lin, rtol=1e-4, atol=1e-4)
    m = float(np.abs(a.linear).max())
    np.testing.assert_array_equal(steps["linear"], heatmap_rgba(a.linear, -m, m, "diverging", alpha=255))
    np.testing.assert_array_equal(steps["sigmoid"], heatmap_rgba(a.sigmoid, 0.0, 1.0, "viridis", alpha=255))
    sig = torch.sigmoid(torch.from_numpy(lin.astype(np.float32)))[None, None]
    sx, sy = it.scale
    s = it.proto_stride
    up = F.interpolate(sig, scale_factor=(s * sy, s * sx), mode="bilinear", align_corners=False,
                       recompute_scale_factor=False)[0, 0].numpy()
    (x0, y0), (ch, cw) = a.offset, a.crop.shape
    np.testing.assert_allclose(a.crop, up[y0: y0 + ch, x0: x0 + cw], atol=2e-4)
    np.testing.assert_array_equal(steps["mask"][..., 0] > 127, a.mask)  # the thresholded picture is the mask
    # ... and that mask is the layer's: the model's output mask of this detection
    assert d["same_as_layer"]
    np.testing.assert_array_equal(a.mask, layer.masks.crops[i])
    assert tuple(layer.masks.offsets[i]) == tuple(a.offset)
    assert f"{cw}x{ch} px" in view.tab.captions["crop"].text()
    # the canvas: the picked box, the mask's outline
    b = layer.boxes[i]
    np.testing.assert_allclose(feat.overlays.segments["box"][0].ravel(), [b[0], b[1], b[2], b[1]], atol=1e-3)
    assert feat.overlays.count("kept") > 0 and feat.overlays.heat.isVisible()
    # the picker: another detection by index
    j = next(n for n in range(len(layer)) if n != i)
    with qtbot.waitSignal(feat.viewUpdated, timeout=5000):
        view.tab.detection.setCurrentIndex(view.tab.detection.findData(j))
    np.testing.assert_array_equal(view.tab.bars.values, it.coef[j])
    assert view.drawn["index"] == j
    # a click on empty background says so, and keeps the picked detection
    with qtbot.waitSignal(feat.messageShown, timeout=5000):
        feat.click(-50.0, -50.0)
    assert "No detection" in feat.message and view.index == j
    assert view.tab.minimumSizeHint().width() <= COLUMN  # filled, the tab still fits the dock's column
    # the YOLO grid tab draws the same pass: the detector under the masks (a click picks its cell)
    grid = next(v for v in feat.views if v.key == "yolo")
    assert grid.it is it
    with qtbot.waitSignal(feat.viewUpdated, timeout=5000):
        p.tabs.setCurrentIndex(p.keys.index("yolo"))
    assert p.status.text().endswith(grid.hint)  # the status line speaks for the tab shown
    bx = layer.boxes[j]
    x, y = float(bx[0] + bx[2]) / 2, float(bx[1] + bx[3]) / 2
    with qtbot.waitSignal(feat.viewUpdated, timeout=5000):
        feat.click(x, y)
    assert feat.message == "" and grid.cell == it.cell_at(x, y)
    conf = [float(v) for v in re.findall(r"confidence σ\(t_o\) ([0-9.]+)", grid.tab.cell.text())]
    np.testing.assert_allclose(conf, it.grid.conf[grid.cell], atol=6e-4)
    assert view.index == j  # the YOLACT tab kept its pick
    with qtbot.waitSignal(feat.viewUpdated, timeout=5000):
        p.tabs.setCurrentIndex(p.keys.index("yolact"))
    assert f"k = {k} prototypes" in p.status.text()
    assert w.passes == [MODEL]  # one forward pass gave the layer and every picture
