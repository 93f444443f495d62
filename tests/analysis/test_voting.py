"""Pixel Consensus Voting: accumulator == plain loop (and == torch's transposed convolution),
peaks, and back-projection of pseudo-votes recovering ground-truth instances."""

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from segviewer.analysis.roi_align import NothingHereError
from segviewer.analysis.voting import (
    ABSTAIN,
    LOOKUP_TABLE,
    NUM_CELLS,
    VoteGeometry,
    accumulate,
    accumulate_loop,
    backproject,
    cell_extents,
    cell_of_offset,
    find_peaks,
    instances_from_votes,
    one_hot_votes,
    pseudo_votes,
    query_table,
)
from segviewer.core.errors import SegviewerError

torch.set_num_threads(1)


def test_table_is_the_reference_table() -> None:
    assert LOOKUP_TABLE.shape == (9, 9) and NUM_CELLS == 17 and ABSTAIN == 17
    assert LOOKUP_TABLE[4, 4] == 0 and LOOKUP_TABLE[3, 4] == 1 and LOOKUP_TABLE[0, 4] == 9
    assert np.bincount(LOOKUP_TABLE.ravel()).tolist() == [1] * 9 + [9] * 8
    np.testing.assert_array_equal(cell_extents()[9], [0, 3, 3, 6])
    np.testing.assert_array_equal(query_table(), LOOKUP_TABLE[::-1, ::-1])
    # offsets in table units: centroid one unit up is cell 1; far away is ignored
    np.testing.assert_array_equal(cell_of_offset(np.array([-1, 0, 3.4, 9]), np.array([0, 0, -3.6, 0])),
                                  [1, 0, 12, 255])


@pytest.mark.parametrize("unit", [1, 2, 3])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_accumulator_equals_plain_loop(unit: int, dtype) -> None:
    rng = np.random.default_rng(unit)
    for h, w in [(11, 13), (5, 30), (16, 12)]:
        votes = rng.random((h, w, NUM_CELLS + 1)).astype(np.float32)
        votes /= votes.sum(2, keepdims=True)
        g = VoteGeometry(unit=unit)
        ref = accumulate_loop(votes, g)
        np.testing.assert_allclose(accumulate(votes, g, dtype), ref, atol=1e-5, rtol=0)
        chw = np.ascontiguousarray(votes.transpose(2, 0, 1))
        np.testing.assert_allclose(accumulate(chw, g, dtype, channel_axis=0), ref, atol=1e-5, rtol=0)


def test_accumulator_equals_torch_transposed_convolution() -> None:
    """REFERENCE's formulation: one-hot 3x3 transposed convs (outer ones dilated by 3), then a 3x3
    average pool that spreads an outer vote over its 9 pixels."""
    rng = np.random.default_rng(5)
    h, w = 20, 26
    votes = rng.random((h, w, NUM_CELLS + 1)).astype(np.float32)
    x = torch.from_numpy(votes).permute(2, 0, 1)[None].double()
    inner_k = torch.zeros(9, 1, 3, 3, dtype=torch.double)
    outer_k = torch.zeros(8, 1, 3, 3, dtype=torch.double)
    for k in range(9):
        r, c = np.argwhere(LOOKUP_TABLE[3:6, 3:6] == k)[0]
        inner_k[k, 0, r, c] = 1
    for k in range(9, 17):
        r, c = np.argwhere(LOOKUP_TABLE[1::3, 1::3] == k)[0]
        outer_k[k - 9, 0, r, c] = 1
    inner = F.conv_transpose2d(x[:, :9], inner_k, padding=1, groups=9).sum(1)
    outer = F.conv_transpose2d(x[:, 9:17], outer_k, padding=3, dilation=3, groups=8).sum(1, keepdim=True)
    # pad first so a block whose centre falls just outside the image still reaches its inside pixels
    outer_full = F.conv_transpose2d(F.pad(x[:, 9:17], (4, 4, 4, 4)), outer_k, padding=3, dilation=3, groups=8)
    outer_full = F.avg_pool2d(outer_full.sum(1, keepdim=True), 3, stride=1, padding=1)[..., 4:-4, 4:-4]
    ref = (inner + outer_full[:, 0]).numpy()[0]
    np.testing.assert_allclose(accumulate(votes, dtype=np.float64), ref, atol=1e-10)
    assert outer.shape[-2:] == (h, w)


def test_outer_vote_spreads_evenly_over_nine_pixels() -> None:
    votes = np.zeros((15, 15, NUM_CELLS + 1), np.float32)
    votes[7, 7, 9] = 0.9  # cell 9: the block straight up, rows -4..-2, cols -1..1
    acc = accumulate(votes)
    np.testing.assert_allclose(acc[3:6, 6:9], 0.1, atol=1e-7)
    assert acc.sum() == pytest.approx(0.9)
    votes[7, 7, ABSTAIN] = 1.0  # abstaining adds nothing
    assert accumulate(votes).sum() == pytest.approx(0.9)


