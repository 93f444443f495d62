"""Menus and keyboard shortcuts, declared as one table so every shortcut shows in its menu."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QMainWindow, QMenu


@dataclass(frozen=True)
class ActionSpec:
    name: str
    text: str
    shortcuts: tuple[str | QKeySequence.StandardKey, ...] = ()
    tip: str = ""
    checkable: bool = False


FILE = (
    ActionSpec("open", "&Open Image…", (QKeySequence.StandardKey.Open,), "Open an image file"),
    ActionSpec("open_folder", "Open &Folder…", ("Ctrl+Shift+O",), "Browse the images of a folder"),
    None,
    ActionSpec("next", "&Next Image", ("Right", "PgDown"), "Show the next image of the folder"),
    ActionSpec("prev", "&Previous Image", ("Left", "PgUp"), "Show the previous image of the folder"),
    None,
    ActionSpec("load_weights", "Load &Weights…", ("Ctrl+Shift+W",), "Use a checkpoint file (a save_pretrained folder for transformers models) for the highlighted model"),
    None,
    ActionSpec("export_png", "&Export Overlay as PNG…", ("Ctrl+E",), "Save the image with the visible layers, as on screen"),
    ActionSpec("export_json", "Export &Predictions as JSON…", ("Ctrl+Shift+E",), "Save detections in COCO results format"),
    None,
    ActionSpec("quit", "&Quit", (QKeySequence.StandardKey.Quit,)),
)
VIEW = (
    ActionSpec("fit", "&Fit to Window", ("F",), "Show the whole image"),
    ActionSpec("zoom100", "&Zoom 100%", ("1",), "One image pixel per screen pixel"),
    None,
    ActionSpec("toggle_layers", "Show &Layers", ("L",), "Show or hide every overlay layer", checkable=True),
)
MODEL = (
    ActionSpec("run", "&Run Models", ("Ctrl+R",), "Run the checked models on this image"),
)


def build_menus(window: QMainWindow, handlers: dict[str, Callable[[], None]],
                edit_actions: tuple[QAction, ...]) -> tuple[dict[str, QAction], QMenu]:
    """Create the menu bar; returns the actions by name and the Recent Files submenu."""
    actions: dict[str, QAction] = {}
    bar = window.menuBar()

    def fill(menu: QMenu, specs: tuple[ActionSpec | None, ...]) -> None:
        for spec in specs:
            if spec is None:
                menu.addSeparator()
                continue
            act = QAction(spec.text, window)
            keys = [QKeySequence(k) for k in spec.shortcuts]
            if keys:
                act.setShortcuts(keys)
            act.setStatusTip(spec.tip)
            act.setToolTip(spec.tip)
            act.setCheckable(spec.checkable)
            if spec.name in handlers:
                (act.toggled if spec.checkable else act.triggered).connect(handlers[spec.name])
            menu.addAction(act)
            window.addAction(act)  # shortcuts work even with the menu bar hidden
            actions[spec.name] = act

    file_menu = bar.addMenu("&File")
    fill(file_menu, FILE[:2])
    recent = file_menu.addMenu("Open &Recent")
    fill(file_menu, FILE[2:])
    edit = bar.addMenu("&Edit")
    for act in edit_actions:
        edit.addAction(act)
        window.addAction(act)
    view = bar.addMenu("&View")
    fill(view, VIEW)
    actions["view_menu"] = view.menuAction()
    model = bar.addMenu("&Model")
    fill(model, MODEL)
    return actions, recent


_TOOLBAR = (("open", "SP_DialogOpenButton"), ("open_folder", "SP_DirOpenIcon"), None,
            ("prev", "SP_ArrowBack"), ("next", "SP_ArrowForward"), None,
            ("fit", ""), ("zoom100", ""), None, ("run", "SP_MediaPlay"), ("export_png", "SP_DialogSaveButton"))


def build_toolbar(window: QMainWindow, actions: dict[str, QAction]) -> None:
    """A compact main toolbar over the same actions (icons from the platform style)."""
    from PySide6.QtCore import QSize, Qt
    from PySide6.QtWidgets import QStyle

    bar = window.addToolBar("Main")
    bar.setObjectName("toolbar_main")
    bar.setMovable(False)
    bar.setIconSize(QSize(18, 18))
    bar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
    short = {"open": "Open", "open_folder": "Folder", "prev": "Previous", "next": "Next", "fit": "Fit",
             "zoom100": "100%", "run": "Run", "export_png": "Export"}
    for entry in _TOOLBAR:
        if entry is None:
            bar.addSeparator()
            continue
        name, icon = entry
        act = actions[name]
        if icon:
            act.setIcon(window.style().standardIcon(getattr(QStyle.StandardPixmap, icon)))
        act.setIconText(short[name])
        keys = act.shortcut().toString(act.shortcut().SequenceFormat.NativeText)
        act.setToolTip(f"{act.toolTip() or short[name]} ({keys})" if keys else act.toolTip())
        bar.addAction(act)
