"""The Internals dock with the bundled CenterNet on a generated scene (real weights, the window's own
worker): the CenterNet tab is listed, one forward pass per image gives the layers' boxes and the
heads, the peaks drawn are the local maxima of the drawn heatmap (a plain loop), and a click draws
the offset, the centre and the box the heads decode there (recomputed from the drawn numbers)."""

from __future__ import annotations

import numpy as np
import pytest

from segviewer.adapters.registry import models_dir
from segviewer.synth.dataset import write_dataset

MODEL = "shapes_centernet"
TIMEOUT = 240_000
pytestmark = pytest.mark.skipif(not (models_dir() / f"{MODEL}.toml").is_file(),
                                reason=f"{MODEL} is not shipped in models/")


@pytest.fixture
def cn_window(qtbot, tmp_path, internals_window):  # noqa: ANN001, ANN201
    write_dataset(tmp_path, 1, seed=10_000_321, size=(240, 320))
    scene = next(p for p in sorted(tmp_path.rglob("scene_*.png")) if p.parent.name == "images")
    w, feat = internals_window(MODEL, scene)
    yield w, feat


def _loop_peaks(m: np.ndarray) -> set[tuple[int, int]]:
    h, w = m.shape
    out = set()
    for y in range(h):
        for x in range(w):
            nb = [m[j, i] for j in range(max(0, y - 1), min(h, y + 2)) for i in range(max(0, x - 1), min(w, x + 2))]
            if m[y, x] >= max(nb):
                out.add((y, x))
    return out


def test_centernet_tab_peaks_and_click(qtbot, cn_window) -> None:  # noqa: ANN001
    w, feat = cn_window
    it = feat.internals
    assert it is not None and "centernet_heads" in it.kinds, feat.message
    p = feat.panel
    tabs = {k: p.tabs.isTabVisible(i) for i, k in enumerate(p.keys)}
    assert tabs["centernet"] and not tabs["roi"] and not tabs["rpn"]
    assert p.tab_name() == "centernet"
    view = next(v for v in feat.views if v.key == "centernet")
    view.tab.cls.setCurrentIndex(1)  # the first class's heatmap
    cls = view.tab.class_id()
    assert cls == 0
    # the small crosses are every local maximum of the drawn heatmap: a plain loop over it
    segs = feat.overlays.segments["cells"]
    s, (sx, sy) = it.stride, it.scale
    centres = segs.reshape(-1, 2, 2, 2)[:, 0].mean(1)  # the horizontal stroke's midpoint
    drawn = {(int(round(cy / (s * sy) - 0.5)), int(round(cx / (s * sx) - 0.5))) for cx, cy in centres}
    assert drawn == _loop_peaks(it.heat[cls])
    assert "local maxima" in view.tab.counts.text()
    # the kept boxes are the layers' detections of that class above the tab's threshold
    thr = view.tab.threshold()
    det = w.session.results[MODEL]
    mine = (det.class_ids == cls + 1) & (det.scores >= thr)
    assert feat.overlays.count("kept") == 4 * int(mine.sum())
    # a click on the best kept peak: offset link, centre and box from the heads' numbers there
    view.tab.cls.setCurrentIndex(0)
    if len(it.peaks.scores):
        j = 0
        x = (it.peaks.xs[j] + 0.5) * s * sx
        y = (it.peaks.ys[j] + 0.5) * s * sy
        with qtbot.waitSignal(feat.viewUpdated, timeout=5000):
            feat.click(float(x), float(y))
        assert feat.message == ""
        pk = view.picked
        assert (pk.row, pk.col) == (it.peaks.ys[j], it.peaks.xs[j])
        dx, dy = it.offset[:, pk.row, pk.col]
        bw, bh = it.size[:, pk.row, pk.col]
        cx, cy = pk.col + dx, pk.row + dy
        want = s * np.array([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2])
        np.testing.assert_allclose(pk.box, want, rtol=1e-5, atol=1e-4)
        link = feat.overlays.segments["links"][0]
        np.testing.assert_allclose(link[1], [cx * s * sx, cy * s * sy], rtol=1e-5, atol=1e-3)
        assert feat.overlays.count("box") == 4
        assert "Offset head" in view.tab.peak.text()
        # the best peak's box is the layers' first detection (same pass, same decoder)
        if it.peaks.scores[0] >= it.score_thresh:
            ref = want * np.array([sx, sy, sx, sy])
            ref[0::2] = ref[0::2].clip(0, it.image_size[1])
            ref[1::2] = ref[1::2].clip(0, it.image_size[0])
            np.testing.assert_allclose(det.boxes[0], ref, rtol=1e-4, atol=1e-3)
    assert feat.overlays.heat.isVisible()
    assert w.passes == [MODEL]
    assert MODEL in w.session.results
