"""Persistent preferences (QSettings, organization "segviewer", application "segviewer").

Tests (and anyone who wants a throwaway profile) set ``SEGVIEWER_SETTINGS_FILE`` to an INI file
path; the user's real settings are then never read or written.
"""

from __future__ import annotations

import os
from pathlib import Path

from PySide6.QtCore import QSettings

ORG = "segviewer"
APP = "segviewer"
ENV_FILE = "SEGVIEWER_SETTINGS_FILE"
MAX_RECENT = 10


def open_settings() -> QSettings:
    """The settings store: the INI file named by ``SEGVIEWER_SETTINGS_FILE`` if set, else the native one."""
    path = os.environ.get(ENV_FILE)
    if path:
        return QSettings(path, QSettings.Format.IniFormat)
    return QSettings(ORG, APP)


def get_list(s: QSettings, key: str) -> list[str] | None:
    """A string list, or None when the key was never written (an empty list is a real choice)."""
    if not s.contains(key):
        return None
    v = s.value(key)
    if v is None or v == "":
        return []
    if isinstance(v, str):
        return [v]
    return [str(x) for x in v]


def get_float(s: QSettings, key: str, default: float) -> float:
    try:
        return float(s.value(key, default))
    except (TypeError, ValueError):
        return default


def recent_files(s: QSettings) -> list[str]:
    """The Open Recent list as absolute paths. Entries written as relative paths by older
    versions are resolved against the working directory and dropped when nothing is there
    (they named a file relative to wherever the app was started then)."""
    out: list[str] = []
    for p in get_list(s, "recentFiles") or []:
        path = Path(p)
        if not path.is_absolute():
            if not path.exists():
                continue
            path = path.resolve()
        if str(path) not in out:
            out.append(str(path))
    return out[:MAX_RECENT]


def push_recent(s: QSettings, path: Path) -> list[str]:
    """Put ``path`` (made absolute and resolved, so the entry opens from any working directory)
    first in the recent files list (deduplicated, at most MAX_RECENT)."""
    entry = str(Path(path).resolve())
    recent = [p for p in recent_files(s) if p != entry]
    recent.insert(0, entry)
    recent = recent[:MAX_RECENT]
    s.setValue("recentFiles", recent)
    return recent
