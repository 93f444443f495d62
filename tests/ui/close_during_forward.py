"""Helper script of ``test_ui_quit.py`` (not a test): the app's window and exit path, offscreen,
closed while a large real network (random weights) is inside its forward pass.

``python close_during_forward.py MODE IMAGE`` with MODE ``process`` (the app's default worker)
or ``thread``. Prints ``closing <monotonic seconds>`` right before closing the window, and
``ERROR <message>`` for every error the window reports.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

MODEL = "maskrcnn_resnet50_fpn_v2"  # seconds per pass on a CPU, even with few detections
CLOSE_AFTER_MS = 1500  # after the model is loaded: the pass has started and runs on


def main() -> int:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    mode, image = sys.argv[1], Path(sys.argv[2])
    from PySide6.QtCore import QTimer

    from segviewer.adapters.registry import get_card
    from segviewer.ui.app import make_app, run_window
    from segviewer.ui.main_window import MainWindow
    from segviewer.ui.model_host import random_init_factory
    from segviewer.ui.worker import InferenceWorker

    app = make_app()
    worker = InferenceWorker(random_init_factory(torch_threads=1), process=mode == "process")
    window = MainWindow(worker, cards=[get_card(MODEL)])

    def close() -> None:
        print(f"closing {time.monotonic():.6f} running={sorted(window.session.running)}", flush=True)
        window.close()

    def on_state(model_id: str, state: str) -> None:
        print(f"state {model_id} {state}", flush=True)
        if state == "loaded":  # the next thing the worker does is the forward pass
            QTimer.singleShot(CLOSE_AFTER_MS, close)

    window.session.modelStateChanged.connect(on_state)
    window.errorShown.connect(lambda m: print(f"ERROR {m}", flush=True))
    window.session.resultsChanged.connect(lambda: print("results", sorted(window.session.results), flush=True))
    window.start([image], models=[MODEL], no_default=True)
    return run_window(app, window)


if __name__ == "__main__":  # the model process is spawned: it must not run this again
    sys.exit(main())
