"""The Internals dock's keypoints view: Keypoint R-CNN's per-keypoint heatmaps for a clicked person.

A view module in the dock's sense (like ``_internals_dense``): it declares the capture kind it
draws (``keypoint_heatmaps``), installs its tab, and draws from the bundle the controller's ONE
hooked pass produced (:class:`~segviewer.adapters.internals.DetectorInternals`, whose
``keypoint_logits`` are the head's ``(N, K, 56, 56)`` output). Mask R-CNN's slides treat a
keypoint as a one-hot ``56 x 56`` mask, one per keypoint type, trained with a cross-entropy over
the map's cells: the gallery shows each type's map (softmax over the cells, or the raw logits),
the picked type's map is laid over the person's box on the image, with the model's keypoints of
the same pass: torchvision places each at the argmax of its map resized bicubically to the box
(:func:`segviewer.analysis.mask_head.heatmaps_to_keypoints` repeats it; the tests check both agree).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from segviewer.core.errors import SegviewerError
from segviewer.render.heatmap import heatmap_rgba
from segviewer.render.roi_grid import box_segments, cross_segments
from segviewer.ui.widgets.internals_tabs import KeypointsTab

__all__ = ["KINDS", "KeypointsView", "tile_label"]

KINDS = ("keypoint_heatmaps",)


def tile_label(name: str) -> str:
    """A keypoint's name over its 56 px tile: "left_elbow" -> "L elbow" (9 characters fit; cut, 9 of
    COCO's 17 read "left_sho~", "right_el~"...). The picker and the text keep the full name."""
    for side, short in (("left_", "L "), ("right_", "R ")):
        if name.startswith(side):
            return short + name[len(side):].replace("_", " ")
    return name.replace("_", " ")


class KeypointsView:
    """The keypoints tab and its drawing; the Internals controller routes bundles and clicks."""

    key, title, kinds = "keypoints", "Keypoints", KINDS

    def __init__(self, feature: Any) -> None:
        self.feature = feature
        self.tab = KeypointsTab()
        feature.panel.add_view(self.key, self.title, self.tab, self.kinds)
        self.tab.changed.connect(feature.update_view)
        self.drawn: dict[str, Any] | None = None  # what the last draw showed (tests read it back)

    def set_bundle(self, it: Any) -> None:
        """A new capture: the keypoint types of its model (nothing for a model without them)."""
        self.drawn = None
        if it is not None and getattr(it, "keypoint_logits", None) is not None:
            self.tab.set_names(tuple(it.keypoint_names))

    def draw(self, overlays: Any, it: Any, index: int | None) -> None:
        from segviewer.analysis.mask_head import spatial_softmax
        from segviewer.render.mask_gallery import gallery_rgba

        self.drawn = None
        t = self.tab
        if it is None or getattr(it, "keypoint_logits", None) is None:
            raise SegviewerError("This model has no keypoint head; select Keypoint R-CNN "
                                 "(keypointrcnn_resnet50_fpn) to see its keypoint heatmaps.")
        if index is None:
            t.clear()
            return
        logits = np.asarray(it.keypoint_logits[index], np.float32)
        k = logits.shape[0]
        names = list(it.keypoint_names) if len(it.keypoint_names) == k else [f"keypoint {i + 1}" for i in range(k)]
        picked = min(t.picked(), k - 1)
        probs = spatial_softmax(logits)
        maps = probs if t.as_probs() else logits
        flat = logits.reshape(k, -1).argmax(1)
        peaks = np.stack([flat // logits.shape[2], flat % logits.shape[2]], 1).astype(np.float64)
        pic, rects = gallery_rgba(maps, [tile_label(n) for n in names], picked, vmin=None, vmax=None, zoom=1, marks=peaks,
                                  columns=4 if k <= 24 else None)  # 56 px tiles at 1:1 in the narrow dock
        t.gallery.set_rgba(pic)
        box_model = it.detections.boxes[index]
        # the model's own keypoints from this pass (torchvision's rule on these maps, which
        # heatmaps_to_keypoints repeats: equal in the tests; float16-kept maps could tie differently)
        xy, scores = it.keypoints[index, :, :2], it.keypoints[index, :, 2]
        xy_img = it.to_image(np.concatenate([xy, xy], 1))[:, :2]
        box = it.to_image(box_model[None])[0]
        overlays.set("box", box_segments(box[None]))
        x0, y0, x1, y1 = (float(v) for v in box)
        heat = heatmap_rgba(maps[picked], cmap="inferno", alpha=200, alpha_by_value=True)
        overlays.image(heat, (x0, y0, max(x1 - x0, 1e-3), max(y1 - y0, 1e-3)))  # the map spans the box
        others = np.delete(xy_img, picked, 0)
        overlays.set("peaks", cross_segments(others, overlays.screen_px(4.0)) if len(others) else None)
        overlays.set("hover_points", cross_segments(xy_img[[picked]], overlays.screen_px(8.0)))
        self.drawn = {"index": index, "maps": maps, "gallery": pic, "rects": rects, "peaks": peaks,
                      "xy": xy_img, "scores": scores, "picked": picked}
        det = it.detections
        cls = int(det.groups[index])
        label = it.categories[cls] if 0 <= cls < len(it.categories) else str(cls)
        order = np.argsort(-scores)
        best = ", ".join(f"{names[i]} {scores[i]:.1f}" for i in order[:3])
        worst = ", ".join(f"{names[i]} {scores[i]:.1f}" for i in order[::-1][:3])
        px, py = xy_img[picked]
        t.info.setText(
            f"Detection #{index}: {label} {float(det.scores[index]):.2f}; {k} keypoint maps of "
            f"{logits.shape[1]} x {logits.shape[2]} cells over its box.\n{names[picked]} (green): at "
            f"({px:.1f}, {py:.1f}) px, logit {scores[picked]:.2f}; the softmax over its map puts "
            f"{float(probs[picked].max()):.3f} on the argmax cell. The map is resized bicubically to the box "
            f"and its argmax is the keypoint (torchvision's rule; equal to the model's output).\n"
            f"Surest: {best}. Least sure: {worst}.")
