"""Qt test set-up: settings in a temporary INI file so tests never touch the user's settings."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def isolated_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """QSettings goes to an INI file under tmp_path (see segviewer.ui.settings)."""
    path = tmp_path / "settings.ini"
    monkeypatch.setenv("SEGVIEWER_SETTINGS_FILE", str(path))
    return path
