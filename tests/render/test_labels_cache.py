"""Tags from cached text coverage: a tag drawn through the color ramp equals drawing its fill and
then its text anti-aliased with OpenCV (the way tags were drawn before the cache), pixel for pixel,
for fills on both sides of the black/white text switch."""

from __future__ import annotations

import cv2
import numpy as np

from segviewer.core.colors import contrast_text
from segviewer.render.labels import FONT, tag_patch, tag_size, text_coverage
from segviewer.render.style import RenderStyle


def test_tag_from_cached_coverage_equals_drawing_it() -> None:
    rng = np.random.default_rng(7)
    for k, style in enumerate((RenderStyle(), RenderStyle(font_scale=0.9, font_thickness=2, label_padding=3))):
        for j in range(60):
            text = f"{('person', 'traffic light', 'ring', 'x')[j % 4]} {rng.uniform():.2f}"
            bg = tuple(int(v) for v in rng.integers(0, 256, 3))
            fg = contrast_text(bg)
            gw, gh, th, _ = tag_size(text, style)
            want = np.empty((gh, gw, 3), np.uint8)
            cv2.rectangle(want, (0, 0), (gw - 1, gh - 1), bg, -1)
            pad = style.label_padding
            cv2.putText(want, text, (pad, pad + th), FONT, style.font_scale, fg, style.font_thickness, cv2.LINE_AA)
            np.testing.assert_array_equal(tag_patch(text, bg, fg, style), want, err_msg=f"{k} {text} {bg}")
    cov = text_coverage("car 0.50", 0.5, 1, 2)
    assert not cov.flags.writeable and cov is text_coverage("car 0.50", 0.5, 1, 2)  # cached, shared read-only
    canvas = np.zeros((40, 90, 3), np.uint8)
    view = canvas[5:5 + cov.shape[0], 7:7 + cov.shape[1]]
    assert tag_patch("car 0.50", (10, 200, 30), (0, 0, 0), RenderStyle(), out=view) is view  # drawn in place
    assert canvas[5:5 + cov.shape[0], 7:7 + cov.shape[1]].any() and not canvas[:5].any()
