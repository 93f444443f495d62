"""Receptive fields: the theoretical one from the layers' geometry, the exact sampling taps
(sparse for dilated convolutions), and the effective one (the gradient of one unit w.r.t. the
input, Luo et al. 2016) computed in numpy from what one forward pass recorded.

Geometry (REFERENCE.md, "Receptive fields"): a layer with kernel k, stride s, padding p and
dilation d reads input positions ``o * s - p + d * t`` (t = 0..k-1) for output position o. The
theoretical field of a unit is the hull of every input position some chain of taps reaches; the
taps themselves (:func:`taps_1d`) show the holes a dilated convolution leaves.

The effective field: for a chain of convolutions (batch norm folded in), ReLUs and max-pools, the
gradient of a unit is linear given the ReLUs' on/off masks and the pools' switches, so
:class:`ChainNet` back-propagates it in numpy from those (recorded by the model's own pass). Its
support lies inside the theoretical field by construction of the windows it works in (tested
against torch autograd and against the box).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["Layer", "output_sizes", "unit_interval", "field_box", "field_size", "taps_1d", "unit_at",
           "Step", "ChainNet", "mass_side"]


@dataclass(frozen=True)
class Layer:
    """One spatial layer's geometry (a convolution or a pool; square kernels)."""

    name: str
    kernel: int
    stride: int = 1
    padding: int = 0
    dilation: int = 1

    @property
    def effective_kernel(self) -> int:
        """``d (k - 1) + 1``: the span one application of the kernel covers."""
        return self.dilation * (self.kernel - 1) + 1


def output_sizes(layers: list[Layer] | tuple[Layer, ...], n: int) -> list[int]:
    """The side after each layer for an input side ``n``."""
    out = []
    for ly in layers:
        n = (n + 2 * ly.padding - ly.effective_kernel) // ly.stride + 1
        out.append(n)
    return out


def unit_interval(layers: list[Layer] | tuple[Layer, ...], i: int) -> tuple[int, int]:
    """Input positions ``[lo, hi]`` (inclusive, may leave the image: padding) that unit ``i`` of
    the last layer can see: the affine back-map of each layer's first and last taps."""
    lo = hi = i
    for ly in reversed(layers):
        lo = lo * ly.stride - ly.padding
        hi = hi * ly.stride - ly.padding + ly.dilation * (ly.kernel - 1)
    return lo, hi


def field_size(layers: list[Layer] | tuple[Layer, ...]) -> int:
    """The theoretical receptive field's side: ``1 + sum((k_eff - 1) * prod(previous strides))``."""
    r, jump = 1, 1
    for ly in layers:
        r += (ly.effective_kernel - 1) * jump
        jump *= ly.stride
    return r


def field_box(layers: list[Layer] | tuple[Layer, ...], row: int, col: int) -> tuple[int, int, int, int]:
    """``(y0, y1, x0, x1)`` inclusive input box of unit ``(row, col)`` of the last layer."""
    y0, y1 = unit_interval(layers, row)
    x0, x1 = unit_interval(layers, col)
    return y0, y1, x0, x1


def taps_1d(layers: list[Layer] | tuple[Layer, ...], i: int) -> np.ndarray:
    """Every input position some chain of kernel taps connects to unit ``i`` (sorted, unique;
    padding positions included). Dense for ordinary convs, with holes for dilated ones."""
    pos = np.array([i], np.int64)
    for ly in reversed(layers):
        t = np.arange(ly.kernel, dtype=np.int64) * ly.dilation
        pos = np.unique((pos * ly.stride - ly.padding)[:, None] + t[None, :])
    return pos


def unit_at(layers: list[Layer] | tuple[Layer, ...], n: int, p: float) -> int:
    """The unit of the last layer (input side ``n``) whose field is centred nearest to input
    coordinate ``p`` (pixel centres at integer + 0.5)."""
    size = output_sizes(layers, n)[-1] if layers else n
    lo0, hi0 = unit_interval(layers, 0)
    jump = int(np.prod([ly.stride for ly in layers])) if layers else 1
    centre0 = (lo0 + hi0) / 2 + 0.5
    return int(np.clip(round((p - centre0) / jump), 0, max(size - 1, 0)))


