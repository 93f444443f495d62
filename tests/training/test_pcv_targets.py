"""The PCV lookup table and voting targets, checked against brute-force geometry."""

import numpy as np

from segviewer.training import pcv_targets as P


def test_table_has_17_cells_of_the_documented_sizes() -> None:
    t = P.LOOKUP_TABLE
    assert t.shape == (9, 9) and t[4, 4] == 0
    counts = np.bincount(t.ravel(), minlength=P.NUM_CELLS)
    assert counts[:9].tolist() == [1] * 9  # inner 3x3: one unit each
    assert counts[9:].tolist() == [9] * 8  # outer ring: 3x3 blocks
    ext = P.cell_extents()
    for k in range(P.NUM_CELLS):  # each cell is exactly its bounding rectangle
        r0, c0, r1, c1 = ext[k]
        assert np.all(t[r0:r1, c0:c1] == k) and (r1 - r0) * (c1 - c0) == counts[k]


def test_cell_of_offset_matches_table_lookup() -> None:
    rng = np.random.default_rng(0)
    dy, dx = rng.uniform(-6, 6, 500), rng.uniform(-6, 6, 500)
    got = P.cell_of_offset(dy, dx)
    for y, x, g in zip(dy, dx, got):
        r, c = int(np.floor(y + 0.5)) + 4, int(np.floor(x + 0.5)) + 4
        want = P.LOOKUP_TABLE[r, c] if 0 <= r < 9 and 0 <= c < 9 else P.IGNORE
        assert g == want
    # "up" is row 0: a centroid straight above the pixel falls in cell 1 (near) or 9 (far).
    assert P.cell_of_offset(np.array([-1.0, -3.0]), np.array([0.0, 0.0])).tolist() == [1, 9]


def test_vote_targets_point_at_the_centroid() -> None:
    h = w = 64
    mask = np.zeros((h, w), bool)
    mask[16:32, 20:44] = True  # centroid at (x, y) = (32, 24) in pixel-edge coordinates
    t = P.vote_targets([mask], (h, w), stride=4, cell_size=2.0)
    assert t.shape == (16, 16)
    assert np.all(t[~mask[::4, ::4]] == P.ABSTAIN)
    unit = 4 * 2.0
    for i, j in zip(*np.nonzero(mask[::4, ::4])):
        py, px = (i + 0.5) * 4, (j + 0.5) * 4
        assert t[i, j] == P.cell_of_offset(np.array((24 - py) / unit), np.array((32 - px) / unit))
    # the feature pixel holding the centroid votes for the centre cell
    assert t[24 // 4, 32 // 4] in (0, 1, 3, 2)


def test_query_table_is_the_flipped_table() -> None:
    q = P.query_table()
    assert q[0, 0] == P.LOOKUP_TABLE[8, 8] and q[4, 4] == 0
