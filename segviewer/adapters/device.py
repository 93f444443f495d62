"""Which compute device a model runs on: CUDA if present, else Apple's MPS, else the CPU.

torch is imported inside the functions, so asking costs nothing until a model is about to load.
"""

from __future__ import annotations

from segviewer.core.errors import SegviewerError

__all__ = ["available_devices", "resolve_device"]


def _mps_available() -> bool:
    import torch

    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def available_devices() -> list[str]:
    """Devices this machine can run on, best first, e.g. ``["cuda", "cpu"]``.

    Several GPUs are listed as ``cuda:0``, ``cuda:1``, ... after the plain ``cuda`` (= the current one).
    """
    import torch

    out: list[str] = []
    if torch.cuda.is_available():
        out.append("cuda")
        n = torch.cuda.device_count()
        if n > 1:
            out.extend(f"cuda:{i}" for i in range(n))
    if _mps_available():
        out.append("mps")
    out.append("cpu")
    return out


def resolve_device(pref: str | None) -> str:
    """Turn a preference (``None``/``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"``) into a device.

    ``None``/``"auto"`` picks the best available; an explicit choice that this machine cannot honour
    raises :class:`SegviewerError` rather than silently running somewhere slower.
    """
    choice = (pref or "auto").strip().lower()
    if choice == "auto":
        return available_devices()[0]
    if choice == "cpu":
        return "cpu"
    kind, _, index = choice.partition(":")
    if kind == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise SegviewerError(f"device {pref!r} was asked for but CUDA is not available here; use --device cpu or auto")
        if index and (not index.isdigit() or int(index) >= torch.cuda.device_count()):
            raise SegviewerError(
                f"device {pref!r} does not exist; this machine has {torch.cuda.device_count()} CUDA device(s)"
            )
        return choice
    if kind == "mps" and not index:
        if not _mps_available():
            raise SegviewerError(f"device {pref!r} was asked for but Apple MPS is not available here; use --device cpu or auto")
        return "mps"
    raise SegviewerError(f"unknown device {pref!r}; choose one of auto, {', '.join(available_devices())}")
