"""Batch runs: idempotent, crash-safe, resumable.

A batch spec (TOML) lists runs: a formula or scenario, overrides, a data folder, output levels, years. Each run's id
is a hash of everything that determines its output (data files, resolved formula and overrides, parameters, engine
and package versions: see outputs/manifest.py), known before running. A run whose folder `<output>/<run id>` already
holds a manifest is complete and byte-identical to what a rerun would write, so it is skipped (`--force` redoes it);
a scheduled batch therefore recomputes exactly the runs whose inputs changed.

Each run is written to a temporary folder and renamed into place when complete (outputs/write.py); a batch killed
at any point leaves at most a temporary folder, which the next batch removes before it starts. A lock file stops a
second batch writing the same output folder (it exits with code 4 and says which process holds the lock). One
failing run does not stop the others; the batch exits 1 if any failed. Every event is a JSON line in
`<output>/batch.log.jsonl`; the summary is `<output>/batch-summary.json`.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from fundform.base.errors import EnvironmentFailure, FundformError, environment_failure, present
from fundform.base.failpoints import failpoint
from fundform.base.paths import default_data_dir
from fundform.base.toml import problems_of, read_toml
from fundform.inputs.tables import LEVELS

LOCK_NAME = ".batch.lock"


class BatchBusy(FundformError):
    """Another batch holds the output folder's lock."""

    exit_code = 4


class RunSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    formula: str
    name: str | None = None
    levels: list[str] | None = Field(default=None, min_length=1)  # default: the version's own
    start_year: str | None = None  # default: the version's first effective year
    years: int | None = Field(default=None, ge=1, le=20)  # default: the version's effective years
    set: list[str] = Field(default_factory=list)
    data: str | None = None


class BatchSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    output: str = "out/batch"
    data: str | None = None
    record: bool = True
    runs: list[RunSpec] = Field(min_length=1)


@dataclass(kw_only=True)
class Job:
    label: str
    formula: str
    level: str
    start_year: str
    years: int
    sets: tuple[str, ...]
    data_dir: Path


def read_spec(path: Path) -> tuple[BatchSpec, list[Job], Path]:
    path = Path(path)
    if not path.is_file():
        raise FundformError(f"{path}: batch spec not found")
    try:
        spec = BatchSpec.model_validate(read_toml(path, "TOML batch spec"))
    except ValidationError as e:
        raise problems_of(path, "batch spec", e) from None
    base = path.parent

    def resolve(p: str | None, default: Path) -> Path:
        return default if p is None else (Path(p) if Path(p).is_absolute() else base / p)

    from fundform.formula.scenario import resolve_formula
    from fundform.formula.spec import run_defaults

    jobs = []
    for i, r in enumerate(spec.runs):
        formula = r.formula if not r.formula.endswith(".toml") else str(resolve(r.formula, base))
        level0: str | None = None
        start0: str | None = None
        years0: int | None = None
        if r.levels is None or r.start_year is None or r.years is None:
            try:
                level0, start0, years0 = run_defaults(resolve_formula(formula, tuple(r.set)).spec)
            except FundformError as e:
                raise FundformError(f"{path}: runs.{i}: {e}") from None
        # what the batch leaves unsaid is the version's own (run_defaults, read just above)
        start = r.start_year if r.start_year is not None else present(start0, "the version's start year")
        years = r.years if r.years is not None else present(years0, "the version's years")
        for level in r.levels or [present(level0, "the version's level")]:
            if level not in LEVELS:
                raise FundformError(f"{path}: runs.{i}.levels: unknown level '{level}' (known: {', '.join(LEVELS)})")
            jobs.append(Job(label=f"{r.name or r.formula} [{level}]", formula=formula, level=level, start_year=start,
                            years=years, sets=tuple(r.set), data_dir=resolve(r.data or spec.data, default_data_dir())))
    return spec, jobs, resolve(spec.output, base)


class Lock:
    def __init__(self, folder: Path):
        self.path = folder / LOCK_NAME
        self.fh: TextIO | None = None

    def __enter__(self) -> Lock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.fh = fh = open(self.path, "a+")
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().strip() or "unknown"
            fh.close()
            raise BatchBusy(f"another batch is writing {self.path.parent} (lock held by pid {holder}); "
                            "this one did nothing") from None
        fh.seek(0)
        fh.truncate()
        fh.write(str(os.getpid()))
        fh.flush()
        return self

    def __exit__(self, *exc: Any) -> None:
        fh = present(self.fh, "the batch's lock file")
        fcntl.flock(fh, fcntl.LOCK_UN)
        fh.close()


