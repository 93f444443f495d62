"""pq_compute does not fault its per-image buffers in again for every image (glibc).

With glibc's defaults the 1-10 MB buffers of each image (inflated rows, decoded maps) went back
to the system after every image and were faulted in, zeroed, for the next: thousands of page
faults per 1280x720 image, a third of the time. Measured in a fresh process, where glibc still
has its default thresholds (the test process has long since moved them).
"""

from __future__ import annotations

import ctypes
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from segviewer.core.panoptic_io import id2rgb


def _has_mallopt() -> bool:
    try:
        return hasattr(ctypes.CDLL(None), "mallopt")
    except OSError:
        return False


SCRIPT = """
import resource, sys
from segviewer.analysis.pq import pq_compute
root = sys.argv[1]
pq_compute(root + "/gt.json", root + "/pred.json", workers=1)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
pq_compute(root + "/gt.json", root + "/pred.json", workers=1)
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux") or not _has_mallopt(), reason="glibc's mallopt only")
def test_pq_compute_reuses_its_buffers(tmp_path: Path) -> None:
    cats = [{"id": 1, "name": "road", "isthing": 0}, {"id": 2, "name": "car", "isthing": 1}]
    anns = []
    n = 6
    for i in range(n):
        ids = np.full((720, 1280), 1, np.int32)
        ids[100 + 20 * i:400, 200:900 + 30 * i] = 70000 + i
        for side in ("gt", "pred"):
            (tmp_path / side).mkdir(exist_ok=True)
            Image.fromarray(id2rgb(ids)).save(tmp_path / side / f"{i}.png")  # PIL: adaptive filters
        anns.append({"image_id": i, "file_name": f"{i}.png", "segments_info": [
            {"id": 1, "category_id": 1}, {"id": 70000 + i, "category_id": 2}]})
    for side in ("gt", "pred"):
        (tmp_path / f"{side}.json").write_text(json.dumps({"annotations": anns, "categories": cats}))
    out = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path)], capture_output=True, text=True,
                         check=True, timeout=120)
    faults = int(out.stdout.split()[-1])
    assert faults < 300 * n, f"{faults / n:.0f} page faults per image: buffers are not reused"
