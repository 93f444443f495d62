"""The main window: wiring only. Work happens in the session/worker (models, decoding), the
canvas and its render thread (drawing), the widgets (panels) and background jobs (exports)."""

from __future__ import annotations

import zlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import QEvent, QObject, QSettings, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QCloseEvent, QDragEnterEvent, QDropEvent, QUndoStack
from PySide6.QtWidgets import (
    QDockWidget,
    QFileDialog,
    QLabel,
    QMainWindow,
    QMessageBox,
    QStackedWidget,
    QToolBar,
    QWidget,
)

from segviewer.ui import display as disp
from segviewer.ui import export, layout
from segviewer.ui.actions import build_menus, build_toolbar
from segviewer.ui.canvas.render_thread import LayerSpec
from segviewer.ui.canvas.view import ImageCanvas
from segviewer.ui.features import install_features
from segviewer.ui.jobs import run_background
from segviewer.ui.session import Session
from segviewer.ui.settings import get_float, get_list, open_settings, push_recent, recent_files
from segviewer.ui.widgets.controls import ElidedLabel
from segviewer.ui.widgets.inspector import Inspector, Legend
from segviewer.ui.widgets.layer_panel import LayerPanel
from segviewer.ui.widgets.model_picker import ModelPicker
from segviewer.ui.worker import InferenceWorker

ASSETS = Path(__file__).resolve().parents[2] / "assets"
DEFAULT_MODELS = ("shapes_maskrcnn", "shapes_fcn")
EMPTY_TEXT = "Open an image (Ctrl+O)\nor drop files and folders here"
IMAGE_VIEW = "image"
#: Bump when the default dock layout changes in a way a saved layout should not override.
LAYOUT_VERSION = 1
LISTING_FALLBACK_MS = 3000  # list the models by then even if no image was painted


class _FirstPaint(QObject):
    """Calls ``then`` (from the event loop) after the canvas first paints an image, once."""

    def __init__(self, canvas: ImageCanvas, then: Callable[[], None]) -> None:
        super().__init__(canvas)
        self.canvas, self.then = canvas, then
        canvas.viewport().installEventFilter(self)

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt override
        if event.type() == QEvent.Type.Paint and self.canvas.image is not None:
            self.canvas.viewport().removeEventFilter(self)
            QTimer.singleShot(0, self, self.then)  # after this paint has finished
        return False


