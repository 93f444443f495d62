"""YOLACT's linear step gives each mask the same float32 sums whether it is computed alone (the
Internals view's ``assemble_one``) or with the others (the adapter's ``assemble``): the view then
replays bit for bit what made the layer (a BLAS product did not: its sums depend on the batch)."""

from __future__ import annotations

import numpy as np

from segviewer.analysis import yolact as A


def test_linear_does_not_depend_on_the_batch() -> None:
    rng = np.random.default_rng(0)
    proto = rng.standard_normal((16, 64, 86)).astype(np.float32)  # the bundled model's k, 640x480 input
    coef = rng.standard_normal((20, 16)).astype(np.float32)
    together = A.linear(proto, coef)
    assert together.shape == (20, 64, 86) and together.dtype == np.float32
    for i in range(len(coef)):
        assert np.array_equal(together[i], A.linear(proto, coef[i])[0])
    np.testing.assert_allclose(together, np.tensordot(coef.astype(np.float64), proto.astype(np.float64), axes=(1, 0)),
                               rtol=0, atol=1e-4)
