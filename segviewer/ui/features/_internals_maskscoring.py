"""The Internals dock's "Mask scoring" view: is a mask's score its quality? (Mask Scoring R-CNN)

Draws from the bundle of ONE hooked pass of a Mask Scoring model (``shapes_msrcnn``:
:class:`~segviewer.adapters.mask_scoring.MaskScoringInternals`, the two-stage internals plus the
MaskIoU head's predicted IoU on the same RoI features). For every detection of the pass: its
box score ``s_cls`` (Mask R-CNN's rule) and ``s_cls x s_iou`` (Mask Scoring R-CNN's), plotted
against the mask's *real* IoU with the image's ground truth (the Metrics dock's, matched by class
name; the best same-class ground-truth mask, 0 when none) with each rule's Pearson correlation;
without ground truth, against the predicted IoU. A click on a detection rings its two points and
reads out its numbers. The masks are the bundle's own (:meth:`DetectorInternals.masks`, equal
to the layers' masks). The tab's "Layer scored by" picks the rule the layer's detections carry
(``params.extra["scoring"]``, as ``segviewer predict --set scoring=box``): that model's own
parameters take it and the worker runs the model again (one hooked pass, or its cached pass).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from PySide6.QtCore import QObject

from segviewer.core.errors import SegviewerError
from segviewer.render.roi_grid import box_segments
from segviewer.ui.widgets.internals_maskscoring_tab import MaskScoringTab

__all__ = ["KINDS", "MaskScoringView", "real_ious_against"]

KINDS = ("mask_scoring",)


def real_ious_against(it: Any, gt: Any) -> np.ndarray | None:
    """(N,) each detection's real mask IoU with ``gt`` (a ground-truth Detections with masks), its
    classes matched to the model's by name; None without usable instance ground truth."""
    from segviewer.analysis.mask_scoring import real_ious

    if gt is None or getattr(gt, "masks", None) is None:
        return None
    if tuple(gt.image_size) != tuple(it.image_size):
        return None
    index = {name: i for i, name in enumerate(it.categories)}
    gl = np.array([index.get(gt.categories[c], -1) if 0 <= c < len(gt.categories) else -1
                   for c in gt.class_ids], np.int64)
    pred = it.masks(0.5).to_full()
    return real_ious(it.detections.groups, pred, gl, gt.masks.to_full())