class MainWindow(QMainWindow):
    exported = Signal(str)  # path written by an export
    modelsListed = Signal()
    errorShown = Signal(str)
    viewChanged = Signal(str)  # IMAGE_VIEW, or the view that took the canvas ("video")

    def __init__(self, worker: InferenceWorker | None = None, settings: QSettings | None = None,
                 cards: Sequence[Any] | None = None) -> None:
        super().__init__()
        self.setWindowTitle("segviewer")
        self.setAcceptDrops(True)
        self.settings = settings or open_settings()
        self.worker = worker or InferenceWorker(process=True)
        self.session = Session(self.worker, self)
        self.state = disp.DisplayState(self)
        self.undo = QUndoStack(self)
        self._render_s: float | None = None
        self._filtered: dict[str, Any] = {}
        self._specs: list[LayerSpec] = []
        self.render_style: Any = None  # None: RenderStyle() defaults
        self.last_error = ""
        self.closing = False  # set by closeEvent: no dialog may open after it
        self.threads_finished = True
        self.view = IMAGE_VIEW
        self._inspect: Callable[[float, float], list[str]] | None = None  # another view's hover lines
        self._hover: tuple[float, float] | None = None
        self._view_docks: dict[str, str] = {}  # dock name -> the view it belongs to
        self._build_ui()
        self._load_cards(cards)
        self._connect()
        self._restore()
        install_features(self)
        self._restore_docks()

    # ---- construction ---------------------------------------------------------------------------
    def _build_ui(self) -> None:
        self.canvas = ImageCanvas()
        self.empty = QLabel(EMPTY_TEXT)
        self.empty.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.empty.setStyleSheet("color: #9a9a9a; font-size: 18px; background: #26262a;")
        self.stack = QStackedWidget()
        self.stack.addWidget(self.empty)
        self.stack.addWidget(self.canvas)
        self.setCentralWidget(self.stack)

        self.picker = ModelPicker()
        self.panel = LayerPanel()
        self.inspector = Inspector()
        self.legend = Legend()
        self.docks: dict[str, QDockWidget] = {}
        # Features that open other kinds of paths (a video) claim them here: ``opener(path) -> bool``.
        self.path_openers: list[Callable[[Path], bool]] = []
        # The side columns run the window's full height; a bottom dock (the video's) sits under the
        # image only, so it never adds the columns' height to its own.
        self.setCorner(Qt.Corner.BottomLeftCorner, Qt.DockWidgetArea.LeftDockWidgetArea)
        self.setCorner(Qt.Corner.BottomRightCorner, Qt.DockWidgetArea.RightDockWidgetArea)
        right = Qt.DockWidgetArea.RightDockWidgetArea
        self.add_dock("Models", self.picker, Qt.DockWidgetArea.LeftDockWidgetArea)
        # Another view's frames have their own layer switches (in its dock): the Layers dock says so
        # instead of listing the closed image's layers (the hidden panel then asks for no room).
        layers, self.view_note = layout.with_note(self.panel)
        self.add_dock("Layers", layers, right, scroll=False)  # its rows scroll inside it
        self.add_dock("Legend", self.legend, right)
        self.add_dock("Inspector", self.inspector, right)
        layout.keep_rows(self.panel.rows_scroll, layout.LAYER_ROWS_MIN)
        # the hover lines stay in view when the column is short: the dock scrolls below 3 lines
        self.docks["Inspector"].widget().setMinimumHeight(3 * self.inspector.fontMetrics().height())

        undo = self.undo.createUndoAction(self, "&Undo")
        undo.setShortcut("Ctrl+Z")
        redo = self.undo.createRedoAction(self, "&Redo")
        redo.setShortcuts(["Ctrl+Shift+Z", "Ctrl+Y"])
        handlers = {
            "open": self.open_dialog, "open_folder": self.open_folder_dialog,
            "next": lambda: self.session.step(1), "prev": lambda: self.session.step(-1),
            "load_weights": self.load_weights_dialog, "export_png": self.export_png_dialog,
            "export_json": self.export_json_dialog, "quit": self.close,
            "fit": self.canvas.fit, "zoom100": self.canvas.zoom_100,
            "toggle_layers": self.state.set_overlays_shown, "run": lambda: self.session.run_models(),
        }
        self.actions, self.recent_menu = build_menus(self, handlers, (undo, redo))
        self.actions["toggle_layers"].setChecked(True)
        build_toolbar(self, self.actions)
        view_menu = self.actions["view_menu"].menu()
        self.layers_menu = view_menu.addMenu("Layer &Visibility")
        self.layers_menu.setEnabled(False)
        self._layer_actions: dict[disp.LayerId, QAction] = {}
        view_menu.addSeparator()
        for dock in self.docks.values():
            view_menu.addAction(dock.toggleViewAction())

        sb = self.statusBar()
        self.device_label = QLabel()
        self.model_label = ElidedLabel()  # per model: "0 detections", "3 classes", "failed" (elided to fit)
        self.timing_label = QLabel()
        for w in (self.device_label, self.model_label, self.timing_label):
            w.setContentsMargins(8, 0, 8, 0)
            sb.addPermanentWidget(w)

    def _load_cards(self, cards: Sequence[Any] | None) -> None:
        """List models and devices; in a background job unless given (they import torch, seconds)."""
        self.cards: list[Any] = []
        self.card_ids: set[str] = set()
        self.base_states: dict[str, str] = {}
        self.devices = ["cpu"]
        self.cards_ready = False
        self._start_models: tuple[Sequence[str], bool, Path | None, str | None] | None = None
        self._listing_started = cards is not None
        if cards is not None:
            self._on_cards(_list_models(list(cards)))
        else:
            self.picker.tree.setHeaderLabels(["Model (listing…)", "Weights"])
            self.picker.set_devices(self.devices, self.devices[0])
            # Listing imports torch (seconds of CPU, mostly holding the GIL): started once the
            # first image is painted, so the window and the photo come first (see start()).
            self._first_paint = _FirstPaint(self.canvas, self._start_listing)
            QTimer.singleShot(LISTING_FALLBACK_MS, self, self._start_listing)

    def _start_listing(self) -> None:
        """List the models in a background job, once (the first image painted, or no image)."""
        if self._listing_started or self.closing:
            return
        self._listing_started = True
        run_background(lambda: _list_models(None), self._on_cards, self.show_error, "Listing models")

    def _on_cards(self, listed: tuple[list[Any], dict[str, str], list[str], str]) -> None:
        self.cards, self.base_states, self.devices, problems = listed
        self.card_ids = {c.id for c in self.cards}
        self.cards_ready = True
        self.picker.tree.setHeaderLabels(["Model", "Weights"])
        dev = str(self.settings.value("device", ""))
        self.session.device = dev if dev in self.devices else self.devices[0]
        self.picker.set_devices(self.devices, self.session.device)
        self.picker.set_cards(self.cards, self._states(), self.session.models)
        if problems:
            self.statusBar().showMessage(problems, 10000)
        if self._start_models is not None:
            self._apply_start_models(*self._start_models)
        self._update_status()
        self.modelsListed.emit()

    def _connect(self) -> None:
        s = self.session
        s.imageShown.connect(self._on_image_shown)
        s.imageClosed.connect(self._refresh_layers)
        s.resultsChanged.connect(self._refresh_layers)
        s.statusMessage.connect(lambda m: self.statusBar().showMessage(m, 5000))
        s.errorRaised.connect(self.show_error)
        s.modelFailed.connect(self.picker.set_failure)  # no dialog: status bar, Metrics dock, red row
        s.modelStateChanged.connect(self._on_model_state)
        s.busyChanged.connect(lambda _b: self._update_status())
        self.state.changed.connect(self._on_state_changed)
        self.panel.visibilityToggled.connect(lambda lid, on: self.undo.push(disp.SetVisible(self.state, lid, on)))
        self.panel.opacityChanged.connect(lambda lid, v: self.undo.push(disp.SetOpacity(self.state, lid, v)))
        self.panel.scoreChanged.connect(lambda v: self.undo.push(disp.SetScoreThreshold(self.state, v)))
        self.panel.classToggled.connect(
            lambda name, on: self.undo.push(disp.SetClassHidden(self.state, name, not on)))
        self.picker.selectionChanged.connect(self._on_models_checked)
        self.picker.runRequested.connect(lambda: self.session.run_models())
        self.picker.deviceChanged.connect(self._on_device)
        self.canvas.hovered.connect(self._on_hover)
        self.canvas.layersApplied.connect(self._on_rendered)
        self.canvas.renderFailed.connect(lambda m: self.statusBar().showMessage(m, 8000))

    def add_dock(self, name: str, widget: QWidget, area: Qt.DockWidgetArea, tab_with: str | None = None,
                 front: bool = True, scroll: bool = True, view: str | None = None) -> QDockWidget:
        """A dock for ``widget``, registered in ``docks`` under ``name`` (its object name keeps it in
        the saved layout, restored once every feature has added its docks). ``tab_with`` shares
        that dock's place as a tab; ``front`` decides which of the two shows first.

        ``scroll``: the panel scrolls inside the dock when its column is shorter than the panel,
        instead of pushing the window past the screen (a widget that scrolls itself is left as
        is). ``view``: the dock belongs to that view (see :meth:`set_view`) and shows only there."""
        dock = QDockWidget(name, self)
        dock.setObjectName(f"dock_{name.lower()}")
        dock.setWidget(layout.scrolling(widget) if scroll else widget)
        dock.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetMovable
                         | QDockWidget.DockWidgetFeature.DockWidgetFloatable
                         | QDockWidget.DockWidgetFeature.DockWidgetClosable)
        self.addDockWidget(area, dock)
        other = self.docks.get(tab_with) if tab_with else None
        if other is not None:
            self.tabifyDockWidget(other, dock)
            (dock if front else other).raise_()
        self.docks[name] = dock
        if view is not None:
            self._view_docks[name] = view
            dock.setVisible(view == self.view)
        return dock

    def _restore_docks(self) -> None:
        """Dock layout, once the features have added theirs (a state restored before would not
        know their docks). A first start gives the layer rows most of the right column and the
        side columns the width they read well at; the docks of another view stay hidden."""
        win = self.settings.value("windowState")
        if win is None or not self.restoreState(win, self.layout_version()):
            # each side column as wide as its widest panel needs (no sideways scrolling), at least
            # the widths it reads well at
            side = {"Models": 270, "Layers": 330}
            column = {Qt.DockWidgetArea.LeftDockWidgetArea: "Models", Qt.DockWidgetArea.RightDockWidgetArea: "Layers"}
            for dock in self.docks.values():
                col = column.get(self.dockWidgetArea(dock))
                if col is not None:
                    side[col] = max(side[col], layout.needed_width(dock.widget()))
            self.resizeDocks([self.docks["Models"], self.docks["Layers"]], [side["Models"], side["Layers"]],
                             Qt.Orientation.Horizontal)
            sizes = {"Layers": 400, "Metrics": 190, "Inspector": 125}
            right = [n for n in sizes if n in self.docks]
            if len(right) > 1:
                self.resizeDocks([self.docks[n] for n in right], [sizes[n] for n in right], Qt.Orientation.Vertical)
        for name, view in self._view_docks.items():
            if view != self.view:
                self.docks[name].setVisible(False)

    def layout_version(self) -> int:
        """A number that changes with the set of docks and toolbars (and :data:`LAYOUT_VERSION`).

        The dock layout is saved under it, so a layout saved by a build with other docks is not
        restored at all rather than half-way (Qt places the docks it knows and leaves the others
        wherever they fall: a stray tab over another dock); the default layout is used instead."""
        names = sorted(w.objectName() for w in (*self.findChildren(QDockWidget), *self.findChildren(QToolBar))
                       if w.parent() is self)
        return zlib.crc32("|".join([str(LAYOUT_VERSION), *names]).encode()) & 0x7FFFFFFF or 1  # 0: unversioned

    def _restore(self) -> None:
        st = self.settings
        layout.restore_geometry(self, st.value("geometry"))
        for kind in disp.DEFAULT_OPACITY:
            self.state.kind_opacity[kind] = get_float(st, f"opacity/{kind}", disp.DEFAULT_OPACITY[kind])
        self.state.score_threshold = get_float(st, "scoreThreshold", 0.5)
        self.panel.sync(self.state)
        self._rebuild_recent()
        self._update_status()

    def start(self, paths: Sequence[Path] = (), models: Sequence[str] = (), weights: Path | None = None,
              device: str | None = None, no_default: bool = False) -> None:
        """Apply the command line: what to open now; which models, on which device, once listed."""
        self._start_models = (tuple(models), no_default, weights, device)
        if self.cards_ready:
            self._apply_start_models(*self._start_models)
        if paths:
            self.open_paths([Path(p) for p in paths])
        elif not no_default:
            from segviewer.core.imageio import list_images

            scenes = ASSETS / "scenes"
            found = list_images(scenes) if scenes.is_dir() else []
            if found:
                self.session.open_paths([found[0]])
        if self.session.image is None and not self.session.paths:
            self._start_listing()  # no image on its way: nothing to paint first

    def _apply_start_models(self, models: Sequence[str], no_default: bool, weights: Path | None,
                            device: str | None) -> None:
        self._start_models = None
        if device:
            from segviewer.adapters.device import resolve_device

            try:
                self.session.device = resolve_device(device)
            except Exception as err:  # noqa: BLE001 - e.g. --device cuda on a CPU-only machine
                self.show_error(str(err))
            self.picker.set_devices(self.devices, self.session.device)
        if models:
            chosen = list(models)
        elif no_default:
            chosen = []
        else:
            saved = get_list(self.settings, "selectedModels")
            chosen = saved if saved is not None else [m for m in DEFAULT_MODELS if m in self.card_ids]
        unknown = [m for m in chosen if m not in self.card_ids]
        if unknown and models:
            self.show_error(f"Unknown model {unknown[0]!r}; `segviewer models` lists the available ones.")
        chosen = [m for m in chosen if m in self.card_ids]
        if weights is not None and chosen:
            self.session.weights[chosen[0]] = Path(weights)
            self.base_states[chosen[0]] = "user file"
        self.picker.set_cards(self.cards, self._states(), chosen)
        self.session.set_models(chosen)
        self._update_status()

    # ---- user actions ---------------------------------------------------------------------------
    def open_dialog(self) -> None:
        from segviewer.core.imageio import IMAGE_SUFFIXES

        pattern = " ".join(f"*{s}" for s in sorted(IMAGE_SUFFIXES))
        path, _ = QFileDialog.getOpenFileName(self, "Open image", self._last_folder(),
                                              f"Images ({pattern});;All files (*)")
        if path:
            self.session.open_paths([Path(path)])

    def open_folder_dialog(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Open folder", self._last_folder())
        if path:
            self.session.open_paths([Path(path)])

    def load_weights_dialog(self) -> None:
        model = self.picker.current()
        if not model:
            self.show_error("Highlight a model in the Models panel first, then load its weights.")
            return
        from segviewer.ui.weights_dialog import choose_weights  # a folder for transformers families

        card = next((c for c in self.cards if c.id == model), model)
        path = choose_weights(self, card, self._last_folder(), self.show_error)
        if path:
            self.load_weights(model, path)

    def load_weights(self, model_id: str, path: Path) -> None:
        self.base_states[model_id] = "user file"
        self.picker.set_state(model_id, "user file")
        self.session.set_weights(model_id, path)

    def export_png_dialog(self) -> None:
        if self.session.image is None:
            self.show_error(self._no_image_message("exporting an overlay"))
            return
        path, _ = QFileDialog.getSaveFileName(self, "Export overlay", self._suggest(".overlay.png"),
                                              "PNG images (*.png)")
        if path:
            self.export_png(Path(path))

    def export_json_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export predictions", self._suggest(".predictions.json"),
                                              "JSON (*.json)")
        if path:
            self.export_json(Path(path))

    def export_png(self, path: Path) -> None:
        """Write what the screen shows (visible layers, opacities, filters) in a background job."""
        image = self.session.image
        if image is None:
            self.show_error(self._no_image_message("exporting an overlay"))
            return
        layers = [(s, self.state.opacity_of(s.layer)) for s in self._specs if self.state.is_visible(s.layer)]
        run_background(lambda: export.write_overlay(path, image, layers), self._on_exported, self.show_error,
                       "Export")

    def export_json(self, path: Path) -> None:
        """COCO results for every detection model's (filtered) detections, in a background job."""
        from segviewer.core.results import Detections

        dets = {m: r for m, r in self._filtered.items() if isinstance(r, Detections)}
        if not dets:
            self.show_error("No detections to export: run an instance or detection model first.")
            return
        image_path = self.session.path  # the dataset beside it gives the ids (ui/export.py)
        run_background(lambda: export.write_coco(path, dets, image_path), self._on_exported, self.show_error,
                       "Export")

    def _no_image_message(self, doing: str) -> str:
        if self.view != IMAGE_VIEW:
            return f"The {self.view} view is open: its dock exports it. Open an image before {doing}."
        return f"Open an image before {doing}."

    def show_error(self, message: str) -> None:
        """Status bar plus a non-blocking dialog; the app stays usable."""
        self.last_error = message
        if self.closing:  # a dialog after close would keep the event loop (and the process) alive
            return
        self.statusBar().showMessage(message, 10000)
        box = QMessageBox(QMessageBox.Icon.Warning, "segviewer", message, QMessageBox.StandardButton.Ok, self)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.open()
        self.error_dialog = box
        self.errorShown.emit(message)

    # ---- views --------------------------------------------------------------------------------
    def set_view(self, view: str, inspect: Callable[[float, float], list[str]] | None = None) -> None:
        """Who owns the canvas: ``IMAGE_VIEW`` (the session's image and its layers) or another view
        that shows its own frames ("video"). Entering another view closes the session's image, so
        every panel that described it (layers, classes, legend, metrics, internals) is cleared and
        nothing still in flight for it lands on a frame; ``inspect(x, y)`` then gives the hover
        inspector's lines. Docks added for a view show in it and hide in the others."""
        changed = view != self.view
        self.view = view
        self._inspect = None if view == IMAGE_VIEW else inspect
        self._hover = None
        self.inspector.show_lines([])
        for name, owner in self._view_docks.items():
            self.docks[name].setVisible(owner == view)
        if view != IMAGE_VIEW:
            self.session.close_image()
            self.view_note.setText(f"No image open. The {view} draws its own layers on each frame: "
                                   f"switch them in the {view.capitalize()} dock below the picture.")
        self.panel.setVisible(view == IMAGE_VIEW)
        self.view_note.setVisible(view != IMAGE_VIEW)
        if changed:
            self.viewChanged.emit(view)

    def refresh_inspector(self) -> None:
        """Re-read the hover lines at the last pointer position (the data under it changed)."""
        self._on_hover(self._hover)

    # ---- reactions ------------------------------------------------------------------------------
    def _on_image_shown(self) -> None:
        s = self.session
        assert s.image is not None and s.path is not None
        if self.view != IMAGE_VIEW:
            self.set_view(IMAGE_VIEW)
        self.stack.setCurrentWidget(self.canvas)
        self.canvas.set_image(s.image)
        self._render_s = None
        self._hover = None
        self.inspector.show_lines([])
        self.setWindowTitle(f"{s.path.name} ({s.index + 1}/{len(s.paths)}) — segviewer")
        self.settings.setValue("lastFolder", str(s.path.parent))
        push_recent(self.settings, s.path)
        self._rebuild_recent()
        self._refresh_layers()

    def _refresh_layers(self) -> None:
        from segviewer.render.layers import RenderStyle, layer_kinds

        st = self.state
        base_style = self.render_style or RenderStyle()
        self._filtered = {m: disp.filter_result(r, st.score_threshold, st.hidden_classes)
                          for m, r in self.session.results.items()}
        specs: list[LayerSpec] = []
        z: dict[disp.LayerId, float] = {}
        for rank, (mid, r) in enumerate(self._filtered.items()):
            style = disp.style_for(base_style, r, st.hidden_classes)
            for kind in layer_kinds(r):
                lid = (mid, str(getattr(kind, "value", kind)))
                specs.append(LayerSpec(lid, r, lid[1], style))
                z[lid] = disp.layer_z(lid, rank)
        specs.sort(key=lambda sp: z[sp.layer])
        self._specs = specs
        self.canvas.set_layers(specs, z)
        self._apply_visibility()
        layers = [sp.layer for sp in specs]
        # The panel lists the topmost layer first (as image editors and napari do), so the
        # instance layers a user looks at first sit at the top, above the semantic wash.
        self.panel.set_layers(layers[::-1], {lid: disp.layer_title(lid) for lid in layers}, st)
        self._rebuild_layer_menu(layers)
        # model results only: ground truth and merges repeat the same objects and would double-count
        models = {m: r for m, r in self.session.results.items() if m not in self.session.derived}
        self.panel.set_classes(disp.class_counts(models, st.score_threshold), st)
        self._update_legend()
        self.refresh_inspector()
        self._update_status()

    def _apply_visibility(self) -> None:
        for sp in self._specs:
            self.canvas.set_layer_visible(sp.layer, self.state.is_visible(sp.layer))
            self.canvas.set_layer_opacity(sp.layer, self.state.opacity_of(sp.layer))
        for lid, act in self._layer_actions.items():
            act.blockSignals(True)
            act.setChecked(self.state.visible.get(lid, True))
            act.blockSignals(False)

    def _rebuild_layer_menu(self, layers: list[disp.LayerId]) -> None:
        """View > Layer Visibility: one checkable entry per layer (undoable like the panel's boxes)."""
        if list(self._layer_actions) == layers:
            return
        self.layers_menu.clear()
        self._layer_actions.clear()
        for lid in layers:
            act = self.layers_menu.addAction(disp.layer_title(lid))
            act.setCheckable(True)
            act.setChecked(self.state.visible.get(lid, True))
            act.toggled.connect(lambda on, lid=lid: self.undo.push(disp.SetVisible(self.state, lid, on)))
            self._layer_actions[lid] = act
        self.layers_menu.setEnabled(bool(layers))

    def _update_legend(self) -> None:
        if self.view != IMAGE_VIEW:
            return  # the view that owns the canvas fills the legend with its frame's classes
        shown = {m: r for m, r in self._filtered.items()
                 if any(self.state.is_visible(sp.layer) for sp in self._specs if sp.layer[0] == m)}
        self.legend.set_entries([e for e in disp.legend_entries(shown) if e[0] not in self.state.hidden_classes])

    def _on_state_changed(self, what: str) -> None:
        if what in ("score", "classes"):
            self._refresh_layers()
            return
        self._apply_visibility()
        self.panel.sync(self.state)
        self._update_legend()
        act = self.actions.get("toggle_layers")
        if act is not None and act.isChecked() != self.state.overlays_shown:
            act.blockSignals(True)
            act.setChecked(self.state.overlays_shown)
            act.blockSignals(False)

    def _on_models_checked(self, ids: list[str]) -> None:
        self.settings.setValue("selectedModels", ids)
        self.session.set_models(ids)
        self._update_status()

    def _on_device(self, device: str) -> None:
        self.settings.setValue("device", device)
        self.session.set_device(device)
        self._update_status()

    def _on_model_state(self, model_id: str, state: str) -> None:
        text = {"loading": "loading…", "loaded": "loaded"}.get(state, f"{self.base_states.get(model_id, '')} (failed)")
        self.picker.set_state(model_id, text)
        self._update_status()

    def _on_hover(self, pos: tuple[float, float] | None) -> None:
        self._hover = pos
        if pos is None:
            self.inspector.show_lines([])
        elif self._inspect is not None:
            self.inspector.show_lines(self._inspect(*pos))
        else:
            self.inspector.show_lines(disp.inspect_point(self.session.image, self._filtered, *pos))

    def _on_rendered(self, seconds: float) -> None:
        self._render_s = seconds
        self._update_status()

    def _on_exported(self, path: str) -> None:
        self.statusBar().showMessage(f"Saved {path}", 8000)
        self.exported.emit(path)

    def _update_status(self) -> None:
        s = self.session
        self.device_label.setText(f"Device: {s.device}")
        self.model_label.setText(s.summary(self._filtered) or "no model")
        self.timing_label.setText(s.timings(self._render_s).summary())

    def _states(self) -> dict[str, str]:
        return dict(self.base_states)

    def _last_folder(self) -> str:
        return str(self.settings.value("lastFolder", str(Path.home())))

    def _suggest(self, suffix: str) -> str:
        p = self.session.path
        return str(p.with_name(p.stem + suffix)) if p else str(Path(self._last_folder()) / f"segviewer{suffix}")

    def _rebuild_recent(self) -> None:
        self.recent_menu.clear()
        recent = recent_files(self.settings)
        for p in recent:
            act = QAction(Path(p).name, self)
            act.setToolTip(p)
            act.triggered.connect(lambda _=False, p=p: self.session.open_paths([Path(p)]))
            self.recent_menu.addAction(act)
        self.recent_menu.setEnabled(bool(recent))

    def open_paths(self, paths: Sequence[Path]) -> None:
        """Open from the command line or a drop: one path a feature claims (a video) goes to it,
        anything else to the image session."""
        if len(paths) == 1 and any(opener(Path(paths[0])) for opener in self.path_openers):
            return
        self.session.open_paths([Path(p) for p in paths])

    # ---- Qt events ------------------------------------------------------------------------------
    def dragEnterEvent(self, event: QDragEnterEvent) -> None:  # noqa: N802 - Qt override
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:  # noqa: N802 - Qt override
        paths = [Path(u.toLocalFile()) for u in event.mimeData().urls() if u.isLocalFile()]
        if paths:
            self.open_paths(paths)
            event.acceptProposedAction()

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 - Qt override
        self.closing = True
        st = self.settings
        st.setValue("geometry", self.saveGeometry())
        st.setValue("windowState", self.saveState(self.layout_version()))
        for kind, v in self.state.kind_opacity.items():
            st.setValue(f"opacity/{kind}", v)
        st.setValue("scoreThreshold", self.state.score_threshold)
        st.setValue("device", self.session.device)
        st.setValue("selectedModels", self.session.models)
        st.sync()
        self.threads_finished = self.shutdown(1000)  # run_window exits at once if a model still runs
        super().closeEvent(event)

    def shutdown(self, timeout_ms: int = 10000) -> bool:
        """Stop the background threads; False if one was still busy when ``timeout_ms`` ran out."""
        done = self.worker.stop(timeout_ms)
        return self.canvas.renderer.stop(timeout_ms) and done


