"""``--engine ray``: what ``predict`` and ``eval`` share to run on Ray (connect, size the actor pool,
map a function over items with Ray Data, report progress).

Ray is imported only here and only when ``--engine ray`` is given; without it installed the run
stops with one line naming the extra (``pip install 'segviewer[ray]'``). Without ``--address``
(or ``RAY_ADDRESS``) a local Ray is started in this process; with one, the cluster is used.

Resources: one actor holds one model. With GPUs in the cluster each actor takes
``--actor-gpus`` (default 1) of one; otherwise ``--actor-cpus`` (default 1) CPUs. The pool has
``--actors`` actors (default: as many as fit, leaving one CPU for Ray Data's own tasks: an actor
pool that takes every CPU starves the tasks that feed it and the run hangs).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from segviewer.core.errors import SegviewerError

__all__ = ["add_arguments", "import_ray", "RaySession", "Pool", "pool_for", "Progress"]

MISSING = ("--engine ray needs Ray, which is not installed: pip install 'segviewer[ray]' "
           "(or pip install 'ray[data]')")


def add_arguments(p: argparse.ArgumentParser, what: str) -> None:
    g = p.add_argument_group("engine")
    g.add_argument("--engine", choices=("single", "ray"), default="single",
                   help=f"single: {what} in this process (default); ray: on Ray Data, a local Ray started "
                        "here, or the cluster at --address (pip install 'segviewer[ray]')")
    g.add_argument("--address", default=None,
                   help="ray: the cluster's address (ray://HOST:10001 or HOST:6379; default $RAY_ADDRESS, "
                        "else a local Ray)")
    g.add_argument("--actors", type=int, default=None,
                   help="ray: actors in the pool (default: as many as the cluster's GPUs or CPUs fit)")
    g.add_argument("--actor-cpus", type=float, default=None,
                   help="ray: CPUs per actor (default 1; fractions share a core)")
    g.add_argument("--actor-gpus", type=float, default=None,
                   help="ray: GPUs per actor (default 1 when the cluster has GPUs, else 0)")
    g.add_argument("--batch-size", type=int, default=None,
                   help="ray: images per batch handed to an actor, and per result shard (default 8)")


def check_arguments(args: argparse.Namespace) -> None:
    """Ray options only with ``--engine ray``, and sane ones."""
    ray_only = ("address", "actors", "actor_cpus", "actor_gpus", "batch_size")
    if getattr(args, "engine", "single") != "ray":
        given = [f"--{n.replace('_', '-')}" for n in ray_only if getattr(args, n, None) is not None]
        if given:
            raise SegviewerError(f"{', '.join(given)} only apply with --engine ray")
        return
    for name, low in (("actors", 1), ("batch_size", 1)):
        v = getattr(args, name, None)
        if v is not None and v < low:
            raise SegviewerError(f"--{name.replace('_', '-')} must be at least {low}, got {v}")
    for name in ("actor_cpus", "actor_gpus"):
        v = getattr(args, name, None)
        if v is not None and v < 0:
            raise SegviewerError(f"--{name.replace('_', '-')} must be at least 0, got {v}")


def import_ray() -> Any:
    """The ``ray`` module with Ray Data, or a SegviewerError saying how to install it."""
    try:
        import ray
        import ray.data  # noqa: F401  (the extra is ray[data]: pandas, pyarrow)
    except ImportError:
        raise SegviewerError(MISSING) from None
    return ray


class RaySession:
    """Connects on enter (a local Ray or ``address``) and shuts down on exit only what it started;
    a Ray already initialised in this process (tests, notebooks) is used as it is."""

    def __init__(self, address: str | None) -> None:
        self.address = address or os.environ.get("RAY_ADDRESS") or None
        self.started = False
        self.ray: Any = None

    def __enter__(self) -> RaySession:
        ray = self.ray = import_ray()
        if not ray.is_initialized():
            try:
                ray.init(address=self.address, include_dashboard=False, log_to_driver=True,
                         configure_logging=True, logging_level="warning")
            except (ConnectionError, RuntimeError, ValueError) as err:
                where = self.address or "a local Ray"
                raise SegviewerError(f"could not start or reach {where}: {_line(err)}") from None
            self.started = True
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = sys.stderr.isatty()
        ctx.verbose_progress = False
        return self

    def __exit__(self, *exc: object) -> None:
        if self.started:
            self.ray.shutdown()


def _line(err: BaseException) -> str:
    text = (str(err).strip().splitlines() or [""])[0]
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


class Pool:
    """The actor pool's size and each actor's resources."""

    def __init__(self, actors: int, cpus: float, gpus: float, batch_size: int) -> None:
        self.actors, self.cpus, self.gpus, self.batch_size = actors, cpus, gpus, batch_size

    def remote_args(self, ray: Any) -> dict[str, Any]:
        return {"compute": ray.data.ActorPoolStrategy(size=self.actors), "num_cpus": self.cpus,
                "num_gpus": self.gpus or None, "batch_size": self.batch_size}

    def describe(self) -> str:
        res = f"{self.gpus:g} GPU" if self.gpus else f"{self.cpus:g} CPU"
        return f"{self.actors} actor{'' if self.actors == 1 else 's'} x {res}, batches of {self.batch_size}"


def pool_for(ray: Any, args: argparse.Namespace, n_items: int, gpu_work: bool = True) -> Pool:
    """Size the pool from the cluster's resources and the options (see the module docstring);
    work that needs no GPU (``gpu_work=False``: eval's statistics) is sized by the CPUs."""
    total = ray.cluster_resources()
    cpus, gpus = float(total.get("CPU", 1.0)), float(total.get("GPU", 0.0))
    if not gpu_work:
        gpus = 0.0
    actor_gpus = args.actor_gpus if args.actor_gpus is not None and gpu_work else (1.0 if gpus else 0.0)
    actor_cpus = args.actor_cpus if args.actor_cpus is not None else (0.0 if actor_gpus else 1.0)
    if args.actors is not None:
        actors = args.actors
    elif actor_gpus:
        actors = max(1, int(gpus // actor_gpus))
    else:
        actors = max(1, int(max(cpus - 1.0, actor_cpus) // max(actor_cpus, 1e-9)))
    batch = args.batch_size or 8
    actors = max(1, min(actors, -(-n_items // batch)))  # never more actors than batches
    if actor_cpus * actors > cpus or actor_gpus * actors > gpus + 1e-9:
        raise SegviewerError(f"{actors} actors x {actor_cpus:g} CPU / {actor_gpus:g} GPU do not fit the cluster "
                             f"({cpus:g} CPUs, {gpus:g} GPUs); lower --actors, --actor-cpus or --actor-gpus")
    return Pool(actors, actor_cpus, actor_gpus, batch)


def map_rows(ray: Any, items: Sequence[dict[str, Any]], fn: type, pool: Pool,
             constructor_kwargs: dict[str, Any] | None = None) -> Iterator[Any]:
    """Run ``fn`` (a callable class: one instance per actor) over ``items`` in pandas batches of
    ``pool.batch_size``; yields the result batches (pandas DataFrames) as they finish, in no
    particular order."""
    ds = _dataset(ray, list(items), pool.batch_size)
    ds = ds.map_batches(fn, batch_format="pandas", fn_constructor_kwargs=constructor_kwargs or {},
                        **pool.remote_args(ray))
    yield from ds.iter_batches(batch_size=None, batch_format="pandas")


def _dataset(ray: Any, items: list[dict[str, Any]], batch: int) -> Any:
    """``items`` as a Ray dataset of about one block per batch (``override_num_blocks`` since Ray
    2.10, ``parallelism`` before)."""
    import inspect

    blocks = max(1, min(-(-len(items) // batch), 20000))
    if "override_num_blocks" in inspect.signature(ray.data.from_items).parameters:
        return ray.data.from_items(items, override_num_blocks=blocks)
    return ray.data.from_items(items, parallelism=blocks)  # pragma: no cover (Ray < 2.10)


def _task_pool(ray: Any, size: int) -> dict[str, Any]:
    """At most ``size`` tasks at once: ``compute=TaskPoolStrategy(size)`` where Ray has it
    (``concurrency`` is deprecated since 2.51), else ``concurrency``."""
    try:
        return {"compute": ray.data.TaskPoolStrategy(size=size)}
    except (AttributeError, TypeError):  # pragma: no cover (older Ray)
        return {"concurrency": size}


def _apply_batch(batch: Any, fn: Callable[..., Any]) -> Any:
    """A Ray Data task: ``fn(*args)`` per row; the value (or the exception) pickled."""
    import pickle

    import pandas as pd

    out = []
    for index, blob in zip(batch["index"], batch["args"]):
        try:
            value, error = pickle.dumps(fn(*pickle.loads(blob))), None
        except Exception as err:
            try:
                value, error = None, pickle.dumps(err)
            except Exception:  # an exception that does not pickle: its line
                value, error = None, pickle.dumps(SegviewerError(_line(err)))
        out.append({"index": int(index), "value": value, "error": error})
    return pd.DataFrame(out)


def ordered_map(ray: Any, fn: Callable[..., Any], args: Sequence[tuple[Any, ...]], pool: Pool,
                progress: Progress | None = None) -> Iterator[Any]:
    """``fn(*a)`` for each ``a`` in ``args`` as Ray Data tasks; yields the values in the order of
    ``args`` (results that arrive early wait in a buffer), so reductions add them in the same
    order as the single-process loop. The first failing item's exception is raised."""
    import pickle

    items = [{"index": k, "args": pickle.dumps(a)} for k, a in enumerate(args)]
    if not items:
        return
    ds = _dataset(ray, items, pool.batch_size)
    ds = ds.map_batches(_apply_batch, fn_kwargs={"fn": fn}, batch_format="pandas", num_cpus=pool.cpus or 0.25,
                        batch_size=pool.batch_size, **_task_pool(ray, pool.actors))
    waiting: dict[int, Any] = {}
    nxt = 0
    for batch in ds.iter_batches(batch_size=None, batch_format="pandas"):
        for index, value, error in zip(batch["index"], batch["value"], batch["error"]):
            waiting[int(index)] = (value, error)
        if progress is not None:
            progress.add(len(batch))
        while nxt in waiting:
            value, error = waiting.pop(nxt)
            if error is not None:
                raise pickle.loads(error)
            yield pickle.loads(value)
            nxt += 1


class Progress:
    """A line on stderr at most every ``every`` seconds: done / total and images/s, then a summary.
    The steady rate leaves out start-up (Ray, the actors, their models) and the burst of batches
    that finished meanwhile: it is the rate over the images after the first quarter."""

    def __init__(self, total: int, done: int = 0, every: float = 5.0) -> None:
        self.total, self.done0, self.done, self.every = total, done, done, every
        self.t0 = self.last = self.end = time.perf_counter()
        self.quarter: tuple[float, int] | None = None

    def add(self, n: int) -> None:
        self.done += n
        now = self.end = time.perf_counter()
        if self.quarter is None and 4 * (self.done - self.done0) >= self.total - self.done0:
            self.quarter = (now, self.done)
        if now - self.last >= self.every:
            self.last = now
            print(f"segviewer: {self.done}/{self.total} images, {self.rate():.2f} images/s", file=sys.stderr,
                  flush=True)

    def elapsed(self) -> float:
        return time.perf_counter() - self.t0

    def rate(self) -> float:
        return (self.done - self.done0) / max(self.elapsed(), 1e-9)

    def steady_rate(self) -> float | None:
        """Images/s after the first quarter of the images (None when nothing came after it)."""
        if self.quarter is None or self.done <= self.quarter[1]:
            return None
        return (self.done - self.quarter[1]) / max(self.end - self.quarter[0], 1e-9)

    def summary(self) -> str:
        steady = self.steady_rate()
        after = f" ({steady:.2f} after the first quarter)" if steady is not None else ""
        return f"{self.elapsed():.1f} s, {self.rate():.2f} images/s{after}"
