"""The Upsampling and Receptive-field tabs in the real window with the bundled FCN and PCV nets:
both come from ONE hooked pass of the FCN (counted), what is drawn is recomputed here from the
bundle (the five panels, the overlay, the clicked cells; the field box and the effective field
inside it), and the PCV head's dilated taps come from its own single pass."""

from __future__ import annotations

import collections
from pathlib import Path

import numpy as np
import pytest
import torch

from segviewer.adapters.registry import get_card
from segviewer.analysis import receptive as rf
from segviewer.analysis.upsampling import METHODS, bilinear_kernel
from segviewer.core.colors import palette_for
from segviewer.render.heatmap import heatmap_rgba
from segviewer.synth.dataset import write_dataset
from segviewer.ui.features._internals_upsampling import map_rgba
from segviewer.ui.features.internals import InternalsFeature
from segviewer.ui.main_window import MainWindow
from segviewer.ui.model_host import registry_factory
from segviewer.ui.widgets.internals_upsampling_tab import COARSE
from segviewer.ui.worker import InferenceWorker

MODELS = ["shapes_maskrcnn", "shapes_fcn", "shapes_pcv"]
TIMEOUT = 240_000


@pytest.fixture
def fcn_window(qtbot, tmp_path):  # noqa: ANN001, ANN201
    write_dataset(tmp_path, 1, seed=10_000_321, size=(192, 256))
    scene = next(p for p in sorted(tmp_path.rglob("scene_*.png")) if p.parent.name == "images")
    torch.set_num_threads(1)
    passes: collections.Counter[str] = collections.Counter()

    def factory(model_id: str):  # noqa: ANN202
        adapter = registry_factory(model_id, torch_threads=1)
        load = adapter.load

        def counted_load(device: str, weights: Path | None = None, progress=None) -> None:  # noqa: ANN001
            load(device, weights=weights)
            m = adapter.module
            getattr(m, "backbone", m).register_forward_pre_hook(lambda *_: passes.update([model_id]))

        adapter.load = counted_load
        return adapter

    w = MainWindow(InferenceWorker(factory, process=False), cards=[get_card(m) for m in MODELS])
    w.passes = passes
    qtbot.addWidget(w)
    w.resize(1300, 850)
    w.show()
    qtbot.waitExposed(w)
    feat = w.findChild(InternalsFeature)
    feat.dock.show()
    feat.dock.raise_()
    with qtbot.waitSignal(feat.captured, timeout=TIMEOUT):
        w.start([scene], no_default=True)
    yield w, feat
    w.shutdown()