@dataclass(frozen=True, eq=False)
class Step:
    """One recorded operation of a chain: ``conv`` (``weight`` ``(C_out, C_in, k, k)`` with batch
    norm folded in), ``relu`` (``mask`` of the output's positive entries) or ``pool`` (``indices``
    into each input channel's plane, as ``max_pool2d(return_indices=True)``, and ``in_size``)."""

    kind: str
    layer: Layer | None = None
    weight: np.ndarray | None = None
    mask: np.ndarray | None = None
    indices: np.ndarray | None = None
    in_size: tuple[int, int] = (0, 0)


@dataclass(eq=False)
class ChainNet:
    """A chain of recorded steps from the input (``input_shape`` ``(C, H, W)``) and the named
    units one can click: ``units[name] = (index of the step whose output it is, argmax channel
    map of that output)``."""

    input_shape: tuple[int, int, int]
    steps: list[Step]
    units: dict[str, tuple[int, np.ndarray]] = field(default_factory=dict)

    def nbytes(self) -> int:
        n = 0
        for s in self.steps:
            for a in (s.weight, s.mask, s.indices):
                n += 0 if a is None else a.nbytes
        return n + sum(a.nbytes for _, a in self.units.values())

    def layers_upto(self, name: str) -> list[Layer]:
        """The geometry of every spatial step up to and including unit ``name``."""
        end = self.units[name][0]
        return [s.layer for s in self.steps[:end + 1] if s.layer is not None]

    def unit_grid(self, name: str) -> tuple[int, int]:
        return tuple(self.units[name][1].shape)  # type: ignore[return-value]

    def pick(self, name: str, x: float, y: float) -> tuple[int, int, int]:
        """``(channel, row, col)``: the unit of layer ``name`` centred nearest to input point
        ``(x, y)``, on its strongest channel there."""
        layers = self.layers_upto(name)
        _, h, w = self.input_shape
        row, col = unit_at(layers, h, y), unit_at(layers, w, x)
        amap = self.units[name][1]
        row, col = min(row, amap.shape[0] - 1), min(col, amap.shape[1] - 1)
        return int(amap[row, col]), row, col

    def gradient(self, name: str, channel: int, row: int, col: int) -> tuple[np.ndarray, tuple[int, int]]:
        """d unit / d input over a window: ``(grad (C_in, h, w), (y0, x0))`` -- the window's
        top-left in the input; everything outside it is exactly zero."""
        end = self.units[name][0]
        g = np.zeros((1, 1, 1), np.float32)
        g[0, 0, 0] = 1.0
        chans: np.ndarray | None = np.array([channel])  # which channels g holds (None: all)
        y0, x0 = row, col
        for s in reversed(self.steps[:end + 1]):
            if s.kind == "relu":
                m = s.mask[:, y0:y0 + g.shape[1], x0:x0 + g.shape[2]]
                g = g * (m if chans is None else m[chans])
            elif s.kind == "pool":
                g, y0, x0, chans = _pool_back(s, g, y0, x0, chans)
            elif s.kind == "conv":
                g, y0, x0 = _conv_back(s, g, y0, x0, chans, self._taps_first(s))
                chans = None
            else:
                raise ValueError(f"unknown step {s.kind!r}")
        return g, (y0, x0)

    def _taps_first(self, s: Step) -> np.ndarray:
        """``s.weight`` as ``(k, k, C_in, C_out)``, made once per step (the backward's layout)."""
        cache = self.__dict__.setdefault("_wt", {})
        if id(s) not in cache:
            cache[id(s)] = np.ascontiguousarray(s.weight.transpose(2, 3, 1, 0))
        return cache[id(s)]

    def effective_field(self, name: str, channel: int, row: int, col: int) -> tuple[np.ndarray, tuple[int, int]]:
        """``(|gradient| summed over the input channels, (y0, x0))``: the effective receptive field."""
        g, org = self.gradient(name, channel, row, col)
        return np.abs(g).sum(0), org