def test_peaks_are_components_with_their_maxima() -> None:
    acc = np.zeros((20, 20))
    acc[2:5, 2:5] = 1.0
    acc[3, 4] = 2.0
    acc[12:15, 10:18] = 0.7
    acc[13, 11] = 3.0
    p = find_peaks(acc, 0.5)
    assert len(p) == 2
    np.testing.assert_array_equal(p.positions, [[13, 11], [3, 4]])
    np.testing.assert_array_equal(p.areas, [24, 9])
    assert p.at(11.5, 13.2) == 0 and p.at(2.1, 2.1) == 1
    with pytest.raises(NothingHereError):
        p.at(19, 0)
    assert len(find_peaks(acc, 0.5, min_area=10)) == 1


def _scene(rng: np.random.Generator, size: int, n: int, max_half: int) -> np.ndarray:
    """Non-overlapping ellipses and rectangles (with a 2-pixel gap) as (N, H, W) masks, each
    reaching at most ``max_half`` pixels from its centre."""
    taken = np.zeros((size, size), np.uint8)
    masks = []
    for _ in range(200):
        m = np.zeros((size, size), np.uint8)
        cx, cy = (int(v) for v in rng.integers(8, size - 8, 2))
        a, b = (int(v) for v in rng.integers(max_half // 2, max_half + 1, 2))
        if rng.random() < 0.5:
            cv2.ellipse(m, (cx, cy), (a, b), float(rng.uniform(0, 180)), 0, 360, 1, -1)
        else:
            m[max(cy - b, 0): cy + b, max(cx - a, 0): cx + a] = 1
        if (cv2.dilate(m, np.ones((5, 5), np.uint8)) & taken).any():
            continue
        taken |= m
        masks.append(m.astype(bool))
        if len(masks) == n:
            break
    return np.stack(masks)


@pytest.mark.parametrize("unit", [2, 3])
def test_pseudo_votes_back_project_to_the_instances(unit: int) -> None:
    rng = np.random.default_rng(unit)
    g = VoteGeometry(unit=unit)
    cell_px = (3 * unit) ** 2  # the larger (outer) cell
    ious = []
    for _ in range(4):
        # instances must fit the table's reach (4.5 units) for every pixel to be able to vote
        masks = _scene(rng, 96, 8, max_half=4 * unit)
        cells = pseudo_votes(masks, g)
        axis = unit % 2 * -1  # both layouts: (C, H, W) for unit 2, (H, W, C) for unit 3
        labels, peaks, acc = instances_from_votes(one_hot_votes(cells, g, axis), 1.0, g, channel_axis=axis)
        for m in masks:
            if m.sum() <= cell_px:
                continue
            ids, counts = np.unique(labels[m], return_counts=True)
            counts, ids = counts[ids > 0], ids[ids > 0]
            assert ids.size, "an instance produced no peak"
            pred = labels == ids[np.argmax(counts)]
            ious.append((pred & m).sum() / (pred | m).sum())
    assert len(ious) >= 10
    assert min(ious) > 0.9, sorted(ious)[:3]


def test_backprojection_of_one_peak_is_its_voters() -> None:
    g = VoteGeometry(unit=2)
    m = np.zeros((1, 40, 40), bool)
    m[0, 10:22, 12:20] = True
    cells = pseudo_votes(m, g)
    acc = accumulate(one_hot_votes(cells, g), g)
    peak = np.unravel_index(np.argmax(acc), acc.shape)
    ys, xs = np.nonzero(m[0])
    assert peak == (int(np.floor(ys.mean() + 0.5)), int(np.floor(xs.mean() + 0.5)))
    np.testing.assert_array_equal(backproject(cells, peak, g), m[0])
    assert not backproject(cells, (0, 39), g).any()
    assert not backproject(cells, (-50, -50), g).any()


def test_far_centroids_abstain_and_bad_inputs_raise() -> None:
    g = VoteGeometry(unit=1)  # the table reaches 4 pixels
    m = np.zeros((1, 30, 30), bool)
    m[0, 5, 2:28] = True  # a long line: ends are > 4 px from the centroid
    cells = pseudo_votes(m, g)
    assert cells[5, 2] == ABSTAIN and cells[5, 15] == 0 and cells[0, 0] == ABSTAIN
    with pytest.raises(SegviewerError, match="square"):
        VoteGeometry(table=np.zeros((4, 4), np.int64))
    with pytest.raises(SegviewerError, match="unit"):
        VoteGeometry(unit=0)
    with pytest.raises(SegviewerError, match="Votes must be"):
        accumulate(np.zeros((4, 4, 3)))
    with pytest.raises(SegviewerError, match="Votes must be"):
        accumulate(np.zeros((4, 4, 18)), channel_axis=0)
    with pytest.raises(SegviewerError, match="channel_axis"):
        accumulate(np.zeros((4, 4, 18)), channel_axis=1)


def test_table_matches_training_targets_convention() -> None:
    """The training targets must read the same table the viewer draws (single source of truth)."""
    pcv = pytest.importorskip("segviewer.training.pcv_targets")
    np.testing.assert_array_equal(pcv.LOOKUP_TABLE, LOOKUP_TABLE)
    d = np.random.default_rng(0).uniform(-6, 6, (2, 500))
    np.testing.assert_array_equal(pcv.cell_of_offset(d[0], d[1]), cell_of_offset(d[0], d[1]))