def test_upsampling_and_receptive_views_from_one_fcn_pass(qtbot, fcn_window) -> None:  # noqa: ANN001
    w, feat = fcn_window
    p = feat.panel
    up, rv = feat.own_views["upsampling"], feat.own_views["receptive"]
    p.tabs.setCurrentIndex(p.keys.index("upsampling"))
    qtbot.waitUntil(lambda: up.bundle is not None, timeout=TIMEOUT)
    assert w.passes["shapes_fcn"] == 1
    u = up.bundle.upsampling
    assert u is not None and u.image_size == w.session.image.shape[:2]
    # the panels show the bundle's own maps: the five methods of analysis.upsampling on score_fr's scores
    (rh, rw) = u.valid
    shown = up.tab.panels[METHODS[2]].item.image
    palette = palette_for(u.categories)
    expect = map_rgba(u.upsample("max-unpooling")[:, :-(-rh // 16), :-(-rw // 16)], None, palette, 1.0)
    np.testing.assert_array_equal(shown, expect)
    assert (up.tab.panels[COARSE].item.image.shape[:2]) == (-(-rh // 32), -(-rw // 32))
    assert "max |Δw|" in up.tab.compare.text()
    # the kernel panels: the model's own upscore2 weight (class 0 -> 0 in labels mode) beside the tent
    learned, tent = u.weight[0, 0], bilinear_kernel(u.weight.shape[0], 4)[0, 0]
    vmax = float(max(np.abs(learned).max(), np.abs(tent).max()))
    np.testing.assert_array_equal(up.tab.kernels["learned"].item.image,
                                  heatmap_rgba(learned, -vmax, vmax, "diverging", alpha=255))
    # one method over the image; a click shows the cells it read and where the switch sent the score
    up.tab.overlay.setCurrentIndex(up.tab.overlay.findData("bilinear"))
    assert feat.overlays.heat.isVisible() and feat.overlays.heat.image.shape[:2] == (rh, rw)
    h, wd = u.image_size
    with qtbot.waitSignal(feat.viewUpdated, timeout=5000):
        feat.click(wd * 0.4, h * 0.6)
    assert feat.message == ""
    assert feat.overlays.count("box") == 4 and feat.overlays.count("anchors") == 4 and feat.overlays.count("kept") == 4
    sx, sy = wd / rw, h / rh
    r16, c16 = int(h * 0.6 / sy // 16), int(wd * 0.4 / sx // 16)
    sw = int(u.switches[r16 // 2, c16 // 2])
    green = feat.overlays.segments["kept"].reshape(-1, 2)
    assert np.isclose(green[:, 0].min(), (sw % u.pool_size[1]) * 16 * sx)
    assert np.isclose(green[:, 1].min(), (sw // u.pool_size[1]) * 16 * sy)

    # receptive field: same bundle, no new pass
    p.tabs.setCurrentIndex(p.keys.index("receptive"))
    assert rv.bundle is up.bundle and w.passes["shapes_fcn"] == 1
    rv.tab.layer.setCurrentIndex(rv.tab.layer.findData("pool3"))
    with qtbot.waitSignal(feat.viewUpdated, timeout=5000):
        feat.click(wd * 0.5, h * 0.5)
    name, c, row, col, box = rv.unit()
    chain = rv.bundle.receptive
    assert box == rf.field_box(chain.layers_upto("pool3"), row, col)
    y0, y1, x0, x1 = box
    region = feat.overlays.segments["region"].reshape(-1, 2)
    assert np.allclose([region[:, 0].min(), region[:, 1].min()], [x0 * sx, y0 * sy], atol=1e-3)
    assert np.allclose([region[:, 0].max(), region[:, 1].max()], [(x1 + 1) * sx, (y1 + 1) * sy], atol=1e-3)
    # the heatmap drawn is the unit's effective field, and it lies inside the box
    erf, (oy, ox) = chain.effective_field(name, c, row, col)
    heat = feat.overlays.heat
    assert heat.isVisible() and heat.image.shape[:2] == erf[:rh - oy, :rw - ox].shape
    rect = heat.mapRectToParent(heat.boundingRect())
    assert np.isclose(rect.x(), ox * sx) and np.isclose(rect.y(), oy * sy)
    ys, xs = np.nonzero(erf)
    assert ys.size and y0 <= ys.min() + oy and ys.max() + oy <= y1 and x0 <= xs.min() + ox and xs.max() + ox <= x1
    assert "inside the box" in rv.tab.unit.text()
    # the unit's cross is 8 screen pixels at this zoom (image pixels: invisible on a big photo)
    cross = feat.overlays.segments["points"]
    half = float(cross[0, 1, 0] - cross[0, 0, 0]) / 2
    px = max(feat.overlays.vb.viewPixelSize())
    assert np.isclose(half, 8.0 * px, rtol=1e-4) and not np.isclose(px, 1.0)

    # the PCV head's dilated taps: one pass of the PCV net, 7 x 7 taps (3x3 d2 then 3x3 d4)
    rv.tab.taps.setChecked(True)
    qtbot.waitUntil(lambda: feat.overlays.count("peaks") > 0, timeout=TIMEOUT)
    assert w.passes["shapes_pcv"] == 1 and w.passes["shapes_fcn"] == 1
    assert feat.overlays.count("peaks") == 2 * 49 and feat.overlays.count("anchors") == 2 * 9
    assert "49 cells" in rv.tab.taps_info.text()
