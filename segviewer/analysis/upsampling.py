"""Five ways to upsample a coarse score map, in numpy (the lectures' list, FCN and DeconvNet papers).

Each function mirrors one torch operator exactly, so the Internals dock can draw what the
network's own operators would give, and the tests can compare the two on the same input:

* :func:`nearest` -- ``F.interpolate(mode="nearest")`` with an integer factor;
* :func:`bed_of_nails` -- each value at the top-left of its ``f x f`` block, zeros elsewhere
  (``conv_transpose2d`` with a one-hot ``f x f`` kernel, stride ``f``);
* :func:`max_unpool` -- DeconvNet's unpooling: each value goes back where the max-pool found its
  maximum (``F.max_unpool2d`` with the pool's ``return_indices`` switches);
* :func:`bilinear` -- ``F.interpolate(mode="bilinear", align_corners=False)``;
* :func:`conv_transpose` -- ``F.conv_transpose2d``: the learned upsampler (FCN's ``upscore``).

Maps are ``(C, h, w)`` arrays (one image, no batch axis).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["nearest", "bed_of_nails", "max_unpool", "bilinear", "conv_transpose", "bilinear_kernel",
           "strongest_switches", "KernelComparison", "compare_kernels", "MapComparison", "compare_maps",
           "METHODS", "UpsamplingInputs"]

#: the five methods, in the order the view shows them
METHODS: tuple[str, ...] = ("nearest", "bed of nails", "max-unpooling", "bilinear", "learned (transposed conv)")


def _check(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim != 3:
        raise ValueError(f"expected a (C, h, w) map, got shape {x.shape}")
    return x


def nearest(x: np.ndarray, factor: int) -> np.ndarray:
    """Each value copied into its ``factor x factor`` block."""
    x = _check(x)
    return np.repeat(np.repeat(x, factor, axis=1), factor, axis=2)


def bed_of_nails(x: np.ndarray, factor: int) -> np.ndarray:
    """Each value at the top-left of its ``factor x factor`` block; zeros elsewhere."""
    x = _check(x)
    c, h, w = x.shape
    out = np.zeros((c, h * factor, w * factor), x.dtype)
    out[:, ::factor, ::factor] = x
    return out


def max_unpool(x: np.ndarray, indices: np.ndarray, out_size: tuple[int, int]) -> np.ndarray:
    """Each ``x[c, i, j]`` written at flat position ``indices[c, i, j]`` of an ``out_size`` plane
    (zeros elsewhere): the switches a max-pool recorded send every value back to its argmax.
    As torch's ``max_unpool2d``, a later value wins where two indices coincide."""
    x = _check(x)
    idx = np.asarray(indices)
    if idx.shape != x.shape:
        raise ValueError(f"indices {idx.shape} must match the map {x.shape}")
    c = x.shape[0]
    oh, ow = out_size
    out = np.zeros((c, oh * ow), x.dtype)
    if idx.size and (idx.min() < 0 or idx.max() >= oh * ow):
        raise ValueError(f"a switch points outside the {oh}x{ow} output")
    rows = np.repeat(np.arange(c), x.shape[1] * x.shape[2])
    out[rows, idx.reshape(-1)] = x.reshape(-1)
    return out.reshape(c, oh, ow)


