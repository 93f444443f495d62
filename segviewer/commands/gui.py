"""``segviewer [PATHS...]``: open the explorer window (the command line's no-verb invocation)."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="*", type=Path, metavar="PATH",
                        help="images or folders to open (default: the first sample scene)")
    parser.add_argument("--model", action="append", default=[], metavar="ID",
                        help="model to run on every image; repeat for several (see `segviewer models`)")
    parser.add_argument("--weights", type=Path, metavar="FILE",
                        help="checkpoint for the first --model instead of its default weights")
    parser.add_argument("--device", metavar="D", help="cpu, cuda, cuda:1, mps or auto (default: last used)")
    parser.add_argument("--no-default", action="store_true",
                        help="open no sample scene and run no model unless asked")


NO_DISPLAY = ("no display to open the window on (neither DISPLAY nor WAYLAND_DISPLAY is set). "
              "Connect a display (or ssh -X / a VNC session), or set QT_QPA_PLATFORM=offscreen to run "
              "the window without one, or use the headless commands: segviewer predict, eval, models, "
              "synth, train (segviewer VERB --help).")


def _local_x_display_unreachable(display: str) -> bool:
    """True when ``display`` names a local X server (``:N``, ``unix:N``) that nobody listens on.

    Qt aborts on such a display too (exit 134, blaming libxcb-cursor0), so it is checked here the
    way Xlib connects: the socket ``/tmp/.X11-unix/XN``, filesystem or abstract. Remote displays
    (``host:N``, as ssh -X sets) are not probed."""
    import re
    import socket

    m = re.fullmatch(r"(unix)?:(\d+)(\.\d+)?", display.strip())
    if not m:
        return False
    path = f"/tmp/.X11-unix/X{m.group(2)}"
    for address in (path, "\0" + path):
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(1.0)
            try:
                sock.connect(address)
                return False
            except OSError:
                continue
    return True


def display_problem(environ: Mapping[str, str] | None = None, platform: str | None = None) -> str | None:
    """Why the window cannot open here, or None. On Linux without DISPLAY, WAYLAND_DISPLAY or an
    explicit QT_QPA_PLATFORM, Qt would try xcb, fail and abort the process (exit 134) with a
    message blaming libxcb-cursor0 even when it is installed; say what to do instead."""
    env = os.environ if environ is None else environ
    platform = sys.platform if platform is None else platform
    if not platform.startswith("linux"):
        return None
    if any(env.get(k) for k in ("WAYLAND_DISPLAY", "QT_QPA_PLATFORM")):
        return None
    display = env.get("DISPLAY")
    if not display:
        return NO_DISPLAY
    if _local_x_display_unreachable(display):
        return (f"no X server answers on DISPLAY={display}. " + NO_DISPLAY.split(". ", 1)[1])
    return None


def run(args: argparse.Namespace) -> int:
    """Start the Qt application; imports Qt only here so the headless verbs never load it."""
    from segviewer.core.errors import SegviewerError

    problem = display_problem()
    if problem:
        raise SegviewerError(problem)
    if args.weights is not None and not args.weights.is_file():
        raise SegviewerError(f"weights file {args.weights} does not exist.")
    for p in args.paths:
        if not p.exists():
            raise SegviewerError(f"{p} does not exist.")
    from segviewer.ui.app import run_app

    return run_app(args.paths, args.model, args.weights, args.device, args.no_default)
