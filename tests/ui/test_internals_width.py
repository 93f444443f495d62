"""Every Internals view fits the dock's narrow left column: no sideways scrolling on a laptop."""

from __future__ import annotations

import pytest

pytest.importorskip("pytestqt")

from segviewer.adapters.registry import list_cards  # noqa: E402
from segviewer.ui.features.internals import InternalsFeature  # noqa: E402

#: The left column's width at the laptop size the window opens at (ui/layout.py FIT_SCREEN); the
#: dock shares it with the Models and Layers panels, tabbed.
COLUMN = 270


def test_every_view_fits_the_left_column(qtbot, show_window) -> None:
    w = show_window(lambda card: None, list_cards(), size=(1340, 720))
    panel = w.findChild(InternalsFeature).panel
    wide = {panel.tabs.tabText(i): panel.tabs.widget(i).minimumSizeHint().width() for i in range(panel.tabs.count())}
    wide = {k: v for k, v in wide.items() if v > COLUMN}
    assert not wide, f"views wider than the dock's {COLUMN} px column (they scroll sideways): {wide}"
    assert panel.tabs.count() >= 6  # the two-stage tabs, the votes, the FCN stages and the dense heads at least
    # on screen, with the dock's vertical scroll bar taking its share: no view scrolls sideways
    dock = w.docks["Internals"]
    dock.raise_()
    area = dock.widget()
    for i in range(panel.tabs.count()):
        panel.tabs.setCurrentIndex(i)
        qtbot.wait(30)
        assert area.viewport().width() >= area.widget().minimumSizeHint().width(), panel.tabs.tabText(i)
        assert not area.horizontalScrollBar().isVisible(), panel.tabs.tabText(i)


def test_fit_narrow_shrinks_a_long_combo_and_wraps_forms(qtbot) -> None:
    from PySide6.QtWidgets import QComboBox, QFormLayout, QWidget

    from segviewer.ui.widgets.internals_tabs import fit_narrow

    def page() -> QWidget:
        w = QWidget()
        qtbot.addWidget(w)
        combo = QComboBox()
        combo.addItem("a very long item text that would widen the whole dock by itself " * 2)
        QFormLayout(w).addRow("A long label for the row", combo)
        return w

    plain, narrow = page(), page()
    fit_narrow(narrow)  # as add_view does, before anything measured the page
    assert narrow.minimumSizeHint().width() < COLUMN < plain.minimumSizeHint().width()
