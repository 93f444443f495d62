"""The training loop behind ``segviewer train``: seeded, resumable, interruptible.

Per step it logs the loss parts; every ``ckpt_every`` steps (and at the end, or on a clean stop)
it writes ``last.pt`` (resume state) and ``model.pt`` (float16 weights that ship), both atomically,
then ``loss.csv`` and ``loss.png``. The first Ctrl-C asks for a clean stop after the current step
(checkpoint written); a second one interrupts at once and leaves the last checkpoint on disk.
"""

from __future__ import annotations

import csv
import io
import json
import math
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from segviewer.core.errors import CheckpointMismatchError
from segviewer.core.fileio import ensure_dir, write_text_atomic
from segviewer.training import checkpoint
from segviewer.training.plot import write_loss_plot
from segviewer.training.tasks import Task


@dataclass
class LoopConfig:
    steps: int
    batch_size: int
    lr: float
    weight_decay: float = 1e-4
    warmup: int = 100
    seed: int = 0
    device: str = "cpu"
    ckpt_every: int = 100
    max_minutes: float | None = None
    grad_clip: float = 10.0
    extra: dict[str, Any] = field(default_factory=dict)  # recorded in the checkpoint (data, command)


def lr_at(step: int, cfg: LoopConfig, time_frac: float = 0.0) -> float:
    """Linear warm-up, then cosine decay to 2 % of the peak.

    With a time budget (``max_minutes``) the decay follows whichever is further along, steps or
    wall-clock time, so a run on a busy shared CPU still ends its schedule (not mid-peak) in time.
    """
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    t = max((step - cfg.warmup) / max(1, cfg.steps - cfg.warmup), time_frac)
    return cfg.lr * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * min(t, 1.0))))


