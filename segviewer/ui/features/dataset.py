"""The dataset view: where does the model fail? One row per image, worst first, error types.

A dock (beside Models) with a virtual table (:class:`~segviewer.ui.widgets.dataset_table.DatasetTableModel`,
sorted and filtered on numpy arrays) and a thumbnail grid with a badge of the sorted metric
(:mod:`segviewer.ui.widgets.thumbnails`). Flow, heavy work off the UI thread:

* Open Dataset (a COCO instances/panoptic JSON, a ``metadata.csv``, a folder; also a JSON given on
  the command line or dropped) -> :func:`segviewer.core.dataset_index.open_dataset` in a job ->
  rows with ground-truth counts; the runs already in the dataset's store are listed;
* a stored run chosen -> its rows from the store (nothing recomputed);
* Load Results (``segviewer predict``'s ``results.json``) or Run Model (the first selected model,
  in a child process) -> :class:`~segviewer.ui.features._dataset_jobs.DatasetRun`: rows arrive as
  they are made, Stop keeps them, the next run resumes;
* Run with an instance model and a semantic model selected (or Merge of two stored runs: the one
  shown and the "vs" one) -> a panoptic pair: each image's two results merged as
  ``predict --panoptic`` merges them and scored with PQ/SQ/RQ (a member already stored is reused);
* a row selected -> the image opens in the window and, once shown, its stored prediction (a pair:
  the merged panoptic map) and the error layer ("dataset errors", the TIDE type on hover in the
  status bar) are laid over it; the Metrics dock shows the same report for it and the run's
  dataset totals (:meth:`GroundTruthFeature.show_dataset`);
* A | B: the image with A's and B's layers as the Layers panel shows them (toggles, opacities,
  score threshold, hidden classes), the ground truth on both sides when it is on; redrawn when a
  toggle changes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import QEvent, QItemSelectionModel, QObject, Qt, QThreadPool, QTimer, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QListView,
    QStackedWidget,
    QTableView,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from segviewer.ui.jobs import run_background
from segviewer.ui.widgets.dataset_table import DatasetTableModel
from segviewer.ui.widgets.thumbnails import BadgeDelegate, ThumbnailCache, ThumbnailModel

DATASET_ERRORS = "dataset errors"
DATASET_PREDICTION = "dataset prediction"
COMPARED_PREDICTION = "compared prediction"  # run B of a comparison
DISAGREEMENT = "disagreement"  # B against A: instances only one has, pixels whose classes differ
GROUND_TRUTH_RUN = ("ground truth", "")  # "vs" item: B is the dataset's ground truth (no Δ columns)
ERROR_CHOICES = (("any error type", ""), ("classification", "cls"), ("localisation", "loc"), ("both", "both"),
                 ("duplicate", "dupe"), ("background", "bkg"), ("missed", "miss"))


def default_host_factory() -> Any:
    from segviewer.ui.model_host import ProcessHost, registry_factory

    return ProcessHost(registry_factory)


def _find(combo: QComboBox, key: tuple[str, str] | None) -> int:
    """The item whose data is the run ``key`` (Qt's findData does not compare Python tuples)."""
    for k in range(combo.count()):
        d = combo.itemData(k)
        if key is not None and d is not None and tuple(d) == tuple(key):
            return k
    return -1


def _run_text(key: tuple[str, str]) -> str:
    """"model [weights]" with each weights hash cut to 8 characters (a pair: "a+b [wa+wb]")."""
    return f"{key[0]} [{'+'.join(h[:8] for h in key[1].split('+'))}]"


def _button(text: str) -> QToolButton:
    b = QToolButton()
    b.setText(text)
    b.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
    return b


class DatasetPanel(QWidget):
    """The dock's widgets; the feature wires them."""

    def __init__(self, table: DatasetTableModel, thumbs: ThumbnailModel) -> None:
        super().__init__()
        self.open_btn = _button("Open…")
        self.open_btn.setToolTip("Open a COCO instances/panoptic JSON, a metadata.csv or a folder")
        self.runs = QComboBox()
        self.runs.setToolTip("Stored results of this dataset (model, weights)")
        self.runs.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.runs.setMinimumContentsLength(6)
        self.here_btn = _button("This folder")  # shown while no dataset is open and an image is
        self.here_btn.setVisible(False)
        self.load_btn = _button("Score…")
        self.load_btn.setToolTip("Score a COCO results JSON (segviewer predict's results.json)")
        self.run_btn = _button("Run")
        self.run_btn.setToolTip("Run the first selected model over every image (resumes a stopped run)")
        self.stop_btn = _button("Stop")
        self.stop_btn.setEnabled(False)
        self.vs = QComboBox()
        self.vs.setToolTip("Compare with another stored run (Δ columns B - A and a disagreement layer), "
                           "or with the ground truth (A | B of the run against it)")
        self.vs.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.vs.setMinimumContentsLength(6)
        top = QHBoxLayout()  # narrow rows: the dock shares the left column with Models
        for w in (self.open_btn, self.here_btn, self.load_btn):
            top.addWidget(w)
        top.addStretch(1)
        runs = QHBoxLayout()
        runs.addWidget(self.runs, 1)
        runs.addWidget(self.run_btn)
        runs.addWidget(self.stop_btn)
        vs = QHBoxLayout()
        vs.addWidget(QLabel("vs"))
        vs.addWidget(self.vs, 1)
        self.ab_btn = _button("A | B")
        self.ab_btn.setToolTip("The image with A's and B's results side by side (synced pan/zoom) or as a swipe")
        vs.addWidget(self.ab_btn)
        self.search = QLineEdit()
        self.search.setPlaceholderText("file name…")
        self.search.setClearButtonEnabled(True)
        self.classes = QComboBox()
        self.errors = QComboBox()
        for text, key in ERROR_CHOICES:
            self.errors.addItem(text, key)
        self.grid_btn = _button("Grid")
        self.grid_btn.setCheckable(True)
        for combo in (self.classes, self.errors):
            combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
            combo.setMinimumContentsLength(4)
        filt = QHBoxLayout()
        filt.addWidget(self.search, 1)
        filt.addWidget(self.grid_btn)
        filt2 = QHBoxLayout()
        filt2.addWidget(self.classes, 1)
        filt2.addWidget(self.errors, 1)
        self.table = QTableView()
        self.table.setModel(table)
        self.table.setSortingEnabled(True)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.verticalHeader().setVisible(False)
        self.table.verticalHeader().setDefaultSectionSize(self.table.fontMetrics().height() + 6)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        self.table.horizontalHeader().setDefaultSectionSize(58)
        self.table.horizontalHeader().setSortIndicatorShown(True)
        self.grid = QListView()
        self.grid.setModel(thumbs)
        self.grid.setViewMode(QListView.ViewMode.IconMode)
        self.grid.setResizeMode(QListView.ResizeMode.Adjust)
        self.grid.setUniformItemSizes(True)
        self.grid.setItemDelegate(BadgeDelegate(self.grid))
        self.grid.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.grid.setSpacing(4)
        self.stack = QStackedWidget()
        self.stack.addWidget(self.table)
        self.stack.addWidget(self.grid)
        self.status = QLabel("No dataset open.")
        self.status.setWordWrap(True)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addLayout(top)
        lay.addLayout(runs)
        lay.addLayout(vs)
        lay.addLayout(filt)
        lay.addLayout(filt2)
        lay.addWidget(self.stack, 1)
        lay.addWidget(self.status)
        self.grid_btn.toggled.connect(lambda on: self.stack.setCurrentIndex(1 if on else 0))


class DatasetFeature(QObject):
    """The controller; the window owns it."""

    opened = Signal()
    rowsLoaded = Signal()
    runFinished = Signal(bool)
    imageEvaluated = Signal()
    compared = Signal()  # the A | B window shows the current image
    classesIndexed = Signal()  # a semantic dataset's per-image classes are known (class filter on)
    tideReady = Signal()  # the Metrics dock shows the shown run's TIDE dAP over the dataset

    def __init__(self, window: Any, thumb_dir: Path | None = None) -> None:
        super().__init__(window)
        self.setObjectName("dataset_feature")
        self.window, self.session = window, window.session
        self.host_factory = default_host_factory
        self.index: Any = None
        self.store: Any = None
        self.run_key: tuple[str, str] | None = None  # (model id, weights hash) shown
        self.compare_key: tuple[str, str] | None = None  # run B of a comparison
        self.compare: Any = None  # the disagreement ImageEval of the image shown
        self.compare_view: Any = None  # CompareView window, made on first use
        self._pair: tuple[Any, Any] | None = None  # (A's, B's prediction) of the image shown
        self.job: Any = None
        self.current: int | None = None  # dataset image the window shows
        self.eval: Any = None
        self.rows: dict[int, dict[str, Any]] = {}  # the shown run's rows (the dock's totals)
        self._widened = False  # the dock is widened for its table once
        self._syncing = False  # the table and the grid select the same image; not a second open
        self._rows_gen = 0  # stored rows read in the background: only the newest choice's land
        # dataset-wide jobs (reading every stored row, the pooled AP and TIDE, a semantic dataset's
        # classes) take seconds to minutes: their own threads, the global pool stays the window's
        self.slow_pool = QThreadPool(self)
        self.slow_pool.setMaxThreadCount(2)
        self._tide_gen = 0  # the dock's dataset TIDE job: a newer one drops an older one's answer
        self.tide: dict[str, Any] | None = None  # the last dataset TIDE (TideReport.as_dict per IoU type)
        self.dataset_ap: dict[str, Any] | None = None  # the last pooled dataset AP (coco_evaluate's)
        self._totals_cache: dict[tuple, dict[str, Any]] = {}  # (run, ground truth, images) -> those two
        self._gen = 0
        self._ab_timer = QTimer(self)  # A | B follows the Layers panel: one redraw per burst of edits
        self._ab_timer.setSingleShot(True)
        self._ab_timer.setInterval(60)
        self._ab_timer.timeout.connect(self._refresh_side_by_side)
        self.model = DatasetTableModel(self)
        self.thumbs = ThumbnailCache(thumb_dir, parent=self)
        self.grid_model = ThumbnailModel(self.model, self.thumbs, self)
        self.panel = DatasetPanel(self.model, self.grid_model)
        self.dock = window.add_dock("Dataset", self.panel, Qt.DockWidgetArea.LeftDockWidgetArea,
                                    tab_with="Models", front=False, scroll=False)
        menu = window.menuBar().addMenu("&Dataset")
        menu.addAction(self.dock.toggleViewAction())
        menu.addAction("&Open Dataset…", self.open_dialog)
        menu.addAction("Open Dataset &Folder…", self.open_folder_dialog)
        menu.addAction("Score &Results JSON…", self.load_results_dialog)
        menu.addAction("&Run Model on Dataset", self.run_model)
        menu.addAction("&Merge Runs as Panoptic (shown + vs)", self.merge_runs)
        menu.addAction("&Stop", self.stop)
        p = self.panel
        p.open_btn.clicked.connect(self.open_dialog)
        p.here_btn.clicked.connect(self.open_shown_folder)
        p.load_btn.clicked.connect(self.load_results_dialog)
        p.run_btn.clicked.connect(self.run_model)
        p.stop_btn.clicked.connect(self.stop)
        p.runs.activated.connect(lambda k: self.choose_run(p.runs.itemData(k)))
        p.vs.activated.connect(lambda k: self.compare_with(p.vs.itemData(k)))
        p.ab_btn.clicked.connect(self.show_side_by_side)
        p.search.textChanged.connect(lambda t: self.model.set_filter(search=t))
        p.classes.currentIndexChanged.connect(lambda k: self.model.set_filter(class_index=k - 1))
        p.errors.currentIndexChanged.connect(lambda k: self.model.set_filter(error=p.errors.itemData(k) or ""))
        p.table.selectionModel().currentRowChanged.connect(lambda cur, _old: self._on_row(cur, p.table.model()))
        p.grid.selectionModel().currentChanged.connect(lambda cur, _old: self._on_row(cur, self.grid_model))
        self.session.imageShown.connect(self._on_image_shown)
        self.session.resultsChanged.connect(self._follow_layers)
        state = getattr(window, "state", None)
        if state is not None and hasattr(state, "changed"):
            state.changed.connect(self._follow_layers)
        window.canvas.hovered.connect(self._on_hover)
        window.installEventFilter(self)
        if isinstance(getattr(window, "path_openers", None), list):
            window.path_openers.append(self.claim)

    # ---- opening ---------------------------------------------------------------------------------
    def claim(self, path: Path) -> bool:
        """A COCO JSON or metadata.csv given to the window opens as a dataset."""
        if path.is_file() and path.suffix.lower() in (".json", ".csv"):
            self.open_dataset(path)
            return True
        return False

    def open_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self.window, "Open dataset (annotation JSON or metadata.csv)", "",
                                              "Datasets (*.json *.csv);;All files (*)")
        if path:
            self.open_dataset(Path(path))

    def open_folder_dialog(self) -> None:
        """A shapes-world or Cityscapes folder, or any folder of images."""
        path = QFileDialog.getExistingDirectory(self.window, "Open dataset folder")
        if path:
            self.open_dataset(Path(path))

    def shown_folder(self) -> Path | None:
        """The dataset folder of the image the window shows, while no dataset is open (what the
        dock offers): the folder holding its annotations, else its own folder."""
        from segviewer.core.dataset_index import dataset_folder_of

        path = self.session.path
        return None if self.index is not None or path is None else dataset_folder_of(path)

    def open_shown_folder(self) -> None:
        folder = self.shown_folder()
        if folder is not None:
            self.open_dataset(folder)

    def _offer_shown_folder(self) -> None:
        """With no dataset open, offer the shown image's folder in one click: a user who opened a
        folder of images (and its annotations) should not have to find it again in a dialog."""
        folder = self.shown_folder()
        p = self.panel
        p.here_btn.setVisible(folder is not None)
        if folder is None:
            return
        p.here_btn.setToolTip(f"Open {folder} (the image shown is in it) as the dataset")
        p.status.setText(f"No dataset open. “This folder” opens {folder.name}/, where the image shown is; "
                         "“Open…” any other.")

    def open_dataset(self, path: Path) -> None:
        from segviewer.core.dataset_index import open_dataset

        self._gen += 1
        gen = self._gen
        self.panel.status.setText(f"Opening {Path(path).name}…")
        run_background(lambda: open_dataset(path), lambda idx: self._on_opened(gen, idx),
                       self._on_failed, "Opening dataset", owner=self)

    def _on_failed(self, msg: str) -> None:
        self.panel.status.setText(msg)
        self.window.show_error(msg)

    def _on_opened(self, gen: int, index: Any) -> None:
        from segviewer.core.result_store import ResultStore, default_store_path

        if gen != self._gen:
            return
        self.stop()
        self.index = index
        self.panel.here_btn.setVisible(False)
        self.model.set_dataset(index.names, index.gt_count, index.class_counts, index.categories)
        self.thumbs.set_paths(index.paths)
        p = self.panel
        self._fill_classes(index.categories, counted=bool(index.class_counts.any()) or not len(index))
        if not index.class_counts.any() and index.kind in ("semantic", "folder"):
            self._index_semantic_classes(gen, index)
        try:
            self.store = ResultStore(default_store_path(index.root))
        except Exception:  # noqa: BLE001 - a read-only dataset: the store goes to the user's cache
            from segviewer.ui.widgets.thumbnails import default_cache_dir

            self.store = ResultStore(default_cache_dir().parent / "stores" / f"{index.gt_key[:32]}.sqlite")
        self._list_runs()
        p.status.setText(f"{len(index)} images ({index.kind}); {int(index.gt_count.sum())} annotations.")
        self.dock.show()
        self.dock.raise_()
        self._widen_dock()
        self._fit_columns()
        self.opened.emit()
        if p.runs.count():  # the run shown before (reopening), else the first stored one
            k = _find(p.runs, self.run_key)
            p.runs.setCurrentIndex(max(k, 0))
            self.choose_run(p.runs.itemData(max(k, 0)))
        else:
            self.run_key = None

    def _fill_classes(self, categories: tuple[str, ...], counted: bool) -> None:
        """The class filter's items; disabled (saying why) until the classes of each image are known."""
        p = self.panel
        p.classes.blockSignals(True)
        p.classes.clear()
        p.classes.addItem("any class" if counted else "classes: indexing…")
        for c in categories if counted else ():
            p.classes.addItem(c)
        p.classes.setEnabled(counted)
        p.classes.blockSignals(False)

    def _index_semantic_classes(self, gen: int, index: Any) -> None:
        """A semantic dataset's files say nothing of each image's classes: decode every label PNG
        once in the background (``dataset_index.semantic_presence``), then the GT column counts
        the classes an image shows and the class filter works."""
        from segviewer.core.dataset_index import semantic_presence

        def done(got: Any) -> None:
            if gen != self._gen or self.index is not index:
                return
            if got is None:
                self.panel.classes.setItemText(0, "classes: none found")
                return
            cats, counts = got
            index.class_counts, index.categories = counts, cats
            self.model.set_class_counts(counts, cats)
            self._fill_classes(cats, counted=True)
            self.classesIndexed.emit()

        run_background(lambda: semantic_presence(index, should_stop=lambda: gen != self._gen), done,
                       self._on_failed, "Indexing classes", owner=self, pool=self.slow_pool)

    def _widen_dock(self) -> None:
        """The table is the point of the dock: give it ~40% of the window (name, GT and a few
        metric columns at 1366 px) once, when a dataset opens; the user's width is kept after."""
        if self._widened or not hasattr(self.window, "resizeDocks"):
            return
        self._widened = True
        want = min(560, int(0.4 * self.window.width()))
        if self.dock.width() < want:
            self.window.resizeDocks([self.dock], [want], Qt.Orientation.Horizontal)

    def _fit_columns(self) -> None:
        """Headers readable, the name column wide enough for typical file names."""
        t = self.panel.table
        t.horizontalHeader().setResizeContentsPrecision(200)  # sample rows: 100,000 must not stall
        t.resizeColumnsToContents()
        t.setColumnWidth(0, min(max(t.columnWidth(0), 90), 170))

    def _list_runs(self) -> None:
        p = self.panel
        p.runs.clear()
        p.vs.clear()
        p.vs.addItem("no comparison", None)
        p.vs.addItem("ground truth", GROUND_TRUTH_RUN)
        for mid, wh, n in self.store.runs() if self.store is not None else []:
            p.runs.addItem(f"{_run_text((mid, wh))} ({n})", (mid, wh))
            p.vs.addItem(f"{_run_text((mid, wh))} ({n})", (mid, wh))
        if self.run_key is not None:
            k = _find(p.runs, self.run_key)
            if k >= 0:
                p.runs.setCurrentIndex(k)
        p.vs.setCurrentIndex(max(_find(p.vs, self.compare_key), 0))

    # ---- results ---------------------------------------------------------------------------------
    def choose_run(self, key: tuple[str, str] | None) -> None:
        """Show a stored run's rows (read from the store, nothing recomputed)."""
        from segviewer.analysis.dataset_eval import ROW_KEYS

        if key is None or self.index is None:
            return
        self.run_key = tuple(key)  # type: ignore[assignment]
        self.panel.runs.setCurrentIndex(max(_find(self.panel.runs, self.run_key), 0))
        index, store = self.index, self.store
        mid, wh = self.run_key

        other = self.compare_key if self.compare_key not in (self.run_key, GROUND_TRUTH_RUN) else None
        self._rows_gen += 1
        gen = self._rows_gen

        def load() -> tuple[dict[int, Any], list[str]]:
            from segviewer.ui.features._dataset_compare import compare_rows, stored_rows

            if other is not None:
                return compare_rows(store, index, (mid, wh), other)
            return stored_rows(store, index, (mid, wh)), []

        def done(got: tuple[dict[int, Any], list[str]]) -> None:
            if gen != self._rows_gen or self.index is not index:
                return  # a newer choice (run, comparison, dataset) is on its way
            rows, delta_keys = got
            self.rows = rows
            self._push_totals()
            self.model.set_metrics(rows, list(ROW_KEYS) + delta_keys)
            self._fit_columns()
            vs = f"; Δ = {_run_text(other)} − this" if other is not None else ""
            self.panel.status.setText(f"{mid}: {len(rows)} of {len(index)} images scored{vs}.")
            self.rowsLoaded.emit()

        run_background(load, done, self._on_failed, "Reading stored results", owner=self, pool=self.slow_pool)

    def compare_with(self, key: tuple[str, str] | None) -> None:
        """Compare the shown run (A) with another stored run (B): Δ columns, disagreement layer;
        or with the ground truth (:data:`GROUND_TRUTH_RUN`): B's layers are the ground truth."""
        self.compare_key = None if key is None else tuple(key)  # type: ignore[assignment]
        self.panel.vs.setCurrentIndex(max(_find(self.panel.vs, self.compare_key), 0))
        if self.run_key is not None:
            self.choose_run(self.run_key)
        if self.current is not None:
            self._on_image_shown()

    def load_results_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self.window, "COCO results JSON", "", "JSON (*.json)")
        if path:
            self.load_results(Path(path))

    def load_results(self, path: Path) -> None:
        from segviewer.core.result_store import file_hash
        from segviewer.ui.features._dataset_jobs import results_predictor

        if self.index is None:
            self.window.show_error("Open a dataset first.")
            return
        index = self.index
        self._start(f"results:{Path(path).name}", file_hash(path), lambda: (results_predictor(index, path), None))

    def _pair_of(self, models: list[str]) -> list[str]:
        """The selected models to run: an instance and a semantic model (by their cards) make a
        panoptic pair; without cards, two selected models are tried as one; else the first."""
        tasks = {c.id: str(getattr(c.task, "value", c.task)) for c in getattr(self.session, "cards", [])}
        inst = next((m for m in models if tasks.get(m) == "instance"), None)
        sem = next((m for m in models if tasks.get(m) == "semantic"), None)
        if inst is not None and sem is not None:
            return [inst, sem]
        if len(models) >= 2 and not any(m in tasks for m in models[:2]):
            return models[:2]
        return models[:1]

    def run_model(self) -> None:
        """Run the selected model (or panoptic pair) over every image; stored images are skipped."""
        from segviewer.adapters.base import PredictParams
        from segviewer.core.result_store import file_hash
        from segviewer.ui.features._dataset_jobs import model_predictor, pair_key

        if self.index is None:
            self.window.show_error("Open a dataset first.")
            return
        if not self.session.models:
            self.window.show_error("Select a model in the Models dock first.")
            return
        mids = self._pair_of(list(self.session.models))
        weights = {m: self.session.weights.get(m) for m in mids}
        hashes = {m: file_hash(w) if w is not None else "bundled" for m, w in weights.items()}
        mid, wh = pair_key([(m, hashes[m]) for m in mids])
        index, device, factory, store = self.index, self.session.device, self.host_factory, self.store
        params = getattr(self.session, "params", PredictParams())

        def make() -> tuple[Any, Any]:
            host = factory()
            if len(mids) == 1:
                return model_predictor(index, host, mids[0], device, weights[mids[0]], params), lambda: host.close(0.5)
            return (model_predictor(index, host, mids, device, weights, params, store, hashes),
                    lambda: host.close(0.5))

        self._start(mid, wh, make)

    def merge_runs(self) -> None:
        """Score the shown run and the "vs" run (an instance and a semantic one) as a panoptic pair,
        from their stored predictions (nothing is predicted)."""
        from segviewer.ui.features._dataset_jobs import pair_key, stored_pair_predictor

        a, b = self.run_key, self.compare_key
        if self.index is None or a is None or b is None or a == b or GROUND_TRUTH_RUN in (a, b):
            self.window.show_error("Show an instance run and pick a semantic run under vs (or the other way) first.")
            return
        index, store = self.index, self.store
        self.compare_key = None
        self._start(*pair_key([a, b]), lambda: (stored_pair_predictor(index, store, a, b), None))

    def _start(self, model_id: str, weights_hash: str, make: Any) -> None:
        from segviewer.analysis.dataset_eval import ROW_KEYS
        from segviewer.ui.features._dataset_jobs import DatasetRun

        self.stop()
        self.run_key = (model_id, weights_hash)
        self._rows_gen += 1  # a stored-rows read still in flight must not replace this run's rows
        self.rows = {}
        self.model.set_metrics({}, ROW_KEYS)
        job = DatasetRun(self.index, self.store, model_id, weights_hash, make, self)
        job.rowReady.connect(self._on_row_ready)
        job.progress.connect(lambda d, t: self.panel.status.setText(f"{model_id}: {d} / {t} images"))
        job.failed.connect(self._on_failed)
        job.finishedRun.connect(self._on_run_finished)
        job.finished.connect(job.deleteLater)
        self.job = job
        self.panel.stop_btn.setEnabled(True)
        job.start()

    def _on_row_ready(self, i: int, row: dict[str, Any]) -> None:
        self.rows[i] = row
        self.model.update_row(i, row)

    def _on_run_finished(self, complete: bool) -> None:
        self.job = None
        self.panel.stop_btn.setEnabled(False)
        self._list_runs()
        self._push_totals()
        self.model.sort_by(self.model.sort_key, self.model.descending)  # re-sort with the new rows
        self._fit_columns()
        self.panel.status.setText(self.panel.status.text() + ("" if complete else " (stopped; Run resumes)"))
        self.runFinished.emit(complete)

    def stop(self) -> None:
        job = self.job
        if job is not None:
            job.stop()
            job.wait(30000)
            self.job = None
            self.panel.stop_btn.setEnabled(False)

    # ---- one image ---------------------------------------------------------------------------------
    def _on_row(self, cur: Any, model: Any) -> None:
        if not cur.isValid() or self.index is None:
            return
        i = model.data(cur.siblingAtColumn(0), Qt.ItemDataRole.UserRole)
        if i is None or self._syncing:
            return
        self.open_image(int(i))
        p = self.panel  # the other view (table or grid) selects the same image
        other = p.table if model is self.grid_model else p.grid
        row = self.model.row_of(int(i))
        sel = other.selectionModel()
        if row >= 0 and sel.currentIndex().row() != row:
            self._syncing = True
            try:
                sel.setCurrentIndex(other.model().index(row, 0), QItemSelectionModel.SelectionFlag.ClearAndSelect
                                    | QItemSelectionModel.SelectionFlag.Rows)
            finally:
                self._syncing = False

    def open_image(self, i: int) -> None:
        """Show dataset image ``i`` in the window (next/previous then walk the dataset)."""
        self.current = i
        self.eval = None
        s = self.session
        paths = [p.absolute() for p in self.index.paths]
        if s.paths != paths:
            s.paths = paths
        s.show_index(i)

    def _on_image_shown(self) -> None:
        from segviewer.analysis.dataset_eval import evaluate_image

        s = self.session
        if self.index is None:
            self._offer_shown_folder()
        if self.index is None or self.current is None or s.path is None:
            return
        if Path(s.path).absolute() != self.index.paths[self.current].absolute():
            return
        i, index, store, key = self.current, self.index, self.store, self.run_key
        other = self.compare_key if self.compare_key != key else None
        truth = other == GROUND_TRUTH_RUN

        def work() -> Any:
            from segviewer.ui.features._dataset_compare import compare_image, truth_like

            gt = index.ground_truth(i)
            pred = None
            if key is not None:
                got = store.get_prediction(store.image_hash(index.paths[i]), *key)
                pred = got[0] if got is not None else None
            ev = evaluate_image(pred, gt, name=index.paths[i].name)[0] if pred is not None else None
            shown = ev.merged if isinstance(pred, tuple) and ev is not None else pred  # a pair: its merged map
            if truth:  # B is the ground truth: the error layer is the disagreement already
                cmp = None if shown is None else (truth_like(shown, gt), None)
            else:
                cmp = compare_image(store, index, i, key, other) if key is not None and other is not None else None
            return shown, ev, cmp

        run_background(work, lambda res: self._on_evaluated(i, res), self._on_failed, "Scoring the image",
                       owner=self)

    def _on_evaluated(self, i: int, res: tuple[Any, Any]) -> None:
        if i != self.current:
            return
        pred, ev, cmp = res
        self.eval = ev
        self.compare = None if cmp is None else cmp[1]  # None too when B is the ground truth
        gt_feature = self.window.findChild(QObject, "groundtruth_feature")
        if gt_feature is not None and hasattr(gt_feature, "show_dataset"):
            gt_feature.show_dataset(self.index.paths[i], ev, self._run_label())
        self.session.set_derived(DATASET_PREDICTION, pred)
        self.session.set_derived(DATASET_ERRORS, None if ev is None else ev.errors)
        dis = None if cmp is None or cmp[1] is None else (
            cmp[1].errors if cmp[1].errors is not None else cmp[1].semantic_errors)
        self.session.set_derived(COMPARED_PREDICTION, None if cmp is None else cmp[0])
        self.session.set_derived(DISAGREEMENT, dis)
        self._pair = None if cmp is None or pred is None or cmp[0] is None else (pred, cmp[0])
        if self.compare_view is not None and self.compare_view.isVisible():
            self.show_side_by_side()
        self.imageEvaluated.emit()

    def _run_label(self, key: tuple[str, str] | None = None) -> str:
        key = self.run_key if key is None else key
        return "no run" if key is None else _run_text(key)

    def _push_totals(self) -> None:
        """The shown run's dataset totals into the Metrics dock (sums and per-image means) at once,
        then, for an instance run, the pooled dataset AP and TIDE's dAP from a background job
        (every stored prediction read once; a newer run or dataset drops it)."""
        from segviewer.analysis.dataset_eval import summarize_rows

        gt_feature = self.window.findChild(QObject, "groundtruth_feature")
        if gt_feature is None or not hasattr(gt_feature, "show_dataset_totals"):
            return
        self._tide_gen += 1
        rows = {i: r for i, r in self.rows.items() if isinstance(r, dict)}
        if not rows:
            gt_feature.show_dataset_totals(self._run_label(), None)
            return
        totals, label = summarize_rows(rows.values()), self._run_label()
        want_tide = "box_ap" in totals and self.index is not None and self.index._instances is not None  # noqa: SLF001
        gt_feature.show_dataset_totals(label, totals, None, " · dataset AP and TIDE computing…" if want_tide else "")
        if not want_tide or self.run_key is None:
            return
        gen, index, store, key, images = self._tide_gen, self.index, self.store, self.run_key, sorted(rows)
        cache_key = (key, index.gt_key, tuple(images))

        def show(got: dict[str, Any]) -> None:  # dataset_instance_totals' numbers, fresh or cached
            self.tide, self.dataset_ap = got["tide"], got["ap"]
            gt_feature.show_dataset_totals(label, totals, got["tide"], ap=got["ap"], ap_backend=got["backend"],
                                           keypoints=got["keypoints"])
            self.tideReady.emit()

        if cache_key in self._totals_cache:  # the same run and images (a comparison picked, a reopen)
            show(self._totals_cache[cache_key])
            return

        def items() -> Any:
            for i in images:
                got = store.get_prediction(store.image_hash(index.paths[i]), *key)
                if got is not None:
                    yield int(index.image_ids[i]), got[0], index.ground_truth(i)

        def work() -> Any:
            from segviewer.analysis.dataset_eval import dataset_instance_totals

            return dataset_instance_totals(items(), index._instances,  # noqa: SLF001
                                           should_stop=lambda: gen != self._tide_gen)

        def done(got: Any) -> None:
            if gen == self._tide_gen and got is not None:
                self._totals_cache = {cache_key: got}  # the last run's only: a dataset's worth of numbers is small
                show(got)

        run_background(work, done, self._on_failed, "TIDE over the dataset", owner=self, pool=self.slow_pool)

    def _side_layers(self) -> tuple[list[tuple[Any, float]], list[tuple[Any, float]], list[str], list[str]]:
        """What A and B show: each run's layers as the Layers panel has them (visible ones, their
        opacities, the score threshold and hidden classes applied), plus the ground truth on both
        sides when it is on; and the kinds shown per side (for the titles)."""
        from segviewer.ui.features.groundtruth import GT_LAYER

        state = self.window.state
        specs = [sp for sp in getattr(self.window, "_specs", []) if state.is_visible(sp.layer)]  # noqa: SLF001
        shared = [(sp, state.opacity_of(sp.layer)) for sp in specs if sp.layer[0] == GT_LAYER]
        a = [(sp, state.opacity_of(sp.layer)) for sp in specs if sp.layer[0] == DATASET_PREDICTION]
        b = [(sp, state.opacity_of(sp.layer)) for sp in specs if sp.layer[0] == COMPARED_PREDICTION]
        extra = ["ground truth"] if shared else []
        return shared + a, shared + b, [sp.kind for sp, _ in a] + extra, [sp.kind for sp, _ in b] + extra

    def show_side_by_side(self) -> None:
        """A | B of the image shown, in the compare window (composed in the background)."""
        from segviewer.ui.widgets.compare_view import CompareView

        if self._pair is None or self.session.image is None:
            self.window.statusBar().showMessage("Pick a run to compare with (vs) and an image first.", 5000)
            return
        if self.compare_view is None:
            self.compare_view = CompareView(self.window)
            self.compare_view.hovered.connect(self._on_hover)
        self._refresh_side_by_side(force=True)

    def _follow_layers(self, *_args: Any) -> None:
        if self.compare_view is not None and self.compare_view.isVisible() and self._pair is not None:
            self._ab_timer.start()

    def _refresh_side_by_side(self, force: bool = False) -> None:
        if self._pair is None or self.session.image is None or self.compare_view is None:
            return
        if not force and not self.compare_view.isVisible():
            return
        image, i = self.session.image, self.current
        a_layers, b_layers, a_kinds, b_kinds = self._side_layers()
        names = (self.run_key[0] if self.run_key else "A", self.compare_key[0] if self.compare_key else "B")

        def title(name: str, kinds: list[str], layer: str) -> str:
            what = ", ".join(dict.fromkeys(kinds)) if kinds else f"nothing: turn on \"{layer}\" in Layers"
            return f"{name} ({what})"

        def work() -> tuple[Any, Any]:
            from segviewer.render.compose import compose
            from segviewer.render.layers import LayerKind, render_layer

            def side(layers: list[tuple[Any, float]]) -> Any:
                return compose(image, [(render_layer(sp.result, LayerKind(sp.kind), sp.style), o) for sp, o in layers])

            return side(a_layers), side(b_layers)

        def done(pair: tuple[Any, Any]) -> None:
            if i != self.current or self.compare_view is None:
                return
            self.compare_view.set_pair(pair[0], pair[1], title(names[0], a_kinds, DATASET_PREDICTION),
                                       title(names[1], b_kinds, COMPARED_PREDICTION))
            if force:
                self.compare_view.show()
                self.compare_view.raise_()
            self.compared.emit()

        run_background(work, done, self._on_failed, "Composing A | B", owner=self)

    def _on_hover(self, pos: Any) -> None:
        from segviewer.analysis.evaluation import hover_text

        if pos is None:
            return
        parts = [hover_text(self.eval, *pos)] if self.eval is not None else []
        if self.compare is not None:  # A in the "true" role, B predicted
            parts.append("B vs A: " + hover_text(self.compare, *pos).replace("Under cursor: ", ""))
        text = "  |  ".join(t for t in parts if t)
        if text:
            self.window.statusBar().showMessage(text, 4000)

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt override
        if obj is self.window and event.type() == QEvent.Type.Close:
            self.shutdown()
        return False

    def shutdown(self, timeout_ms: int = 30000) -> bool:
        self.stop()
        self._gen += 1  # dataset-wide jobs stop between images
        self._tide_gen += 1
        self.slow_pool.clear()
        if self.compare_view is not None:
            self.compare_view.close()
        self.thumbs.pool.clear()
        ok = self.thumbs.wait(timeout_ms) and self.slow_pool.waitForDone(timeout_ms)
        if self.store is not None:
            self.store.close()
            self.store = None
        return ok


def install(window: Any) -> None:
    DatasetFeature(window)