def mass_side(erf: np.ndarray, origin: tuple[int, int], centre: tuple[float, float], share: float = 0.9) -> int:
    """The side of the smallest square centred on ``centre`` (input ``(y, x)``) that holds ``share``
    of the effective field's mass (``erf`` placed at ``origin``): how wide the unit really looks,
    to set beside the theoretical side (Luo et al.: much smaller). 0 for an empty field."""
    e = np.asarray(erf, np.float64)
    total = float(e.sum())
    if total <= 0:
        return 0
    ys = np.arange(e.shape[0]) + origin[0] - centre[0]
    xs = np.arange(e.shape[1]) + origin[1] - centre[1]
    dist = np.maximum(np.abs(ys)[:, None], np.abs(xs)[None, :]).ravel()
    order = np.argsort(dist, kind="stable")
    cum = np.cumsum(e.ravel()[order])
    k = int(np.searchsorted(cum, share * total * (1 - 1e-12)))
    return int(round(2 * dist[order][min(k, len(order) - 1)])) + 1


#: OpenBLAS runs a product on one thread below m * n * k = 4 * 65536: on a busy 2-core machine its
#: threads made one 48 x 48 x 2304 product take 60 ms instead of 1 ms (any other BLAS: same result)
_ONE_THREAD_MNK = 250_000


def _matmul_one_thread(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a @ b`` in column blocks small enough for the BLAS to stay on one thread."""
    m, k = a.shape
    n = b.shape[1]
    step = max(1, _ONE_THREAD_MNK // max(m * k, 1))
    if step >= n:
        return a @ b
    out = np.empty((m, n), np.result_type(a, b))
    for j in range(0, n, step):
        np.matmul(a, b[:, j:j + step], out=out[:, j:j + step])
    return out


def _conv_back(s: Step, g: np.ndarray, y0: int, x0: int, chans: np.ndarray | None,
               wt: np.ndarray) -> tuple[np.ndarray, int, int]:
    """The gradient through a convolution, over the window its taps reach (clipped to the map);
    ``wt`` is the weight as ``(k, k, C_in, C_out)``."""
    ly = s.layer
    if chans is not None:
        wt = wt[..., chans]
    cin = wt.shape[2]
    _, h, wd = g.shape
    st, d, k, p = ly.stride, ly.dilation, ly.kernel, ly.padding
    full = np.zeros((cin, (h - 1) * st + d * (k - 1) + 1, (wd - 1) * st + d * (k - 1) + 1), np.float32)
    flat = g.reshape(g.shape[0], -1)
    for ky in range(k):
        for kx in range(k):
            stamp = _matmul_one_thread(wt[ky, kx], flat).reshape(cin, h, wd)
            full[:, d * ky:d * ky + (h - 1) * st + 1:st, d * kx:d * kx + (wd - 1) * st + 1:st] += stamp
    ny0, nx0 = y0 * st - p, x0 * st - p
    hin, win = s.in_size
    a, b = max(0, -ny0), max(0, -nx0)
    full = full[:, a:max(a, hin - ny0), b:max(b, win - nx0)]
    return full, ny0 + a, nx0 + b


def _pool_back(s: Step, g: np.ndarray, y0: int, x0: int,
               chans: np.ndarray | None) -> tuple[np.ndarray, int, int, np.ndarray | None]:
    """The gradient through a max-pool: each value goes to its switch (as torch's backward)."""
    ly = s.layer
    idx = s.indices[:, y0:y0 + g.shape[1], x0:x0 + g.shape[2]]
    if chans is not None:
        idx = idx[chans]
    hin, win = s.in_size
    ny0 = max(0, y0 * ly.stride - ly.padding)
    nx0 = max(0, x0 * ly.stride - ly.padding)
    ny1 = min(hin, (y0 + g.shape[1] - 1) * ly.stride - ly.padding + ly.effective_kernel)
    nx1 = min(win, (x0 + g.shape[2] - 1) * ly.stride - ly.padding + ly.effective_kernel)
    out = np.zeros((g.shape[0], ny1 - ny0, nx1 - nx0), np.float32)
    yy, xx = idx // win - ny0, idx % win - nx0
    c = np.broadcast_to(np.arange(g.shape[0])[:, None, None], idx.shape)
    if ly.effective_kernel <= ly.stride:  # windows do not overlap: every switch is a distinct cell
        out[c, yy, xx] = g
    else:
        np.add.at(out, (c.ravel(), yy.ravel(), xx.ravel()), g.ravel())
    return out, ny0, nx0, chans

