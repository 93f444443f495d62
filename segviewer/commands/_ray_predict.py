"""``segviewer predict --engine ray``: the same per-image function on a Ray Data actor pool.

Each actor loads the model once and runs :func:`segviewer.commands.predict.decode` and
:func:`~segviewer.commands.predict.predict_image` (the single-process path's own functions) on a
batch of images; it returns compact rows (the PNG / JSON bytes, the COCO records as JSON text,
or the failure's one-line message). The driver writes each image's files as rows arrive, then
commits the batch as one Parquet shard under ``OUT/.segviewer-ray/`` (atomically: a killed run
leaves whole shards only). At the end the run-level files (``results.json``, ``images.json``,
``categories.json``) are assembled from every shard in the run's image order, so they are the
same bytes the single-process run writes.

Resume: running the same command again (same models and options; the manifest in the shard
folder says which) skips the images already committed; ``--overwrite`` starts afresh.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

from segviewer.commands import _ray_engine as engine
from segviewer.commands.predict import FILES
from segviewer.core.errors import SegviewerError

__all__ = ["SHARDS", "Predictor", "run", "resumable"]

#: The shard folder inside ``--out``.
SHARDS = ".segviewer-ray"
#: Options that change what is written: a resumed run must use the same.
_KEY_OPTIONS = ("model", "weights", "score_thresh", "draw_thresh", "max_detections", "min_size",
                "random_init", "gt", "no_gt", "panoptic", "merge", "overlap", "stuff_min_area", "merge_score", "set")
_FILE_COLUMNS = {name: f"file{k}" for k, name in enumerate(FILES)}


def run_key(args: argparse.Namespace) -> dict[str, Any]:
    """What a resumed run must share with the stopped one (JSON-ready)."""
    key = {}
    for k in _KEY_OPTIONS:
        v = getattr(args, k, None)
        key[k] = [str(x) for x in v] if isinstance(v, list) else (str(v) if isinstance(v, Path) else v)
    return key


def resumable(args: argparse.Namespace) -> bool:
    """True when ``--out`` holds shards of a stopped run with the same key (a rerun resumes it).
    Shards of a run with other options are refused unless ``--overwrite``."""
    folder = Path(args.out) / SHARDS
    manifest = folder / "manifest.json"
    if not manifest.is_file():
        return False
    try:
        old = json.loads(manifest.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        old = None
    if old == run_key(args):
        return True
    if args.overwrite:
        return False
    raise SegviewerError(f"{folder} holds a stopped Ray run with other options ({manifest.name}); rerun it with "
                         "the same options to resume, or pass --overwrite to start afresh")


class Predictor:
    """One Ray actor: the model(s) loaded once, then ``predict_image`` (or, with ``--panoptic``,
    ``predict_panoptic_image``) per row of a batch."""

    def __init__(self, args: argparse.Namespace, params: Any, cat_ids: list[int | None] | None,
                 threads: int) -> None:
        from segviewer.adapters.device import resolve_device
        from segviewer.adapters.registry import create_adapter
        from segviewer.adapters.runtime import set_threads
        from segviewer.commands.predict import _load, _roles, panoptic_merge

        set_threads(threads)
        self.args, self.params, self.cat_ids = args, params, cat_ids
        device = resolve_device(args.device)
        models = args.model if isinstance(args.model, list) else [args.model]
        self.adapters = [create_adapter(m, random_init=args.random_init) for m in models]
        for adapter in self.adapters:
            _load(adapter, args, device)
        self.roles = _roles(self.adapters) if args.panoptic else None
        self.merge = panoptic_merge(args) if args.panoptic else None

    def predict(self, path: Path, image_id: int) -> tuple[Any, Any]:
        from segviewer.commands.predict import decode, predict_image, predict_panoptic_image

        image, tm = decode(path)
        if self.roles is not None:
            return predict_panoptic_image(*self.roles, self.merge, image, self.params, tm), tm
        return predict_image(self.adapters[0], image, image_id, self.params, float(self.args.draw_thresh),
                             self.cat_ids, tm), tm

    def __call__(self, batch: Any) -> Any:
        import pandas as pd

        from segviewer.commands.predict import _first_line

        rows = []
        for index, path, image_id in zip(batch["index"], batch["path"], batch["image_id"]):
            row: dict[str, Any] = {"index": int(index), "error": None, "height": 0, "width": 0,
                                   "records": None, "panoptic": None, "summary": "", "times": ""}
            row.update({c: None for c in _FILE_COLUMNS.values()})
            try:
                res, tm = self.predict(Path(path), int(image_id))
            except Exception as err:  # one bad image never stops the run
                row["error"] = _first_line(err)
            else:
                row.update(height=res.height, width=res.width, summary=res.summary, times=tm.summary(),
                           records=None if res.records is None else json.dumps(res.records),
                           panoptic=None if res.panoptic is None else json.dumps(res.panoptic))
                for name, data in res.files.items():
                    row[_FILE_COLUMNS[name]] = data
            rows.append(row)
        return pd.DataFrame(rows)


def _read_shards(folder: Path) -> list[dict[str, Any]]:
    """Every committed row (without file bytes), in shard order."""
    import pyarrow.parquet as pq

    rows: list[dict[str, Any]] = []
    for f in sorted(folder.glob("part-*.parquet")):
        rows += pq.read_table(f).to_pylist()
    return rows


def _write_shard(folder: Path, n: int, rows: list[dict[str, Any]]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    tmp = folder / f".part-{n:06d}.parquet.tmp"
    pq.write_table(pa.Table.from_pylist(rows), tmp)
    os.replace(tmp, folder / f"part-{n:06d}.parquet")


def run(args: argparse.Namespace, adapters: list[Any], params: Any, state: Any) -> None:
    """The run on Ray: the outputs ``predict``'s own loops write, same bytes. ``adapters`` are
    not loaded here (each actor loads its own)."""
    from segviewer.commands import predict as base
    from segviewer.core.fileio import write_json_atomic

    ray = engine.import_ray()
    folder = state.out / SHARDS
    if args.overwrite and folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True, exist_ok=True)
    write_json_atomic(folder / "manifest.json", run_key(args))
    card = adapters[0].card
    cat_ids = None if args.panoptic else base.single_categories(state, card)
    items_all = state.items()
    stems = {stem: k for k, stem in enumerate(state.stems)}
    done = {r["stem"]: r for r in _read_shards(folder) if r["error"] is None and r["stem"] in stems}
    items = [{"index": k, "path": str(p), "image_id": int(i)}
             for k, (p, stem, i) in enumerate(items_all) if stem not in done]
    if done:
        print(f"segviewer: resuming: {len(done)} of {len(state.stems)} images already in {state.out}, "
              f"{len(items)} to go", file=sys.stderr)
    progress = engine.Progress(len(state.stems), len(done))
    n_shard = len(list(folder.glob("part-*.parquet")))
    if items:
        with engine.RaySession(args.address) as session:
            pool = engine.pool_for(session.ray, args, len(items))
            threads = args.threads or max(1, int(pool.cpus))
            print(f"segviewer: ray: {len(items)} images on {pool.describe()}", file=sys.stderr, flush=True)
            batches = engine.map_rows(ray, items, Predictor, pool,
                                      {"args": args, "params": params, "cat_ids": cat_ids, "threads": threads})
            try:
                for batch in batches:
                    committed = []
                    for row in batch.to_dict("records"):
                        path, stem, _ = items_all[row["index"]]
                        if row["error"] is not None:
                            state.skip(path, row["error"])
                            continue
                        files = {s: row[c] for s, c in _FILE_COLUMNS.items() if row[c] is not None}
                        base.write_image_output(state.out, stem, files)
                        committed.append({"stem": stem, "error": None, "height": int(row["height"]),
                                          "width": int(row["width"]), "records": row["records"],
                                          "panoptic": row["panoptic"], "summary": row["summary"],
                                          "times": row["times"]})
                    if committed:
                        _write_shard(folder, n_shard, committed)
                        n_shard += 1
                        for r in committed:
                            done[r["stem"]] = r
                    progress.add(len(batch))
            except SegviewerError:
                raise
            except KeyboardInterrupt:
                print(f"segviewer: stopped with {len(done)} of {len(state.stems)} images committed; run the same "
                      "command again to resume", file=sys.stderr)
                raise
            except Exception as err:  # an actor that cannot start (weights, device): one line
                raise SegviewerError(f"the Ray run stopped: {_root_cause(err)}; rerun the same command to "
                                     f"resume ({len(done)} of {len(state.stems)} images done)") from None
    if args.panoptic:
        inst_ad, sem_ad = base._roles(adapters)
        pan = base.PanopticRun(state, inst_ad, sem_ad, base.panoptic_merge(args))
        for path, stem, image_id in items_all:
            r = done.get(stem)
            if r is not None:
                pan.add(path, stem, image_id, r["height"], r["width"], json.loads(r["panoptic"]))
        pan.finish()
        n_written = len(pan.entries)
    else:
        records: list[dict[str, Any]] | None = None
        entries = []
        for path, stem, image_id in items_all:
            r = done.get(stem)
            if r is None:
                continue
            if r["records"] is not None:
                records = records if records is not None else []
                records += json.loads(r["records"])
            entries.append(base.image_entry(state, path, stem, image_id, r["height"], r["width"]))
        base.finish_single(state, card, cat_ids, records, entries)
        n_written = len(entries)
    resumed = len(state.stems) - len(items)
    print(f"segviewer: ray: {n_written} of {len(state.stems)} images written ({resumed} from a stopped run, "
          f"{progress.done - progress.done0} processed now) in {progress.summary()}; "
          f"{state.failures} failed", file=sys.stderr)


def _root_cause(err: BaseException) -> str:
    """The first line worth showing of a Ray failure: Ray wraps an actor's exception in its own
    (with the remote traceback as text), so the last ``module.Type: message`` line is the cause;
    segviewer's own errors show their sentence alone."""
    import re

    from segviewer.commands.predict import _first_line

    found = re.findall(r"^([A-Za-z_][\w.]*(?:Error|Exception)): (.+)$", str(err), flags=re.MULTILINE)
    if not found:
        return _first_line(err)
    kind, msg = found[-1]
    return msg.strip() if kind.startswith("segviewer.") else f"{kind.rsplit('.', 1)[-1]}: {msg.strip()}"
