"""The bundled samples are what the documented commands make (and stay small)."""

from __future__ import annotations

from itertools import islice
from pathlib import Path

import cv2
import numpy as np
import pytest

from segviewer.core.flo import read_flo
from segviewer.core.panoptic_io import read_panoptic
from segviewer.synth.dataset import scene_seed
from segviewer.synth.generate import generate_scene
from segviewer.synth.video import generate_video
from segviewer.synth.video_files import count_video_frames

ASSETS = Path(__file__).resolve().parents[2] / "assets"
pytestmark = pytest.mark.skipif(not (ASSETS / "scenes" / "scene_000.png").is_file(), reason="no assets")


def test_assets_fit_the_size_budget() -> None:
    total = sum(p.stat().st_size for p in ASSETS.rglob("*") if p.is_file())
    assert total < 15 * 2**20, f"assets/ holds {total / 2**20:.1f} MB"


def test_default_scene_is_regenerated_by_the_documented_seed() -> None:
    s = generate_scene(scene_seed(169, 0), (480, 640))
    img = cv2.imread(str(ASSETS / "scenes" / "scene_000.png"))[..., ::-1]
    # exact on this build; a tolerance leaves room for other CPUs' float rounding in OpenCV
    assert np.abs(img.astype(int) - s.image).mean() < 0.5
    sem = cv2.imread(str(ASSETS / "scenes" / "masks" / "scene_000.png"), cv2.IMREAD_UNCHANGED)
    assert (sem == s.semantic).mean() > 0.999
    assert len(s.instances) >= 5 and len({i.category for i in s.instances}) >= 4


def test_sample_video_and_its_flow() -> None:
    assert count_video_frames(ASSETS / "video" / "video.mp4") == 48
    frames = list(islice(generate_video(5, 48, (240, 320)), 9))  # the world depends on the length
    pan = read_panoptic(ASSETS / "video" / "annotations" / "panoptic.json")
    assert (pan.panoptic(9).segment_ids == frames[8].panoptic.segment_ids).mean() > 0.999
    assert np.abs(read_flo(ASSETS / "video" / "flow" / "frame_0008.flo") - frames[8].flow).max() < 1e-3
