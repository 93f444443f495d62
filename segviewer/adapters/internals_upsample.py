"""The FCN's one hooked pass, opened for the Upsampling and Receptive-field views (issue #11).

:func:`fcn_stages_pass` runs ``predict_stages`` (the FCN tab's three skip stages, unchanged) with
forward hooks on the FCN's own modules, and returns the stage maps as an :class:`FCNPass` that
also carries, from that same pass:

* ``upsampling`` (:class:`~segviewer.analysis.upsampling.UpsamplingInputs`): the stride-32
  class scores (``score_fr``'s output), the last max-pool's switches (the pool re-run on its own
  input with ``return_indices``: the positions the model's pool picked), the learned ``upscore2``
  kernel and that layer's own output;
* ``receptive`` (:class:`~segviewer.analysis.receptive.ChainNet`): the encoder chain up to
  ``score_fr`` as the numpy backward needs it -- each conv's kernel with batch norm folded in,
  each ReLU's on/off mask, each pool's switches, and the strongest channel of every unit.

Nothing runs twice: the hooks read tensors the pass computes anyway (the pool's re-run on its
input is the only extra arithmetic, a few milliseconds).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from segviewer.adapters.shapes import MAX_LONG_PER_SHORT, TRAIN_SHORT_SIDE, VotePrediction
from segviewer.analysis.receptive import ChainNet, Layer, Step
from segviewer.analysis.upsampling import UpsamplingInputs, strongest_switches
from segviewer.core.timing import Timings

__all__ = ["FCNPass", "FCNHooks", "fcn_stages_pass", "model_frame", "pcv_head_layers", "PCVVotes", "pcv_votes_pass"]


class FCNPass(dict):
    """The FCN's stage maps ``{"32s", "16s", "8s"}`` (a dict, as the FCN tab always got) and, from
    the same pass, ``upsampling`` and ``receptive`` (None with ``why`` when the model has another
    layout than the bundled FCN's)."""

    def __init__(self, stages: dict[str, Any], upsampling: UpsamplingInputs | None = None,
                 receptive: ChainNet | None = None, why: str = "") -> None:
        super().__init__(stages)
        self.upsampling, self.receptive, self.why = upsampling, receptive, why

    def nbytes(self) -> int:
        from segviewer.adapters.one_pass import internals_nbytes

        extra = sum(x.nbytes() for x in (self.upsampling, self.receptive) if x is not None)
        return sum(internals_nbytes(v) for v in self.values()) + extra


def model_frame(image_size: tuple[int, int], short: int) -> tuple[int, int]:
    """``(rh, rw)``: the rescaled image inside the shapes adapters' padded frame (their
    ``_resize_short``'s size; a test keeps the two equal)."""
    h, w = image_size
    s = min(short / min(h, w), MAX_LONG_PER_SHORT * short / max(h, w))
    return max(1, round(h * s)), max(1, round(w * s))


def _np(t: Any) -> np.ndarray:
    return t.detach().float().cpu().numpy()


class FCNHooks:
    """Forward hooks on the FCN's chain (``blocks``, ``fc``, ``score_fr``) and ``upscore2``.

    Use as a context manager around one forward pass; :meth:`build` turns what they caught into
    the numpy captures."""

    def __init__(self, model: Any) -> None:
        from torch import nn

        for name in ("blocks", "fc", "score_fr", "upscore2"):
            if not hasattr(model, name):
                raise ValueError(f"not the bundled FCN's layout (no {name})")
        self.model = model
        self.chain: list[tuple[str, Any]] = []  # (unit name or "", module) in forward order
        for b, block in enumerate(model.blocks):
            j = 0
            for m in _leaves(block):
                if isinstance(m, nn.Conv2d):
                    j += 1
                    self.chain.append((f"conv{b + 1}_{j}", m))
                elif isinstance(m, nn.MaxPool2d):
                    self.chain.append((f"pool{b + 1}", m))
                else:
                    self.chain.append(("", m))
        k = 5
        for m in _leaves(model.fc):
            if isinstance(m, nn.Conv2d):
                k += 1
                self.chain.append((f"fc{k}", m))
            else:
                self.chain.append(("", m))
        self.chain.append(("score_fr", model.score_fr))
        self.got: dict[int, dict[str, Any]] = {}
        self._handles: list[Any] = []

    def __enter__(self) -> FCNHooks:
        from torch import nn

        self.got.clear()
        for _, m in self.chain:
            if isinstance(m, nn.Conv2d):
                self._handles.append(m.register_forward_pre_hook(self._conv_in))
            if isinstance(m, (nn.ReLU, nn.MaxPool2d, nn.Conv2d)):
                self._handles.append(m.register_forward_hook(self._out))
        self._handles.append(self.model.upscore2.register_forward_hook(self._up))
        return self

    def __exit__(self, *exc: object) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()

    # hooks: only small numpy copies of what the pass computed
    def _conv_in(self, m: Any, args: tuple) -> None:
        self.got.setdefault(id(m), {})["in_size"] = tuple(args[0].shape[-2:])

    def _out(self, m: Any, args: tuple, out: Any) -> None:
        import torch.nn.functional as F
        from torch import nn

        d = self.got.setdefault(id(m), {})
        o = out[0]
        d["argmax"] = o.argmax(0).cpu().numpy().astype(np.int16)
        if isinstance(m, nn.ReLU):
            d["mask"] = (o > 0).cpu().numpy()
        elif isinstance(m, nn.MaxPool2d):
            x = args[0]
            pooled, idx = F.max_pool2d(x, m.kernel_size, m.stride, m.padding, m.dilation,
                                       ceil_mode=m.ceil_mode, return_indices=True)
            d["indices"] = idx[0].cpu().numpy().astype(np.int32)
            d["in_size"] = tuple(x.shape[-2:])
            d["same"] = bool((pooled == out).all())
            d["switches"] = strongest_switches(d["indices"], _np(out[0]))
        elif m is self.model.score_fr:
            d["scores"] = _np(o)

    def _up(self, m: Any, args: tuple, out: Any) -> None:
        self.got["upscore2"] = {"out": _np(out[0])}

    def build(self, image_size: tuple[int, int], valid: tuple[int, int],
              categories: tuple[str, ...] = ()) -> tuple[UpsamplingInputs, ChainNet]:
        from torch import nn

        steps: list[Step] = []
        units: dict[str, tuple[int, np.ndarray]] = {}
        last_pool: dict[str, Any] | None = None
        pending = ""  # a conv's name, given to the unit after its ReLU
        bn_scale: dict[int, np.ndarray] = {}
        leaves = [m for _, m in self.chain]
        for i, m in enumerate(leaves):  # batch norm right after a conv: fold its scale in
            if isinstance(m, nn.BatchNorm2d) and i and isinstance(leaves[i - 1], nn.Conv2d):
                bn_scale[i - 1] = _np(m.weight / (m.running_var + m.eps).sqrt())
        input_shape: tuple[int, int, int] | None = None
        for i, (name, m) in enumerate(self.chain):
            d = self.got.get(id(m), {})
            if isinstance(m, nn.Conv2d):
                if "in_size" not in d:
                    raise ValueError(f"{name} did not run")
                if input_shape is None:
                    input_shape = (m.in_channels, *d["in_size"])
                w = _np(m.weight)
                if i in bn_scale:
                    w = w * bn_scale[i][:, None, None, None]
                ly = Layer(name, m.kernel_size[0], m.stride[0], m.padding[0], m.dilation[0])
                steps.append(Step("conv", ly, weight=np.ascontiguousarray(w, np.float32), in_size=d["in_size"]))
                pending = name
                if m is self.model.score_fr:
                    units[name] = (len(steps) - 1, d["argmax"])
            elif isinstance(m, nn.ReLU):
                steps.append(Step("relu", mask=d["mask"]))
                units[pending] = (len(steps) - 1, d["argmax"])
            elif isinstance(m, nn.MaxPool2d):
                k, s = _int(m.kernel_size), _int(m.stride)
                steps.append(Step("pool", Layer(name, k, s, _int(m.padding), _int(m.dilation)),
                                  indices=d["indices"], in_size=d["in_size"]))
                units[name] = (len(steps) - 1, d["argmax"])
                last_pool = d
            elif isinstance(m, (nn.BatchNorm2d, nn.Dropout, nn.Dropout2d)):
                continue  # folded into the conv before it; identity in eval
            else:
                raise ValueError(f"unexpected layer {type(m).__name__} in the FCN's chain")
        if last_pool is None or input_shape is None or "upscore2" not in self.got:
            raise ValueError("the pass did not reach the FCN's last pool, score_fr and upscore2")
        if not last_pool["same"]:
            raise ValueError("re-running the last pool did not reproduce its output")
        up = self.model.upscore2
        h, w = last_pool["in_size"]
        ups = UpsamplingInputs(self.got[id(self.model.score_fr)]["scores"], last_pool["switches"], (h, w),
                               np.ascontiguousarray(_np(up.weight)), _int(up.stride), _int(up.padding),
                               self.got["upscore2"]["out"], valid, image_size, tuple(categories))
        return ups, ChainNet(input_shape, steps, units)


def _int(v: Any) -> int:
    return int(v[0] if isinstance(v, (tuple, list)) else v)


def _leaves(m: Any) -> list[Any]:
    kids = list(m.children())
    return [m] if not kids else [leaf for k in kids for leaf in _leaves(k)]


def fcn_stages_pass(adapter: Any, image: np.ndarray, params: Any, tm: Timings) -> FCNPass:
    """``adapter.predict_stages`` with :class:`FCNHooks` on: one pass, stages plus captures."""
    module = getattr(adapter, "module", None)  # a plumbing fake (or a foreign FCN) may hold none
    try:
        if module is None:
            raise ValueError("no torch module to hook, so no upsampling or receptive-field captures")
        hooks: FCNHooks | None = FCNHooks(module)
    except ValueError as err:
        hooks, why = None, f"{getattr(adapter.card, 'id', 'the FCN')}: {err}"
    if hooks is None:
        return FCNPass(adapter.predict_stages(image, params, tm), why=why)
    with hooks:
        stages = adapter.predict_stages(image, params, tm)
    h, w = image.shape[:2]
    short = int(dict(params.extra).get("min_size", TRAIN_SHORT_SIDE))
    try:
        with tm.stage("internals"):
            ups, chain = hooks.build((h, w), model_frame((h, w), short), tuple(adapter.card.categories))
    except ValueError as err:
        return FCNPass(stages, why=f"{adapter.card.id}: {err}")
    return FCNPass(stages, ups, chain)


def pcv_head_layers(module: Any) -> tuple[Layer, ...]:
    """The PCV net's voting head as a layer list (its dilated convolutions), on its stride-4 input."""
    from torch import nn

    head = getattr(module, "vote_head", None)
    if head is None:
        return ()
    return tuple(Layer(f"vote_head.{i}", m.kernel_size[0], m.stride[0], m.padding[0], m.dilation[0])
                 for i, m in enumerate(head) if isinstance(m, nn.Conv2d))



@dataclass(frozen=True, eq=False)
class PCVVotes(VotePrediction):
    """The PCV net's votes plus its voting head's geometry: ``head_layers`` on the feature map of
    stride ``stride`` (the dilated convolutions whose taps the Receptive-field view draws)."""

    head_layers: tuple[Layer, ...] = ()
    stride: int = 4

    def nbytes(self) -> int:
        from segviewer.adapters.one_pass import internals_nbytes

        return int(self.votes.nbytes) + internals_nbytes(self.semantic)


def pcv_votes_pass(adapter: Any, image: np.ndarray, params: Any, tm: Timings) -> VotePrediction:
    """``adapter.predict_votes`` (one pass) as a :class:`PCVVotes`, which also names the head's layers."""
    vp = adapter.predict_votes(image, params, tm)
    if type(vp) is not VotePrediction:
        return vp
    return PCVVotes(**{f.name: getattr(vp, f.name) for f in fields(vp)},
                    head_layers=pcv_head_layers(adapter.module), stride=int(getattr(adapter.module, "vote_stride", 4)))