def _source_index(out_len: int, in_len: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """torch's ``area_pixel_compute_source_index`` (align_corners False) for one axis: the two
    source indices and the weight of the second."""
    scale = np.float32(in_len / out_len)
    src = (np.arange(out_len, dtype=np.float32) + np.float32(0.5)) * scale - np.float32(0.5)
    src = np.maximum(src, np.float32(0.0))
    i0 = np.minimum(src.astype(np.int64), in_len - 1)
    i1 = np.minimum(i0 + 1, in_len - 1)
    lam = (src - i0).astype(np.float32)
    return i0, i1, lam


def bilinear(x: np.ndarray, out_size: tuple[int, int]) -> np.ndarray:
    """Bilinear interpolation to ``out_size`` with half-pixel centres (``align_corners=False``)."""
    x = _check(x).astype(np.float32, copy=False)
    oh, ow = out_size
    y0, y1, ly = _source_index(oh, x.shape[1])
    x0, x1, lx = _source_index(ow, x.shape[2])
    rows = x[:, y0, :] * (1 - ly)[None, :, None] + x[:, y1, :] * ly[None, :, None]
    return rows[:, :, x0] * (1 - lx)[None, None, :] + rows[:, :, x1] * lx[None, None, :]


def conv_transpose(x: np.ndarray, weight: np.ndarray, stride: int, padding: int = 0,
                   bias: np.ndarray | None = None) -> np.ndarray:
    """``conv_transpose2d``: every input value stamps its ``(C_out, k, k)`` kernel slice at
    ``stride`` times its position, minus ``padding``; ``weight`` is ``(C_in, C_out, k, k)``.
    Output side ``(n - 1) * stride - 2 * padding + k``."""
    x = _check(x).astype(np.float32, copy=False)
    w = np.asarray(weight, np.float32)
    cin, h, wd = x.shape
    if w.ndim != 4 or w.shape[0] != cin:
        raise ValueError(f"weight {w.shape} does not take {cin} input channels")
    cout, kh, kw = w.shape[1:]
    full = np.zeros((cout, (h - 1) * stride + kh, (wd - 1) * stride + kw), np.float32)
    flat = x.reshape(cin, -1)
    for ky in range(kh):
        for kx in range(kw):
            stamp = (w[:, :, ky, kx].T @ flat).reshape(cout, h, wd)
            full[:, ky:ky + (h - 1) * stride + 1:stride, kx:kx + (wd - 1) * stride + 1:stride] += stamp
    out = full[:, padding:full.shape[1] - padding, padding:full.shape[2] - padding]
    if bias is not None:
        out = out + np.asarray(bias, np.float32)[:, None, None]
    return np.ascontiguousarray(out)


def bilinear_kernel(channels: int, k: int) -> np.ndarray:
    """The FCN paper's ``upsample_filt``: a separable tent per channel, zero between channels;
    a transposed conv with it (stride k // 2) is a bilinear upsampler. ``(C, C, k, k)``."""
    factor = (k + 1) // 2
    center = factor - 1 if k % 2 == 1 else factor - 0.5
    t = 1 - np.abs(np.arange(k, dtype=np.float64) - center) / factor
    out = np.zeros((channels, channels, k, k), np.float32)
    out[np.arange(channels), np.arange(channels)] = np.outer(t, t).astype(np.float32)
    return out


def strongest_switches(indices: np.ndarray, pooled: np.ndarray) -> np.ndarray:
    """One switch per pooled cell for a map with other channels than the pool's: the switch of the
    channel whose pooled value is largest there (the strongest feature decides where the class
    score goes back to). ``(C_pool, h, w)`` both -> ``(h, w)``."""
    idx, val = np.asarray(indices), np.asarray(pooled)
    if idx.shape != val.shape or idx.ndim != 3:
        raise ValueError(f"switches {idx.shape} and pooled values {val.shape} must be equal (C, h, w)")
    best = np.argmax(val, axis=0)
    return np.take_along_axis(idx, best[None], axis=0)[0]


@dataclass(frozen=True)
class KernelComparison:
    """A learned transposed-conv kernel against the bilinear one it was initialised as."""

    max_abs: float  # largest |learned - bilinear| weight
    rel_l2: float  # ||learned - bilinear|| / ||bilinear||
    off_diagonal_share: float  # share of the learned kernel's energy between different classes
    diagonal_corr: float  # correlation of the per-class (diagonal) kernels with the bilinear tent


def compare_kernels(learned: np.ndarray, reference: np.ndarray) -> KernelComparison:
    """How far training moved a ``(C, C, k, k)`` upsampling kernel from ``reference``."""
    a, b = np.asarray(learned, np.float64), np.asarray(reference, np.float64)
    if a.shape != b.shape or a.ndim != 4 or a.shape[0] != a.shape[1]:
        raise ValueError(f"kernels {a.shape} and {b.shape} must both be (C, C, k, k)")
    c = a.shape[0]
    diag = np.zeros((c, c), bool)
    diag[np.arange(c), np.arange(c)] = True
    energy = float((a ** 2).sum())
    off = float((a[~diag] ** 2).sum()) / energy if energy > 0 else 0.0
    da, db = a[diag].ravel(), b[diag].ravel()
    corr = float(np.corrcoef(da, db)[0, 1]) if da.std() > 0 and db.std() > 0 else float("nan")
    nb = float(np.linalg.norm(b))
    return KernelComparison(float(np.abs(a - b).max()), float(np.linalg.norm(a - b)) / nb if nb else float("inf"),
                            off, corr)


@dataclass(frozen=True)
class MapComparison:
    """Two upsampled maps of the same scores: value and decision differences."""

    max_abs: float
    mean_abs: float
    rel_l2: float  # ||a - b|| / ||b||
    label_agreement: float  # share of pixels whose argmax class is the same


def compare_maps(a: np.ndarray, b: np.ndarray) -> MapComparison:
    """``a`` against the reference ``b`` (both ``(C, H, W)``)."""
    a, b = _check(a).astype(np.float64), _check(b).astype(np.float64)
    if a.shape != b.shape:
        raise ValueError(f"maps {a.shape} and {b.shape} differ in shape")
    d = np.abs(a - b)
    nb = float(np.linalg.norm(b))
    agree = float((a.argmax(0) == b.argmax(0)).mean()) if a.size else 1.0
    return MapComparison(float(d.max()) if d.size else 0.0, float(d.mean()) if d.size else 0.0,
                         float(np.linalg.norm(a - b)) / nb if nb else float("inf"), agree)


@dataclass(frozen=True, eq=False)
class UpsamplingInputs:
    """What the FCN's one pass recorded for the Upsampling view (one image, no batch axis).

    ``scores``: the stride-32 class scores ``(C, h, w)`` (``score_fr``); ``switches``: ``(h, w)``
    flat indices into the ``pool_size`` plane, the last max-pool's switches
    (:func:`strongest_switches`); ``weight`` ``(C, C, k, k)``, ``stride``, ``padding``: the model's
    learned 2x transposed conv (``upscore2``); ``model_up``: that layer's own output in the pass.
    ``valid``: the rescaled image's ``(rh, rw)`` inside the padded model frame; ``image_size``
    ``(H, W)`` of the shown image.
    """

    scores: np.ndarray
    switches: np.ndarray
    pool_size: tuple[int, int]
    weight: np.ndarray
    stride: int
    padding: int
    model_up: np.ndarray
    valid: tuple[int, int]
    image_size: tuple[int, int]
    categories: tuple[str, ...] = ()
    layer: str = "upscore2"

    @property
    def factor(self) -> int:
        return self.stride

    def nbytes(self) -> int:
        return sum(a.nbytes for a in (self.scores, self.switches, self.weight, self.model_up))

    def upsample(self, method: str) -> np.ndarray:
        """The stride-32 scores upsampled 2x by ``method`` (one of :data:`METHODS`)."""
        f = self.factor
        size = (self.scores.shape[1] * f, self.scores.shape[2] * f)
        if method == "nearest":
            return nearest(self.scores, f)
        if method == "bed of nails":
            return bed_of_nails(self.scores, f)
        if method == "max-unpooling":
            sw = np.broadcast_to(self.switches, self.scores.shape)
            if tuple(self.pool_size) != size:
                raise ValueError(f"the pool's plane {self.pool_size} is not the 2x size {size}")
            return max_unpool(self.scores, sw, size)
        if method == "bilinear":
            return bilinear(self.scores, size)
        if method == METHODS[4]:
            return conv_transpose(self.scores, self.weight, self.stride, self.padding)
        raise ValueError(f"unknown upsampling {method!r}; choose one of {', '.join(METHODS)}")

    def all(self) -> dict[str, np.ndarray]:
        return {m: self.upsample(m) for m in METHODS}

    def kernel_vs_bilinear(self) -> KernelComparison:
        return compare_kernels(self.weight, bilinear_kernel(self.weight.shape[0], self.weight.shape[2]))

    def learned_vs_bilinear(self) -> tuple[MapComparison, MapComparison]:
        """The learned upsampling against (a) the bilinear-initialised transposed conv (the same
        operator at initialisation) and (b) ``interpolate(bilinear)``, on these scores."""
        learned = self.upsample(METHODS[4])
        init = conv_transpose(self.scores, bilinear_kernel(self.weight.shape[0], self.weight.shape[2]),
                              self.stride, self.padding)
        return compare_maps(learned, init), compare_maps(learned, self.upsample("bilinear"))
