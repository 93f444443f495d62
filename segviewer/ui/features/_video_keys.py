"""The video feature's menu entries and keys: File > Open Video… / Open Frame Folder as Video…,
and Space / Left / Right / PgUp / PgDown, which drive the video while it is open. The window's
next/previous-image shortcuts use the same keys: they are lifted while a video is open and given
back when it closes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QKeySequence, QShortcut

__all__ = ["VideoKeys"]

LIFTED = ("next", "prev")  # the window actions whose keys the video takes


class VideoKeys:
    """Menu actions and window shortcuts of the video view; ``handlers`` maps "open",
    "open_folder", "play", "step" (+-1) and "jump_key" (+-1) to the feature's methods."""

    def __init__(self, window: Any, handlers: dict[str, Callable[..., Any]]) -> None:
        self.window = window
        self.open_action = QAction("Open &Video…", window)
        self.open_action.setShortcut(QKeySequence("Ctrl+Shift+V"))
        self.open_action.setStatusTip("Open a video file for Deep Feature Flow")
        self.open_action.triggered.connect(handlers["open"])
        self.open_frames_action = QAction("Open Frame Folder as Video…", window)
        self.open_frames_action.triggered.connect(handlers["open_folder"])
        menu = next((a.menu() for a in window.menuBar().actions()
                     if a.menu() is not None and a.text().replace("&", "") == "File"), None)
        if menu is None:
            menu = window.menuBar().addMenu("&Video")
        acts = getattr(window, "actions", None)
        before = acts.get("next") if isinstance(acts, dict) else None
        for act in (self.open_action, self.open_frames_action):
            menu.insertAction(before, act) if before is not None else menu.addAction(act)
        window.addAction(self.open_action)
        self.shortcuts: list[QShortcut] = []
        step, jump = handlers["step"], handlers["jump_key"]
        for key, fn in (("Space", handlers["play"]), ("Right", lambda: step(1)), ("Left", lambda: step(-1)),
                        ("PgDown", lambda: jump(1)), ("PgUp", lambda: jump(-1))):
            sc = QShortcut(QKeySequence(key), window)
            sc.setContext(Qt.ShortcutContext.WindowShortcut)
            sc.setEnabled(False)
            sc.activated.connect(fn)
            self.shortcuts.append(sc)
        self._lifted: dict[str, list[QKeySequence]] = {}

    def take(self) -> None:
        """The video's keys on; next/previous image lose theirs (kept to give back)."""
        acts = getattr(self.window, "actions", None)
        if isinstance(acts, dict) and not self._lifted:
            for name in LIFTED:
                if name in acts:
                    self._lifted[name] = list(acts[name].shortcuts())
                    acts[name].setShortcuts([])
        for sc in self.shortcuts:
            sc.setEnabled(True)

    def give_back(self) -> None:
        """The video's keys off; next/previous image get theirs back."""
        for sc in self.shortcuts:
            sc.setEnabled(False)
        acts = getattr(self.window, "actions", None)
        for name, keys in self._lifted.items():
            if isinstance(acts, dict) and name in acts:
                acts[name].setShortcuts(keys)
        self._lifted = {}
