"""Scenario sweeps on dask.distributed: many runs of one scenario, one row per run, resumable.

The runs (:mod:`simulator.scenarios.sweep_spec`) are cut into batches, one
Dask task each (:mod:`simulator.scenarios.sweep_task`), on a LocalCluster
started here (no set-up) or on an existing cluster given by address.  Every
finished batch is saved at once as a Parquet part in ``RESULT.parts/`` beside
a manifest naming the sweep; run the same command again after an interruption
and only the runs no part holds are sent.  At the end the parts become RESULT
(Parquet, or CSV by its suffix), sorted by run number, and the parts go.

Reading the rows back: :func:`read_result` (with the sweep's metadata).
"""
from __future__ import annotations

import csv
import hashlib
import json
import logging
import math
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from simulator.scenarios.sweep_spec import Run, SweepSpecError, Vary, plan_runs
from simulator.scenarios.sweep_task import FIXED, MEASURES, run_batch, vary_column

log = logging.getLogger(__name__)

FORMATS = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv"}
META_KEY = b"serverfree.sweep"


@dataclass
class SweepProgress:
    done: int
    total: int
    not_ok: int
    resumed: int
    elapsed_s: float


@dataclass
class SweepOutcome:
    path: Path
    runs: int
    not_ok: int  # runs whose expectations were not met, or that could not run
    errors: int  # runs that could not run at all
    resumed: int  # runs found already done in RESULT.parts
    tasks: int
    workers: int
    wall_s: float


def result_format(path: Path, what: str = "-o") -> str:
    """The result's format from its suffix; ``what`` names the option or argument that gave the path."""
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise SweepSpecError(f"{what} {path}: a sweep result is Parquet (.parquet) or CSV (.csv)")
    return fmt


def load_base(path: Path) -> tuple[dict[str, Any], str]:
    """The scenario file as data (validated once as a whole) and its text's digest."""
    from simulator.scenarios.load import CiScenario, read_yaml, validate

    data, text = read_yaml(path)
    validate(CiScenario, data, path, text)  # errors name the file, the line and the field
    data.setdefault("name", path.stem)
    return data, hashlib.sha256(text.encode()).hexdigest()


def batches(runs: list[Run], size: int) -> list[list[Run]]:
    return [runs[i:i + size] for i in range(0, len(runs), size)]


def default_batch(pending: int, workers: int) -> int:
    """About four tasks per worker, so a slow batch does not leave the others idle at the end."""
    return max(1, math.ceil(pending / max(1, workers * 4)))


