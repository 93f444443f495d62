"""Stepping through a processed video: time from a step (the Right key) until the frame *and* its
cached result layers are on screen, in the real window (offscreen platform).

Target (issue: video): a step whose result is cached shows within 30 ms. The video is processed
first ("Process whole video"), then stepped forward and back frame by frame; each step is timed
from ``step()`` to the ``resultShown`` signal of that frame, with the event loop running, so
decoding (read-ahead), the engine thread's cache lookup, the queued signal, rendering the
layers and setting the items are all inside the measurement. No peer tool steps DFF results.

    QT_QPA_PLATFORM=offscreen python bench/video_step.py [--video assets/video/video.mp4] [--instances]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--video", type=Path, default=ROOT / "assets" / "video" / "video.mp4")
    ap.add_argument("--interval", type=int, default=10)
    ap.add_argument("--instances", action="store_true", help="also track the bundled Mask R-CNN's instances")
    ap.add_argument("--steps", type=int, default=0, help="steps each way (default: the whole video)")
    args = ap.parse_args(argv)
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

    from PySide6.QtCore import QEventLoop, QTimer
    from PySide6.QtWidgets import QApplication

    from segviewer.ui.features.video import VideoFeature
    from segviewer.ui.main_window import MainWindow
    from segviewer.ui.model_host import registry_factory
    from segviewer.ui.worker import InferenceWorker

    app = QApplication.instance() or QApplication([])
    w = MainWindow(InferenceWorker(lambda m: registry_factory(m, torch_threads=1), process=False), cards=[])
    w.resize(1400, 900)
    w.show()
    feat = w.findChild(VideoFeature)
    assert feat is not None

    def wait(signal, pred=lambda *a: True, timeout_s: float = 600.0) -> list:  # noqa: ANN001
        got: list = []
        loop = QEventLoop()

        def on(*a) -> None:  # noqa: ANN002
            if pred(*a) and not got:
                got.append(a)
                loop.quit()
        signal.connect(on)
        QTimer.singleShot(int(timeout_s * 1000), loop.quit)
        loop.exec()
        signal.disconnect(on)
        if not got:
            raise TimeoutError(f"no {signal} within {timeout_s} s")
        return list(got[0])

    feat.interval.setValue(args.interval)
    if args.instances:
        feat.instances_box.setCurrentIndex(max(feat.instances_box.findData("shapes_maskrcnn"), 0))
    feat.open(args.video)
    n = wait(feat.videoOpened)[0]
    t0 = time.perf_counter()
    feat.process_all()
    what, cancelled = wait(feat.jobDone)
    print(f"{args.video.name}: {n} frames at {feat.source.size[1]}x{feat.source.size[0]}, interval {args.interval}"
          f"{', instances tracked' if args.instances else ''}; processed in {time.perf_counter() - t0:.1f} s", flush=True)
    if cancelled:
        print("processing failed or was cancelled")
        return 1
    feat.seek(0)
    wait(feat.resultShown, lambda r: r.index == 0)
    for _ in range(20):  # let the read-ahead fill
        app.processEvents()
        time.sleep(0.01)
    steps = args.steps or n - 1
    times = []
    for direction in (1, -1):
        for _ in range(steps):
            target = feat.index + direction
            t = time.perf_counter()
            feat.step(direction)
            wait(feat.resultShown, lambda r, target=target: r.index == target, 10.0)
            times.append((time.perf_counter() - t) * 1e3)
    ms = np.array(times)
    print(f"{len(ms)} cached steps: median {np.median(ms):.1f} ms, p95 {np.percentile(ms, 95):.1f} ms, "
          f"max {ms.max():.1f} ms (target: within 30 ms)")
    print(f"\n| steps | median | p95 | max | target |\n|---|---|---|---|---|\n"
          f"| {len(ms)} | {np.median(ms):.1f} ms | {np.percentile(ms, 95):.1f} ms | {ms.max():.1f} ms | 30 ms |")
    feat.close_video()
    w.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
