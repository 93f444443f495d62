"""Issue #10: closing the window while a model is inside a long forward pass exits promptly.

The app itself runs in a subprocess (offscreen), through the same ``run_window`` exit path as
``segviewer``; a real torchvision Mask R-CNN v2 (random weights, nothing downloaded) takes
seconds per pass on a CPU, and the window is closed in the middle of one. Before the fix the
default child-process worker never exited (a "model process has been shut down" dialog appeared
after the window had gone and kept the event loop alive) and the thread worker took 4.1 s.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from segviewer.core.fileio import write_image_atomic

SCRIPT = Path(__file__).with_name("close_during_forward.py")
EXIT_BUDGET_S = 3.0
START_TIMEOUT_S = 300  # importing torch twice and building the network on a shared 2-core CPU


@pytest.fixture(scope="module")
def big_image(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("quit") / "big.png"
    rng = np.random.default_rng(0)
    write_image_atomic(path, rng.integers(0, 256, (1200, 1600, 3), dtype=np.uint8))
    return path


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["process", "thread"])
def test_closing_during_a_forward_pass_exits_within_3_s(mode: str, big_image: Path, tmp_path: Path) -> None:
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", SEGVIEWER_SETTINGS_FILE=str(tmp_path / "s.ini"))
    proc = subprocess.Popen([sys.executable, str(SCRIPT), mode, str(big_image)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=env, cwd=str(tmp_path))
    lines: list[str] = []
    closed_at = None
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        assert proc.stdout is not None
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line.rstrip())
            if line.startswith("closing "):
                closed_at = float(line.split()[1])
                break
        assert closed_at is not None, "the window never got to the forward pass:\n" + "\n".join(lines)
        assert "running=['maskrcnn_resnet50_fpn_v2']" in lines[-1]  # closed mid-pass, not after it
        try:
            rest, _ = proc.communicate(timeout=30)
        finally:
            exited_at = time.monotonic()
        lines += rest.splitlines()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    took = exited_at - closed_at
    after = lines[lines.index(next(ln for ln in lines if ln.startswith("closing "))) + 1:]
    assert not [ln for ln in after if ln.startswith("ERROR")], after  # no dialog after close
    assert not [ln for ln in after if ln.startswith("results")], after  # the pass was cut short
    assert proc.returncode == 0, lines
    assert took < EXIT_BUDGET_S, f"{mode}: the process exited {took:.2f} s after the window closed"
