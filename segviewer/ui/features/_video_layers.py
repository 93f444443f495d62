"""Small helpers of the video feature: the readout line, an RGBA array as a pixmap, arrow points."""

from __future__ import annotations

import numpy as np
from PySide6.QtGui import QImage, QPixmap

from segviewer.render import flow as rflow
from segviewer.ui.features._video_engine import FrameReadout

__all__ = ["readout_text", "pixmap", "arrow_points", "STAGES"]

STAGES = ("features", "flow", "warp", "task")


def readout_text(r: FrameReadout) -> str:
    """The one-line readout: key or propagated, time per stage, agreement."""
    kind = f"key frame ({r.reason})" if r.is_key else f"propagated from key frame {r.key_index}"
    parts = [f"{s} {1000 * r.times[s]:.1f}" for s in STAGES if s in r.times]
    agree = "" if r.agreement is None else f" · agreement with full model {100 * r.agreement:.1f}% mIoU"
    return f"Frame {r.index}: {kind} · ms: {', '.join(parts)} (total {1000 * r.total:.1f}){agree}"


def pixmap(rgba: np.ndarray) -> QPixmap:
    a = np.ascontiguousarray(rgba)
    img = QImage(a.data, a.shape[1], a.shape[0], 4 * a.shape[1], QImage.Format.Format_RGBA8888)
    return QPixmap.fromImage(img.copy())


def arrow_points(uv: np.ndarray, step: int, scale: float) -> np.ndarray:
    """Arrows (shafts and heads) as ``(2N, 2)`` points for one ``connect='pairs'`` curve."""
    seg = rflow.flow_arrows(uv, step, scale, 0.25)
    if len(seg):
        seg = np.concatenate([seg, rflow.arrow_heads(seg)], 0)
    return seg.reshape(-1, 2)