def clean_stale(folder: Path) -> list[str]:
    """What a killed batch left: temporary folders removed, an output moved aside mid-swap restored (see
    outputs.write.recover_leftovers; only dead processes' leftovers are touched)."""
    from fundform.outputs.write import recover_leftovers

    return recover_leftovers(folder)


def run_batch(spec_path: Path, force: bool = False, dry_run: bool = False,
              progress: Callable[[str, int, int], None] | None = None,
              warehouse: Path | None = None) -> dict[str, Any]:
    """Run a batch spec. Runs are recorded in `warehouse` (default: the settings' run warehouse, FUNDFORM_WAREHOUSE),
    the one every other command reads, unless the spec says record = false.

    Over 80 lines: the jobs share the batch's lock, ledger and record; the loop over them is kept whole."""
    from fundform.outputs.warehouse import record_run, recorded_ids
    from fundform.studies.pipeline import RunParameters
    from fundform.studies.runs import plan_run, run

    spec, jobs, output = read_spec(spec_path)
    if warehouse is None:
        from fundform.base.config import load_settings

        warehouse = load_settings().warehouse
    record_into = Path(warehouse)
    known: list[set[str]] = []

    def recorded() -> set[str]:  # the warehouse's run ids, read once per batch (one connection, not one a run)
        if not known:
            known.append(recorded_ids(record_into))
        return known[0]
    output.mkdir(parents=True, exist_ok=True)
    def say(message: str, done: int = 0, total: int = 0) -> None:  # progress(message, runs done, runs in all)
        if progress is not None:
            progress(message, done, total)
    results: list[dict[str, Any]] = []
    with Lock(output):
        log = (output / "batch.log.jsonl").open("a")

        def event(**kw: Any) -> None:
            log.write(json.dumps({"time": datetime.now(UTC).isoformat(timespec="seconds"), **kw}) + "\n")
            log.flush()

        started = time.perf_counter()
        event(event="start", spec=str(spec_path), jobs=len(jobs), pid=os.getpid(), force=force)
        stale = clean_stale(output)
        if stale:
            event(event="cleaned", folders=stale)
        for job in jobs:
            t0 = time.perf_counter()
            row: dict[str, Any] = {"run": job.label, "formula": job.formula, "level": job.level}
            try:
                params = RunParameters(level=job.level, start_year=job.start_year, years=job.years)
                plan = plan_run(job.formula, job.data_dir, params, job.sets)
                row["run_id"] = plan.run_id
                target = output / plan.run_id
                warehouse = record_into if spec.record else None
                if (target / "manifest.json").exists() and not force:
                    row["status"] = "skipped (complete, inputs unchanged)"
                    # a run killed after writing and before recording (or a lock timeout) is complete on disk but
                    # not in the warehouse: record it now, so the two always agree
                    if warehouse is not None and not dry_run and plan.run_id not in recorded():
                        record_run(warehouse, target)
                        recorded().add(plan.run_id)
                        row["status"] = "skipped (complete, inputs unchanged); recorded in the warehouse now"
                elif dry_run:
                    row["status"] = "would run"
                else:
                    say(f"running {job.label}", len(results), len(jobs))
                    run(job.formula, job.data_dir, params, target, output, sets=job.sets, plan=plan,
                        warehouse=warehouse)
                    row["status"] = "done"
                    failpoint("batch.after_run", target)
            except Exception as e:  # one failing run must not stop the others
                e = environment_failure(e, "the machine refused") or e
                if isinstance(e, EnvironmentFailure):
                    raise e from None  # a full disk or a lost permission fails every later run too: stop, say so
                row["status"] = "failed"
                row["error"] = str(e) if isinstance(e, FundformError) else f"{type(e).__name__}: {e}"
                if not isinstance(e, FundformError):
                    row["traceback"] = traceback.format_exc()
            row["seconds"] = round(time.perf_counter() - t0, 3)
            event(event=row["status"].split(" ")[0], **{k: v for k, v in row.items() if k != "status"})
            results.append(row)
        counts = {s: sum(1 for r in results if r["status"].split(" ")[0] == s)
                  for s in ("done", "skipped", "failed", "would")}
        summary = {"spec": str(spec_path), "output": str(output), "seconds": round(time.perf_counter() - started, 3),
                   "runs": results, "counts": counts}
        tmp = output / "batch-summary.json.tmp"
        tmp.write_text(json.dumps(summary, indent=2) + "\n")
        tmp.replace(output / "batch-summary.json")
        event(event="end", **counts, seconds=summary["seconds"])
        log.close()
    return summary