class Progress:
    """A compact one-line progress bar on stderr (``\\r``-updated on a terminal, a line every
    ``every_s`` seconds in a log file)."""

    def __init__(self, total: int, stream: Any = None, every_s: float = 1.0, start: int = 0) -> None:
        self.total, self.stream, self.start = total, stream or sys.stderr, start
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.every_s = every_s if self.tty else max(every_s, 15.0)
        self.t0 = time.perf_counter()
        self.last = -1e9

    def update(self, step: int, loss: float, force: bool = False) -> None:
        now = time.perf_counter()
        if not force and now - self.last < self.every_s:
            return
        self.last = now
        done = step / max(self.total, 1)
        el = now - self.t0
        rate = (step - self.start) / el if el > 0 else 0.0  # steps per second in this session
        eta = (self.total - step) / rate if rate > 0 else float("nan")
        bar = "#" * int(done * 20)
        line = (f"[{bar:<20}] {step}/{self.total} loss {loss:.4f} {el / 60:.1f} min"
                + (f" eta {eta / 60:.1f} min" if math.isfinite(eta) else ""))
        self.stream.write(("\r" + line) if self.tty else line + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()


class Trainer:
    """Runs ``task`` over batches from ``next_batch(step)``; ``on_step`` is a test hook."""

    def __init__(self, task: Task, cfg: LoopConfig, out: Path,
                 next_batch: Callable[[int], list], val_samples: list | None = None,
                 on_step: Callable[[Trainer, int], None] | None = None) -> None:
        self.task, self.cfg, self.out = task, cfg, Path(out)
        self.next_batch, self.val_samples, self.on_step = next_batch, val_samples or [], on_step
        torch.manual_seed(cfg.seed)
        np.random.seed(cfg.seed)
        self.model = task.build().to(cfg.device)
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.step = 0
        self.log: list[dict[str, float]] = []
        self.stop_requested = False
        self.metrics: dict[str, float] = {}

    # -------------------------------------------------------------------------- state
    def resume(self) -> bool:
        path = self.out / "last.pt"
        if not path.is_file():
            return False
        ck = checkpoint.load(path)
        checkpoint.load_weights(self.model, ck["state_dict"], path.name)
        self.opt.load_state_dict(ck["optimizer"])
        self.step = int(ck["step"])
        self.log = list(ck.get("log", []))
        return True

    def init_from(self, path: Path) -> None:
        """Fine-tuning: this run's weights start from another checkpoint of the same architecture
        (its optimizer state and step are not taken; the schedule starts afresh)."""
        ck = checkpoint.load(Path(path))
        if ck.get("model") not in (None, self.task.name):
            raise CheckpointMismatchError(f"{Path(path).name} holds a {ck.get('model')!r} model, not {self.task.name!r}")
        cats = ck.get("categories")
        if cats is not None and list(cats) != list(self.task.categories):
            raise CheckpointMismatchError(
                f"{Path(path).name} was trained on the classes {list(cats)}, this run has {list(self.task.categories)}; "
                "fine-tuning would mislabel them")
        checkpoint.load_weights(self.model, ck["state_dict"], Path(path).name)
        self.cfg.extra["init"] = str(path)

    def payload(self, full: bool) -> dict[str, Any]:
        sd = self.model.state_dict()
        p = {"format": checkpoint.FORMAT, "model": self.task.name, "categories": list(self.task.categories),
             "config": dict(self.task.config), "step": self.step, "seed": self.cfg.seed,
             "metrics": dict(self.metrics), "train": dict(self.cfg.extra)}
        if full:
            p.update(state_dict={k: v.detach().cpu().clone() for k, v in sd.items()},
                     optimizer=self.opt.state_dict(), log=list(self.log))
        else:
            p["state_dict"] = checkpoint.half_state(sd)
        return p

    def save(self) -> None:
        checkpoint.save(self.out / "last.pt", self.payload(full=True))
        checkpoint.save(self.out / "model.pt", self.payload(full=False))
        self.write_log()

    def write_log(self) -> None:
        if not self.log:
            return
        keys = list(dict.fromkeys(k for row in self.log for k in row))
        buf = io.StringIO()
        w = csv.DictWriter(buf, keys, lineterminator="\n")
        w.writeheader()
        w.writerows(self.log)
        write_text_atomic(self.out / "loss.csv", buf.getvalue())
        write_loss_plot(self.out / "loss.png", np.array([r["step"] for r in self.log]),
                        np.array([r["loss"] for r in self.log]), f"{self.task.name} training loss")

    # -------------------------------------------------------------------------- loop
    def _sigint(self, signum: int, frame: Any) -> None:
        if self.stop_requested:
            raise KeyboardInterrupt
        self.stop_requested = True
        sys.stderr.write("\nstopping after this step (Ctrl-C again to abort at once)\n")

    def run(self) -> str:
        """Train to ``cfg.steps``; returns "done", "stopped" (clean stop) or "interrupted"."""
        ensure_dir(self.out)
        cfg = self.cfg
        prog = Progress(cfg.steps, start=self.step)
        t_start = time.perf_counter()
        old = None
        try:
            old = signal.signal(signal.SIGINT, self._sigint)
        except ValueError:  # not the main thread: Ctrl-C arrives as KeyboardInterrupt
            old = None
        status = "done"
        try:
            self.model.train()
            budget = None if cfg.max_minutes is None else 60 * cfg.max_minutes
            t_warm = None  # the time budget's clock starts after warm-up
            while self.step < cfg.steps:
                if t_warm is None and self.step >= cfg.warmup:
                    t_warm = time.perf_counter()
                tf = 0.0
                if budget is not None and t_warm is not None:
                    spent = time.perf_counter() - t_start
                    tf = (time.perf_counter() - t_warm) / max(budget - (t_warm - t_start), 1.0)
                    if spent > budget:
                        break  # the schedule has ended: finish as "done" (evaluate, save)
                lr = lr_at(self.step, cfg, tf)
                for g in self.opt.param_groups:
                    g["lr"] = lr
                t0 = time.perf_counter()
                batch = self.next_batch(self.step)
                loss, parts = self.task.loss(self.model, batch, cfg.device)
                if not torch.isfinite(loss):
                    raise FloatingPointError(f"loss became {float(loss)} at step {self.step}")
                self.opt.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
                self.opt.step()
                self.step += 1
                self.log.append({"step": self.step, "loss": float(loss.detach()), **parts, "lr": lr,
                                 "seconds": round(time.perf_counter() - t0, 4)})
                prog.update(self.step, float(np.mean([r["loss"] for r in self.log[-20:]])))
                if self.on_step:
                    self.on_step(self, self.step)
                if self.step % cfg.ckpt_every == 0 and self.step < cfg.steps:
                    self.save()
                if self.stop_requested:
                    status = "stopped"
                    break
            prog.update(self.step, float(np.mean([r["loss"] for r in self.log[-20:]] or [0.0])), force=True)
            prog.close()
            if status == "done" and self.val_samples:
                self.model.eval()
                self.metrics = self.task.evaluate(self.model, self.val_samples, cfg.device)
                write_text_atomic(self.out / "metrics.json", json.dumps(self.metrics, indent=2))
            self.save()
        except KeyboardInterrupt:
            prog.close()
            self.write_log()  # the log so far; last.pt / model.pt stay as last written
            status = "interrupted"
        finally:
            if old is not None:
                signal.signal(signal.SIGINT, old)
        return status
