"""Background jobs: callbacks run on the UI thread, and never after their owner is gone."""

from PySide6.QtCore import QObject

from segviewer.ui.jobs import run_background


def test_result_reaches_the_ui_thread(qtbot) -> None:
    got = []
    # (no waitSignal: a job this short may have emitted before a late connection would see it)
    run_background(lambda: 41 + 1, got.append, got.append, "answer")
    qtbot.waitUntil(lambda: got == [42], timeout=10000)


def test_failure_is_one_line(qtbot) -> None:
    got = []

    def boom() -> None:
        raise ValueError("bad input")

    run_background(boom, got.append, got.append, "Loader")
    qtbot.waitUntil(lambda: got == ["Loader failed: ValueError: bad input"], timeout=10000)


def test_late_result_for_a_destroyed_owner_is_dropped(qtbot) -> None:
    import threading

    from PySide6.QtCore import QCoreApplication, QThreadPool

    gate = threading.Event()
    got = []
    owner = QObject()
    sig = run_background(lambda: gate.wait(10) and "late", got.append, got.append, "slow", owner=owner)
    destroyed = []
    sig.destroyed.connect(lambda: destroyed.append(True))
    owner.deleteLater()
    qtbot.waitUntil(lambda: destroyed == [True], timeout=5000)
    gate.set()
    assert QThreadPool.globalInstance().waitForDone(10000)  # the job has finished and emitted
    QCoreApplication.processEvents()  # anything queued for the UI thread is delivered now
    assert got == []


def test_without_owner_the_same_late_result_arrives(qtbot) -> None:
    from PySide6.QtCore import QCoreApplication, QThreadPool

    got = []
    run_background(lambda: "late", got.append, got.append, "slow")
    assert QThreadPool.globalInstance().waitForDone(10000)
    QCoreApplication.processEvents()
    assert got == ["late"]