class MaskScoringView:
    """The tab and its drawing; installed as one of the controller's own views."""

    key, title, kinds = "mask_scoring", "Mask scoring", KINDS
    hint = "Click a detection: its box score, predicted mask IoU and real IoU."

    def __init__(self, feature: Any) -> None:
        self.feature = feature
        self.tab = MaskScoringTab()
        feature.panel.add_view(self.key, self.title, self.tab, self.kinds)
        self.tab.rule.currentIndexChanged.connect(lambda *_: self.set_rule(self.tab.rule_key()))
        self.tab.rule.setEnabled(False)  # until a Mask Scoring model's pass is here
        self.it: Any = None
        self.selected: int | None = None
        self.drawn: dict[str, Any] | None = None  # what the last draw showed (tests read it back)
        self._real: tuple[Any, Any, np.ndarray | None] | None = None  # (bundle, gt, real IoUs)
        gt_feature = feature.window.findChild(QObject, "groundtruth_feature")
        if gt_feature is not None:
            gt_feature.groundTruthLoaded.connect(self._on_gt)

    def _gt(self) -> Any:
        f = self.feature.window.findChild(QObject, "groundtruth_feature")
        gt = getattr(f, "gt", None)
        return getattr(gt, "instances", None) if gt else None

    def _on_gt(self) -> None:
        if self.feature.active and self.feature.panel.tab_name() == self.key:
            self.feature.update_view()

    def on_bundle(self, role: str, bundle: Any, error: str = "") -> None:
        """The controller's ``_apply``: the detector's bundle (or None) for the current image."""
        if role != "detector":
            return
        self.it = bundle if getattr(bundle, "mask_scoring", None) is not None else None
        self.selected = None if self.it is None or not len(self.it.detections) else int(
            np.argmax(self.it.mask_scoring.mask_scores))
        self.drawn = None
        self.tab.rule.setEnabled(self.it is not None)
        if self.it is not None:
            self.tab.show_rule(str(self.it.rule))  # the rule the shown pass used

    def set_rule(self, rule: str) -> None:
        """Score the layer by ``rule`` ("mask" or "box"): the session's parameters carry it (later
        images keep it) and the worker runs the model with it -- ONE hooked pass gives the layer
        and this tab's bundle, or the cached pass when this rule ran on this image before. The
        UI never calls the model itself."""
        f = self.feature
        s = f.session
        model = f.model_id
        if model is None:
            return
        # this model's own setting (others keep their cache keys); the default rule needs no key,
        # so its cached passes stay valid
        s.set_model_extra(model, "scoring", None if rule == "mask" else rule)
        if s.image is None or self.it is None:
            return
        f._capture("detector", model, force=True)  # hooks on, same request key as the layer's
        if model in s.models:
            s.run_models([model])  # merged with the capture (or a cache hit): no second pass

    def real_ious(self) -> np.ndarray | None:
        """The current bundle's real mask IoUs (cached per bundle and ground truth)."""
        gt = self._gt()
        if self._real is None or self._real[0] is not self.it or self._real[1] is not gt:
            self._real = (self.it, gt, real_ious_against(self.it, gt) if self.it is not None else None)
        return self._real[2]

    def click(self, x: float, y: float) -> None:
        if self.it is None:
            raise SegviewerError("Select shapes_msrcnn (Mask R-CNN with a MaskIoU head) to compare its scoring rules.")
        self.selected = self.feature.pick_detection(x, y)

    def draw(self, overlays: Any) -> None:
        from segviewer.analysis.mask_scoring import pearson

        t, it = self.tab, self.it
        self.drawn = None
        if it is None:
            t.set_points(np.zeros(0), np.zeros(0), np.zeros(0), "real mask IoU")
            t.set_picked(None)
            t.counts.setText("")
            t.info.setText("This model has no MaskIoU head; select shapes_msrcnn (the bundled Mask R-CNN "
                           "with Mask Scoring R-CNN's MaskIoU head) to compare the two scoring rules.")
            return
        ms = it.mask_scoring
        box, iou, mask = ms.box_scores, ms.mask_iou, ms.mask_scores
        real = self.real_ious()
        x = real if real is not None else iou
        t.set_points(x, box, mask, "real mask IoU" if real is not None else "predicted mask IoU (no ground truth)")
        n = len(box)
        if real is not None:
            r_box, r_mask, r_iou = pearson(box, real), pearson(mask, real), pearson(iou, real)
            t.counts.setText(
                f"{n} detections. Pearson r with the real mask IoU: box score {r_box:.3f}, Mask Scoring "
                f"{r_mask:.3f} (predicted IoU alone {r_iou:.3f}).")
        else:
            r_box = r_mask = r_iou = float("nan")
            t.counts.setText(f"{n} detections. No instance ground truth beside this image, so the x axis is the "
                             "MaskIoU head's prediction; open a shapes-world scene (assets/scenes) for real IoUs.")
        i = self.selected
        if i is None or not 0 <= i < n:
            t.set_picked(None)
            t.info.setText("Click a detection on the image.")
            overlays.set("box", None)
        else:
            t.set_picked(float(x[i]), (float(box[i]), float(mask[i])))
            overlays.set("box", box_segments(it.to_image(it.detections.boxes[[i]])))
            cls = int(it.detections.groups[i])
            name = it.categories[cls] if 0 <= cls < len(it.categories) else str(cls)
            real_txt = f"; real IoU {float(real[i]):.3f}" if real is not None else ""
            t.info.setText(
                f"Detection #{i}: {name}. Box score s_cls {float(box[i]):.3f}; predicted mask IoU s_iou "
                f"{float(iou[i]):.3f}{real_txt}.\nMask Scoring's score s_cls × s_iou = {float(mask[i]):.3f}.")
        self.drawn = {"x": x, "box": box, "mask": mask, "iou": iou, "real": real, "selected": i,
                      "pearson": {"box": r_box, "mask": r_mask, "iou": r_iou}}
