"""The Metrics dock: numbers for the current image and for the whole folder, the merge's knobs,
the error layer's hover line, and the folder evaluation's progress, cancel and export.

It only shows and asks; :mod:`segviewer.ui.features.groundtruth` computes (off the UI thread).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from PySide6.QtCore import QTimer, Signal
from PySide6.QtWidgets import (
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from segviewer.ui.widgets.controls import ElidedLabel, FocusComboBox, FocusDoubleSpinBox, FocusSpinBox

METHODS = ("heuristic", "upsnet")  # combo index -> MergeParams.method
TIDE_AP_TIP = ("TIDE's AP50 and dAP (Bolya et al. 2020, as the tidecv package computes them): the mean is over "
               "every class with a prediction or a ground truth, so a class that is only predicted counts as 0; "
               "COCOeval's AP (the 'dataset AP' rows) leaves classes without ground truth out.")
HEURISTIC_TIP = ("Heuristic (panoptic paper): instances by descending score, an instance dropped when less "
                 "than the overlap fraction of its mask is still free; stuff fills the rest, small stuff "
                 "regions become void.")
UPSNET_TIP = ("UPSNet's parameter-free head: per pixel, argmax over the stuff logits and one logit per "
              "instance (its mask logits pasted in its box + the semantic logit of its class); thing-like "
              "pixels no instance claims become void. Only the score threshold applies.")
UPSNET_WAITING = "UPSNet's head needs an instance model's and a semantic model's results with logits."


def _pct(v: Any) -> str:
    if v is None:
        return "–"
    v = float(v)
    return "–" if v < 0 else f"{100 * v:.1f}"


def metric_rows(report: Mapping[str, Any]) -> list[tuple[str, str, list[tuple[str, str]]]]:
    """(title, summary, [(child name, child value)]) rows for a metrics dict; pure, for tests."""
    rows: list[tuple[str, str, list[tuple[str, str]]]] = []
    pan = report.get("panoptic")
    if pan:
        for part in ("all", "things", "stuff"):
            r = pan[part]
            kids = []
            if part == "all":
                kids = [(name, f"PQ {_pct(c['pq'])}  SQ {_pct(c['sq'])}  RQ {_pct(c['rq'])}  "
                               f"TP {c['tp']} FP {c['fp']} FN {c['fn']}")
                        for name, c in pan.get("per_class", {}).items() if c["tp"] + c["fp"] + c["fn"]]
            rows.append((f"PQ {part}", f"{_pct(r['pq'])}   SQ {_pct(r['sq'])}  RQ {_pct(r['rq'])}", kids))
    sem = report.get("semantic")
    if sem:
        kids = [(name, f"IoU {_pct(c['iou'])}  acc {_pct(c['accuracy'])}")
                for name, c in sem.get("per_class", {}).items() if c["iou"] is not None]
        rows.append(("mIoU", _pct(sem["mean_iou"]), kids))
        rows.append(("pixel acc", _pct(sem["pixel_accuracy"]), []))
        rows.append(("mean acc", _pct(sem["mean_accuracy"]), []))
        rows.append(("fwIoU", _pct(sem["fw_iou"]), []))
    inst = report.get("instances")
    if inst:
        for iou_type, label in (("bbox", "box AP"), ("segm", "mask AP")):
            st = inst.get(iou_type)
            if isinstance(st, Mapping):
                kids = [(k, _pct(st[k])) for k in ("AP50", "AP75", "APs", "APm", "APl", "AR100") if k in st]
                rows.append((label, _pct(st["AP"]), kids))
    kps = report.get("keypoints")
    if isinstance(kps, Mapping):  # OKS through COCOeval(iouType="keypoints"), as segviewer eval
        kids = [(k, _pct(kps[k])) for k in ("AP50", "AP75", "APm", "APl", "AR") if k in kps]
        rows.append(("keypoint AP", _pct(kps["AP"]), kids))
    return rows


def total_rows(totals: Mapping[str, float], tide: Mapping[str, Mapping[str, Any]] | None = None
               ) -> list[tuple[str, str]]:
    """(title, value) rows of a dataset run's totals (``dataset_eval.summarize_rows``): averaged
    metrics as "mean <title>" in %, summed counts as integers; then, when given, TIDE over the
    dataset (``dataset_eval.dataset_tide``): AP50 and each error type's dAP (AP points) for boxes
    and masks; pure, for tests."""
    from segviewer.analysis.dataset_eval import FRACTION_KEYS
    from segviewer.ui.widgets.dataset_table import COLUMN_TITLES

    rows = [(f"mean {COLUMN_TITLES[k]}", _pct(totals[k])) for k in FRACTION_KEYS if k in totals]
    rows += [(COLUMN_TITLES[k], f"{int(round(totals[k]))}") for k in ("pred", "tp", "fp", "fn") if k in totals]
    types = [(COLUMN_TITLES[k], int(round(totals[k]))) for k in COLUMN_TITLES
             if k.startswith(("mask_", "box_")) and not k.endswith(("_ap", "_ap50")) and k in totals]
    if types:
        rows.append(("TIDE types", "  ".join(f"{t} {v}" for t, v in types)))
    if "infer_ms" in totals:
        rows.append(("mean ms", f"{totals['infer_ms']:.0f}"))
    from segviewer.analysis.tide import ERROR_TYPES, SHORT_NAMES

    for mode, label in (("bbox", "box"), ("segm", "mask")):
        r = (tide or {}).get(mode)
        if r:
            rows.append((f"TIDE {label} dAP", f"AP50 {r['ap50']:.1f}  " + "  ".join(
                f"{SHORT_NAMES[t]} {r['dAP'][t]:.2f}" for t in ERROR_TYPES)))
    return rows


class MetricsPanel(QWidget):
    paramsChanged = Signal()
    evaluateRequested = Signal()
    cancelRequested = Signal()
    exportRequested = Signal(str)  # "json" | "csv"

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(6, 4, 6, 4)
        lay.setSpacing(4)
        self.hover = QLabel("Under cursor: –")
        self.hover.setStyleSheet("font-weight: 600;")
        self.hover.setWordWrap(True)
        self.source = QLabel("No image.")
        self.source.setWordWrap(True)
        self.source.setStyleSheet("color: #8a8a8a;")
        self.notes = QLabel("")
        self.notes.setWordWrap(True)
        self.notes.setStyleSheet("color: #b07a1e;")
        self.tree = QTreeWidget()
        self.tree.setColumnCount(2)
        self.tree.setHeaderLabels(["Metric (%)", "Value"])
        self.tree.setRootIsDecorated(True)
        self.tree.setUniformRowHeights(True)
        self.tree.setAlternatingRowColors(True)
        self.image_item = QTreeWidgetItem(["This image", ""])
        self.dataset_item = QTreeWidgetItem(["Dataset run", ""])  # listed while a dataset image is shown
        self.folder_item = QTreeWidgetItem(["Folder", "not evaluated"])
        self.tree.addTopLevelItems([self.image_item, self.folder_item])
        self.tree.setColumnWidth(0, 120)
        for w in (self.hover, self.source, self.notes):
            lay.addWidget(w)
        lay.addWidget(self.tree, 1)

        merge = QGroupBox("Panoptic merge")
        grid = QGridLayout(merge)
        grid.setContentsMargins(6, 2, 6, 2)
        grid.setVerticalSpacing(2)
        self.method = FocusComboBox()
        self.method.addItems(["Heuristic", "UPSNet head"])
        self.method.model().item(0).setToolTip(HEURISTIC_TIP)  # type: ignore[attr-defined]
        self._preferred = "heuristic"  # what the user picked; shown whenever the results allow it
        self.upsnet_reason = UPSNET_WAITING
        self.method.activated.connect(self._on_method_picked)
        self.overlap = FocusDoubleSpinBox()
        self.overlap.setRange(0.0, 1.0)
        self.overlap.setSingleStep(0.05)
        self.overlap.setValue(0.5)
        self.overlap.setToolTip("Keep an instance only if at least this fraction of its mask is still free")
        self.stuff_area = FocusSpinBox()
        self.stuff_area.setRange(0, 1_000_000)
        self.stuff_area.setSingleStep(256)
        self.stuff_area.setValue(1024)
        self.stuff_area.setSuffix(" px")
        self.stuff_area.setToolTip("Stuff classes covering fewer pixels than this become void")
        self.min_score = FocusDoubleSpinBox()
        self.min_score.setRange(0.0, 1.0)
        self.min_score.setSingleStep(0.05)
        self.min_score.setValue(0.5)
        self.min_score.setToolTip("Instances scoring below this are left out of the merge")
        grid.addWidget(QLabel("Method"), 0, 0)
        grid.addWidget(self.method, 0, 1)
        grid.addWidget(QLabel("Overlap"), 0, 2)
        grid.addWidget(self.overlap, 0, 3)
        grid.addWidget(QLabel("Stuff ≥"), 1, 0)
        grid.addWidget(self.stuff_area, 1, 1)
        grid.addWidget(QLabel("Score ≥"), 1, 2)
        grid.addWidget(self.min_score, 1, 3)
        lay.addWidget(merge)
        self.set_upsnet_available(False, UPSNET_WAITING)
        self._debounce = QTimer(self)
        self._debounce.setSingleShot(True)
        self._debounce.setInterval(200)
        self._debounce.timeout.connect(self.paramsChanged)
        for spin in (self.overlap, self.stuff_area, self.min_score):
            spin.valueChanged.connect(lambda _v: self._debounce.start())

        folder = QGroupBox("Whole folder")
        fl = QVBoxLayout(folder)
        fl.setContentsMargins(6, 2, 6, 2)
        fl.setSpacing(2)
        row = QHBoxLayout()
        self.evaluate = QPushButton("Evaluate")
        self.evaluate.setToolTip("Run the selected models on every image of the folder and accumulate metrics")
        self.cancel = QPushButton("Cancel")
        self.cancel.setEnabled(False)
        self.export_json = QPushButton("JSON…")
        self.export_json.setToolTip("Export the folder's numbers (else this image's) as JSON")
        self.export_csv = QPushButton("CSV…")
        self.export_csv.setToolTip("Export the folder's numbers (else this image's) as CSV")
        for btn in (self.evaluate, self.cancel, self.export_json, self.export_csv):
            row.addWidget(btn)
        fl.addLayout(row)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.progress.setTextVisible(True)
        self.progress.setMaximumHeight(14)
        fl.addWidget(self.progress)
        # one line, elided (full text in the tooltip): "Evaluating 6 images with <every model>…"
        # must not widen the dock or push the buttons off
        self.status = ElidedLabel("", max_hint=240)
        fl.addWidget(self.status)
        lay.addWidget(folder)
        self.evaluate.clicked.connect(self.evaluateRequested)
        self.cancel.clicked.connect(self.cancelRequested)
        self.export_json.clicked.connect(lambda: self.exportRequested.emit("json"))
        self.export_csv.clicked.connect(lambda: self.exportRequested.emit("csv"))

    # ---- state from the feature ----------------------------------------------------------
    def merge_values(self) -> tuple[float, int, float]:
        return float(self.overlap.value()), int(self.stuff_area.value()), float(self.min_score.value())

    def merge_method(self) -> str:
        """The merge in effect: "heuristic" or "upsnet" (only when the current results allow it)."""
        return METHODS[max(self.method.currentIndex(), 0)]

    def upsnet_enabled(self) -> bool:
        return bool(self.method.model().item(1).isEnabled())  # type: ignore[attr-defined]

    def set_upsnet_available(self, ok: bool, reason: str = "") -> None:
        """Enable the "UPSNet head" choice when the current results carry logits; otherwise grey
        it out, say why in its tooltip, and show the heuristic (the user's pick comes back later)."""
        self.upsnet_reason = "" if ok else (reason or UPSNET_WAITING)
        item = self.method.model().item(1)  # type: ignore[attr-defined]
        item.setEnabled(ok)
        item.setToolTip(UPSNET_TIP if ok else f"Unavailable: {self.upsnet_reason}")
        want = self._preferred if ok else "heuristic"
        self.method.blockSignals(True)
        self.method.setCurrentIndex(METHODS.index(want))
        self.method.blockSignals(False)
        self._sync_method_widgets()

    def _on_method_picked(self, index: int) -> None:
        self._preferred = METHODS[index]
        self._sync_method_widgets()
        self.paramsChanged.emit()

    def _sync_method_widgets(self) -> None:
        upsnet = self.merge_method() == "upsnet"
        for spin in (self.overlap, self.stuff_area):
            spin.setEnabled(not upsnet)
        tip = UPSNET_TIP if upsnet else HEURISTIC_TIP
        if not upsnet and self.upsnet_reason:
            tip += f"\n\nUPSNet head unavailable: {self.upsnet_reason}"
        self.method.setToolTip(tip)

    def set_hover(self, text: str) -> None:
        self.hover.setText(text or "Under cursor: –")

    def set_source(self, text: str) -> None:
        self.source.setText(text)

    def set_notes(self, notes: list[str]) -> None:
        self.notes.setText("\n".join(notes))
        self.notes.setVisible(bool(notes))

    def _fill(self, top: QTreeWidgetItem, report: Mapping[str, Any] | None, summary: str) -> None:
        expanded = {top.child(i).text(0) for i in range(top.childCount()) if top.child(i).isExpanded()}
        top.takeChildren()
        top.setText(1, summary)
        for title, value, kids in metric_rows(report or {}):
            it = QTreeWidgetItem([title, value])
            for name, v in kids:
                it.addChild(QTreeWidgetItem([name, v]))
            top.addChild(it)
            it.setExpanded(title in expanded)
        top.setExpanded(True)
        self._fit_names()

    def _fit_names(self) -> None:
        """Widen the metric-name column to its longest visible name ("dataset keypoint AP"), from
        120 px up to half the tree, so the values keep their room."""
        want = max(120, self.tree.sizeHintForColumn(0))
        self.tree.setColumnWidth(0, min(want, max(120, self.tree.viewport().width() // 2)))

    def show_image(self, report: Mapping[str, Any] | None, summary: str = "") -> None:
        self._fill(self.image_item, report, summary)

    def show_folder(self, report: Mapping[str, Any] | None, summary: str) -> None:
        self.folder_item.setText(0, "Folder")
        self._fill(self.folder_item, report, summary)

    def show_dataset_image(self, report: Mapping[str, Any] | None, summary: str = "") -> None:
        """A stored dataset run's numbers for this image, under "This image" (the live models');
        None removes the section."""
        listed = self.tree.indexOfTopLevelItem(self.dataset_item) >= 0
        if report is None:
            if listed:
                self.tree.takeTopLevelItem(self.tree.indexOfTopLevelItem(self.dataset_item))
            return
        if not listed:
            self.tree.insertTopLevelItem(1, self.dataset_item)
        self._fill(self.dataset_item, report, summary)

    def dataset_value(self, title: str) -> str | None:
        """The value shown for a row of "Dataset run" (tests, screenshots)."""
        for i in range(self.dataset_item.childCount()):
            if self.dataset_item.child(i).text(0) == title:
                return self.dataset_item.child(i).text(1)
        return None

    def show_totals(self, title: str, totals: Mapping[str, float] | None, summary: str,
                    tide: Mapping[str, Mapping[str, Any]] | None = None,
                    ap: Mapping[str, Any] | None = None, ap_backend: str = "",
                    keypoints: Mapping[str, Any] | None = None) -> None:
        """The second section as a dataset run's totals (``title`` "Dataset totals"): the pooled
        dataset AP first (as the folder's numbers, children AP50 ...; keypoint AP too when the
        run and the ground truth have keypoints), then the per-image sums
        and means, TIDE's dAP with its counts per class below; or back to the folder's place
        (``totals`` None)."""
        from segviewer.analysis.tide import SHORT_NAMES

        top = self.folder_item
        top.takeChildren()
        top.setText(0, title)
        top.setText(1, summary)
        pooled = {k: v for k, v in (("instances", ap), ("keypoints", keypoints)) if v}
        for t, value, kids in metric_rows(pooled):
            it = QTreeWidgetItem([f"dataset {t}", value])
            it.setToolTip(0, f"pooled over the run's images by COCOeval ({ap_backend or 'COCOeval'})")
            for name, v in kids:
                it.addChild(QTreeWidgetItem([name, v]))
            top.addChild(it)
        for name, v in total_rows(totals or {}, tide):
            it = QTreeWidgetItem([name, v])
            mode = {"TIDE box dAP": "bbox", "TIDE mask dAP": "segm"}.get(name)
            if mode:
                it.setToolTip(1, TIDE_AP_TIP)
            for cls, counts in ((tide or {}).get(mode, {}).get("per_class", {}).items() if mode else ()):
                it.addChild(QTreeWidgetItem([cls, "  ".join(f"{SHORT_NAMES[t]} {n}" for t, n in counts.items())]))
            top.addChild(it)
        top.setExpanded(True)
        self._fit_names()

    def section_value(self, title: str) -> str | None:
        """The value shown for a row of the second section (the folder's or the dataset's)."""
        for i in range(self.folder_item.childCount()):
            if self.folder_item.child(i).text(0) == title:
                return self.folder_item.child(i).text(1)
        return None

    def image_value(self, title: str) -> str | None:
        """The value shown for a row of "This image" (tests, screenshots)."""
        for i in range(self.image_item.childCount()):
            if self.image_item.child(i).text(0) == title:
                return self.image_item.child(i).text(1)
        return None

    def set_running(self, running: bool) -> None:
        self.evaluate.setEnabled(not running)
        self.cancel.setEnabled(running)

    def set_progress(self, done: int, total: int, text: str) -> None:
        self.progress.setRange(0, max(total, 1))
        self.progress.setValue(done)
        self.status.setText(text)