def _list_models(cards: list[Any] | None) -> tuple[list[Any], dict[str, str], list[str], str]:
    """Cards, their weight states, devices and a note about broken bundled cards (no Qt: runs in a job)."""
    from segviewer.adapters import registry
    from segviewer.adapters.device import available_devices

    cards = registry.list_cards() if cards is None else cards
    states: dict[str, str] = {}
    for c in cards:
        try:
            states[c.id] = str(registry.weight_state(c))
        except Exception:  # noqa: BLE001 - a state we cannot tell is shown as such
            states[c.id] = "?"
    problems = ""
    try:
        found = registry.bundled_card_problems()
        problems = f"Skipped model card: {found[0]}" if found else ""
    except Exception:  # noqa: BLE001
        pass
    return list(cards), states, available_devices(), problems


def grab_rgb(widget: QWidget) -> np.ndarray:
    """A widget's pixels as RGB uint8 (H, W, 3): what the user sees, for tests and screenshots."""
    from PySide6.QtGui import QImage

    img = widget.grab().toImage().convertToFormat(QImage.Format.Format_RGB888)
    h, w, bpl = img.height(), img.width(), img.bytesPerLine()
    buf = np.frombuffer(img.constBits(), np.uint8, count=h * bpl).reshape(h, bpl)
    return buf[:, : w * 3].reshape(h, w, 3).copy()
