"""CenterNet's numpy decoding: the 3x3 max-pool equals torch's, the peaks equal a plain loop, the
top-k is the highest local maxima, and a box is ``stride * (x + dx -+ w/2, y + dy -+ h/2)``."""

from __future__ import annotations

import numpy as np
import torch

from segviewer.analysis import centernet as dec


def _loop_peaks(heat: np.ndarray) -> list[tuple[int, int, int]]:
    """Every (c, y, x) not below any of its (up to 8) neighbours: the paper's rule, one cell at a time."""
    out = []
    c_, h, w = heat.shape
    for c in range(c_):
        for y in range(h):
            for x in range(w):
                v = heat[c, y, x]
                ok = True
                for j in range(max(0, y - 1), min(h, y + 2)):
                    for i in range(max(0, x - 1), min(w, x + 2)):
                        if heat[c, j, i] > v:
                            ok = False
                if ok:
                    out.append((c, y, x))
    return out


def test_maxpool_equals_torch() -> None:
    rng = np.random.default_rng(0)
    heat = rng.random((3, 17, 23)).astype(np.float32)
    ref = torch.nn.functional.max_pool2d(torch.from_numpy(heat)[None], 3, 1, 1)[0].numpy()
    np.testing.assert_array_equal(dec.maxpool3(heat), ref)


def test_peaks_equal_a_plain_loop_including_plateaus() -> None:
    rng = np.random.default_rng(1)
    heat = rng.random((2, 12, 15)).astype(np.float32)
    heat[0, 3:5, 3:5] = 2.0  # a 2x2 plateau: all four are local maxima under the max-pool rule
    heat[1] = np.round(heat[1] * 4) / 4  # many ties
    pk = dec.find_peaks(heat, k=10)
    assert sorted(map(tuple, pk.all_cyx.tolist())) == sorted(_loop_peaks(heat))
    assert {(0, 3, 3), (0, 3, 4), (0, 4, 3), (0, 4, 4)} <= set(map(tuple, pk.all_cyx.tolist()))
    # top-k: the k highest local maxima, best first
    vals = np.sort(np.array([heat[c, y, x] for c, y, x in _loop_peaks(heat)]))[::-1][:10]
    np.testing.assert_array_equal(pk.scores, vals)
    np.testing.assert_array_equal(heat[pk.cls, pk.ys, pk.xs], pk.scores)


def test_decode_boxes_formula() -> None:
    rng = np.random.default_rng(2)
    off = rng.random((2, 8, 9)).astype(np.float32)
    size = (rng.random((2, 8, 9)) * 10).astype(np.float32)
    ys, xs = np.array([0, 7, 3]), np.array([8, 0, 4])
    got = dec.decode_boxes(ys, xs, off, size, 4)
    for k, (y, x) in enumerate(zip(ys, xs)):
        cx, cy = x + off[0, y, x], y + off[1, y, x]
        w, h = size[0, y, x], size[1, y, x]
        np.testing.assert_allclose(got[k], [4 * (cx - w / 2), 4 * (cy - h / 2), 4 * (cx + w / 2), 4 * (cy + h / 2)],
                                   rtol=1e-6)


def test_sigmoid_matches_torch_and_decode_chains_them() -> None:
    rng = np.random.default_rng(3)
    logits = (rng.standard_normal((5, 16, 16)) * 8).astype(np.float32)
    np.testing.assert_allclose(dec.sigmoid(logits), torch.sigmoid(torch.from_numpy(logits)).numpy(), rtol=1e-6, atol=1e-7)
    off = rng.random((2, 16, 16)).astype(np.float32)
    size = rng.random((2, 16, 16)).astype(np.float32) * 5
    d = dec.decode(logits, off, size, 4, k=7)
    assert len(d.boxes) == 7 and np.all(np.diff(d.scores) <= 0)
    np.testing.assert_array_equal(d.boxes, dec.decode_boxes(d.peaks.ys, d.peaks.xs, off, size, 4))