class _Parts:
    """``RESULT.parts/``: the manifest and one Parquet file per finished batch."""

    def __init__(self, result: Path, manifest: dict[str, Any]):
        self.dir = result.with_name(result.name + ".parts")
        self.manifest = manifest
        found = self.dir / "manifest.json"
        if found.exists():
            old = json.loads(found.read_text())
            if old != manifest:
                raise SweepSpecError(f"{self.dir} holds a different sweep (another scenario text, --vary or "
                                     f"--seeds); delete it, or choose another -o")
        else:
            self.dir.mkdir(parents=True, exist_ok=True)
            found.write_text(json.dumps(manifest, indent=1))

    def rows(self) -> list[dict[str, Any]]:
        import pyarrow.parquet as pq

        out: list[dict[str, Any]] = []
        for part in sorted(self.dir.glob("runs-*.parquet")):
            out += pq.read_table(part).to_pylist()
        return out

    def save(self, rows: list[dict[str, Any]]) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        first, last = rows[0]["run"], rows[-1]["run"]
        tmp = self.dir / f".runs-{first:09d}-{last:09d}.tmp"
        pq.write_table(pa.Table.from_pylist(_typed(rows)), tmp)
        tmp.replace(self.dir / f"runs-{first:09d}-{last:09d}.parquet")  # a part is whole or absent

    def remove(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


def _typed(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One type per varied column, as Parquet wants: ints among floats become floats, anything mixed text."""
    keys = [k for k in rows[0] if k.startswith("vary:")] if rows else []
    for k in keys:
        kinds = {type(r[k]) for r in rows if r[k] is not None}
        if len(kinds) < 2:
            continue
        to = float if kinds <= {int, float} else str
        for r in rows:
            r[k] = None if r[k] is None else to(r[k])
    return rows


def _client(scheduler: str | None, workers: int):
    from dask.distributed import Client, LocalCluster

    if scheduler:
        try:
            return Client(scheduler, timeout="5s"), None
        except (OSError, TimeoutError) as exc:
            raise ConnectionError(f"--scheduler {scheduler}: no Dask scheduler answers there ({exc})") from None
    cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None,
                           host="127.0.0.1", silence_logs=logging.ERROR)
    return Client(cluster), cluster


@dataclass
class SweepPlan:
    """A sweep before it runs: the scenario as data, its runs, the result's columns and metadata."""

    scenario: Path
    base: dict[str, Any]
    runs: list[Run]
    columns: list[str]
    meta: dict[str, Any]


def plan_sweep(scenario: Path, varies: list[Vary], seeds: int = 1) -> SweepPlan:
    scenario = scenario.resolve()
    base, digest = load_base(scenario)
    runs = plan_runs(base, varies, seeds)
    columns = [*FIXED, *(vary_column(v.key) for v in varies), *MEASURES]
    meta = {"scenario": str(scenario), "name": base.get("name"), "scenario_sha256": digest,
            "varies": [{"key": v.key, "values": list(v.values)} for v in varies], "seeds": seeds,
            "runs": len(runs), "topology": _topology_ref(base, scenario.parent)}
    return SweepPlan(scenario, base, runs, columns, meta)


def sweep(scenario: Path, varies: list[Vary], out: Path, *, seeds: int = 1, scheduler: str | None = None,
          workers: int = 2, batch: int | None = None,
          progress: Callable[[SweepProgress], None] | None = None) -> SweepOutcome:
    """Run every combination; rows land in ``out``.  Interrupted (Ctrl-C), the parts stay for a resume."""
    result_format(out)  # an unknown suffix is refused before any work
    plan = plan_sweep(scenario, varies, seeds)
    scenario, base, runs, columns, meta = plan.scenario, plan.base, plan.runs, plan.columns, plan.meta
    parts = _Parts(out, meta)
    done_rows = {r["run"]: r for r in parts.rows()}
    pending = [r for r in runs if r.run not in done_rows]
    resumed = len(done_rows)
    not_ok = sum(1 for r in done_rows.values() if not r["ok"])
    t0 = time.perf_counter()
    tasks, n_workers = 0, workers
    if pending:
        chatter = [logging.getLogger(n) for n in ("distributed", "tornado", "asyncio")]
        levels = [lg.level for lg in chatter]
        for lg in chatter:  # the cluster's chatter, while it runs; progress is ours to show
            lg.setLevel(logging.ERROR)
        client = cluster = None
        try:
            client, cluster = _client(scheduler, workers)
            n_workers = max(1, len(client.scheduler_info().get("workers", {})) or workers)
            todo = batches(pending, batch or default_batch(len(pending), n_workers))
            tasks = len(todo)
            from dask.distributed import as_completed

            base_dir = str(scenario.parent)
            futures = [client.submit(run_batch, base, base_dir, str(scenario), b, pure=False) for b in todo]
            done = resumed
            for fut in as_completed(futures):
                rows = fut.result()
                parts.save(rows)
                done += len(rows)
                not_ok += sum(1 for r in rows if not r["ok"])
                if progress is not None:
                    progress(SweepProgress(done, len(runs), not_ok, resumed, time.perf_counter() - t0))
        finally:
            if client is not None:
                client.close()
            if cluster is not None:
                cluster.close()
            for lg, level in zip(chatter, levels):
                lg.setLevel(level)
    rows = sorted(parts.rows(), key=lambda r: r["run"])
    write_result(rows, columns, out, meta)
    parts.remove()
    return SweepOutcome(out, len(rows), sum(1 for r in rows if not r["ok"]), sum(1 for r in rows if r["error"]),
                        resumed, tasks, n_workers, time.perf_counter() - t0)


def _topology_ref(base: dict[str, Any], base_dir: Path) -> Any:
    topo = base.get("topology")
    if isinstance(topo, str):
        p = Path(topo)
        return str(p if p.is_absolute() else (base_dir / p).resolve())
    return topo


def write_result(rows: list[dict[str, Any]], columns: list[str], out: Path, meta: dict[str, Any]) -> None:
    """Rows (in order) to Parquet with the metadata inside, or to CSV with it in ``RESULT.sweep.json``."""
    fmt = result_format(out)
    tmp = out.with_name(f".{out.name}.tmp")
    if fmt == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.Table.from_pylist(_typed(rows)).select(columns) if rows else pa.table({c: [] for c in columns})
        table = table.replace_schema_metadata({META_KEY: json.dumps(meta).encode()})
        pq.write_table(table, tmp)
    else:
        with tmp.open("w", newline="", encoding="utf-8") as f:
            w = csv.DictWriter(f, fieldnames=columns)
            w.writeheader()
            w.writerows(rows)
        out.with_name(out.name + ".sweep.json").write_text(json.dumps(meta, indent=1))
    tmp.replace(out)


def read_result(path: Path) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Rows and the sweep's metadata from a Parquet result, or a CSV one with its ``.sweep.json``."""
    fmt = result_format(path, "RESULT")
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such sweep result")
    if fmt == "parquet":
        import pyarrow.parquet as pq

        try:
            table = pq.read_table(path)
        except Exception as exc:  # pyarrow raises its own ArrowInvalid for a file that is not Parquet
            raise ValueError(f"{path}: not a Parquet file ({exc})") from None
        raw = (table.schema.metadata or {}).get(META_KEY)
        return table.to_pylist(), json.loads(raw) if raw else {}
    with path.open(newline="", encoding="utf-8") as f:
        rows = [_parsed(r) for r in csv.DictReader(f)]
    side = path.with_name(path.name + ".sweep.json")
    return rows, json.loads(side.read_text()) if side.is_file() else {}


def _parsed(row: dict[str, str]) -> dict[str, Any]:
    """CSV cells back to numbers and booleans where they are."""
    out: dict[str, Any] = {}
    for k, v in row.items():
        if v in ("True", "False"):
            out[k] = v == "True"
        elif v == "":
            out[k] = "" if k in ("error", "first_failure", "failover_path", "main_bottleneck", "paths") else None
        else:
            try:
                out[k] = int(v)
            except ValueError:
                try:
                    out[k] = float(v)
                except ValueError:
                    out[k] = v
    return out


__all__ = ["SweepOutcome", "SweepProgress", "read_result", "sweep", "write_result"]
