"""Shared test set-up: headless Qt, one torch thread, and fast deterministic defaults."""

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("OMP_NUM_THREADS", "2")
os.environ.setdefault("TORCH_HOME", os.path.join(os.path.dirname(__file__), ".torch_home_empty"))


from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

_SHIPPED = [Path(__file__).resolve().parents[1] / "assets"]


def _shipped_files() -> set[str]:
    return {str(p) for root in _SHIPPED for p in root.rglob("*")}


@pytest.fixture(scope="session", autouse=True)
def shipped_folders_stay_untouched():
    """Tests write to tmp_path, never into the sample data we ship: a result store or cache left
    in assets/ would be committed by the next careless ``git add``."""
    before = _shipped_files()
    yield
    added = sorted(_shipped_files() - before)
    assert not added, f"tests wrote into the shipped folders: {added[:5]}"
