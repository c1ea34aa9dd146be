"""Fault injection: `run` and `batch` killed with SIGKILL at every named failpoint (fundform/base/failpoints.py), then
rerun. Each rerun completes with outputs byte-identical to an uninterrupted run, nothing is left over, and the
warehouse and the output folders agree: every complete folder is recorded, every record has its folder.
Concurrency: several processes running and batching into one output root and one warehouse lose no record.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import duckdb
import pytest

FUNDFORM = str(Path(sys.executable).parent / "fundform")
PARQUETS = ("allocations", "need", "streams", "waterfall", "cohorts", "reconciliation")


def env_for(root: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FUNDFORM_")}
    env.update({"FUNDFORM_OUT_ROOT": str(root / "out"), "FUNDFORM_WAREHOUSE": str(root / "out" / "fundform.duckdb"),
                "FUNDFORM_WAREHOUSE_WAIT": "30", "FUNDFORM_NO_CACHE": "1", **extra})  # the cache: test_input_cache
    return env


def fundform(root: Path, *args: str, timeout: float = 120, **extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([FUNDFORM, *args], env=env_for(root, **extra), capture_output=True, text=True,
                          timeout=timeout)


def parquet_bytes(folder: Path) -> dict[str, bytes]:
    return {n: (folder / f"{n}.parquet").read_bytes() for n in PARQUETS}


def recorded(warehouse: Path) -> dict[str, int]:
    """run id -> rows of allocations the warehouse holds for it."""
    if not warehouse.exists():
        return {}
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        runs = [r[0] for r in con.execute("SELECT run_id FROM runs").fetchall()]
        return {r: con.execute("SELECT count(*) FROM allocations WHERE run_id = ?", [r]).fetchone()[0]
                for r in runs}
    except duckdb.CatalogException:
        return {}
    finally:
        con.close()


def complete_folders(out: Path) -> dict[str, int]:
    """run id -> rows of allocations.parquet, for every complete run folder under `out`."""
    import polars as pl

    return {p.name: pl.read_parquet(p / "allocations.parquet").height
            for p in out.iterdir() if p.is_dir() and not p.name.startswith(".") and (p / "manifest.json").exists()}


def leftovers(out: Path) -> list[str]:
    return sorted(p.name for p in out.rglob(".*") if ".tmp-" in p.name or ".old-" in p.name)


RUN = ("run", "--years", "2", "--json")


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> tuple[str, dict[str, bytes]]:
    """An uninterrupted run: its id and its Parquet bytes."""
    root = tmp_path_factory.mktemp("reference")
    done = fundform(root, *RUN)
    assert done.returncode == 0, done.stderr
    run_id = json.loads(done.stdout)["run_id"]
    return run_id, parquet_bytes(root / "out" / run_id)


def assert_agrees(root: Path, run_id: str, expected: dict[str, bytes]) -> None:
    out = root / "out"
    assert parquet_bytes(out / run_id) == expected, "the rerun's outputs differ from an uninterrupted run's"
    assert leftovers(out) == [], leftovers(out)
    assert recorded(out / "fundform.duckdb") == complete_folders(out), "the warehouse and the folders disagree"


@pytest.mark.parametrize("point", ["run.after_compute", "write.mid", "write.before_rename", "warehouse.wait",
                                   "warehouse.create", "warehouse.recording"])
def test_run_killed_at_each_failpoint_then_rerun(point, reference, tmp_path):
    run_id, expected = reference
    killed = fundform(tmp_path, *RUN, FUNDFORM_FAILPOINTS=f"{point}=kill")
    assert killed.returncode == -signal.SIGKILL, (killed.returncode, killed.stderr)
    out = tmp_path / "out"
    if out.exists():  # whatever the kill left, no half-written output is visible under its final name
        for name, rows in complete_folders(out).items():
            assert parquet_bytes(out / name) == expected
    again = fundform(tmp_path, *RUN)
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["run_id"] == run_id
    assert_agrees(tmp_path, run_id, expected)


def test_run_killed_between_the_renames_is_restored_by_the_next_writer(reference, tmp_path):
    """Killed after moving the earlier output aside and before moving the new one in: the next run of any kind
    puts the earlier output back (a reader never finds the run missing for longer than that)."""
    run_id, expected = reference
    assert fundform(tmp_path, *RUN).returncode == 0
    killed = fundform(tmp_path, *RUN, FUNDFORM_FAILPOINTS="write.between_renames=kill")
    assert killed.returncode == -signal.SIGKILL
    out = tmp_path / "out"
    assert not (out / run_id).exists() and leftovers(out)  # the window the kill landed in
    other = fundform(tmp_path, "run", "--years", "1", "--json")  # a different run, into the same root
    assert other.returncode == 0, other.stderr
    assert parquet_bytes(out / run_id) == expected
    assert leftovers(out) == []
    assert recorded(out / "fundform.duckdb") == complete_folders(out)


BATCH = textwrap.dedent("""\
    output = "out"
    [[runs]]
    formula = "fundform-needs"
    years = 1
    [[runs]]
    formula = "reform-2017"
    years = 1
""")


@pytest.fixture(scope="module")
def batch_reference(tmp_path_factory) -> dict[str, dict[str, bytes]]:
    root = tmp_path_factory.mktemp("batchref")
    (root / "batch.toml").write_text(BATCH)
    done = fundform(root, "batch", str(root / "batch.toml"), "--json")
    assert done.returncode == 0, done.stderr
    return {r["run_id"]: parquet_bytes(root / "out" / r["run_id"]) for r in json.loads(done.stdout)["runs"]}


def assert_batch_agrees(root: Path, expected: dict[str, dict[str, bytes]]) -> None:
    out = root / "out"
    for run_id, files in expected.items():
        assert parquet_bytes(out / run_id) == files
    assert leftovers(out) == []
    assert set(recorded(out / "fundform.duckdb")) == set(expected) == set(complete_folders(out))


@pytest.mark.parametrize("point", ["batch.after_run", "warehouse.recording", "warehouse.wait", "write.mid",
                                   "write.before_rename"])
def test_batch_killed_at_each_failpoint_then_rerun(point, batch_reference, tmp_path):
    (tmp_path / "batch.toml").write_text(BATCH)
    killed = fundform(tmp_path, "batch", str(tmp_path / "batch.toml"), FUNDFORM_FAILPOINTS=f"{point}=kill")
    assert killed.returncode == -signal.SIGKILL, (killed.returncode, killed.stderr)
    again = fundform(tmp_path, "batch", str(tmp_path / "batch.toml"), "--json")
    assert again.returncode == 0, again.stderr
    assert_batch_agrees(tmp_path, batch_reference)


def test_batch_after_a_lock_timeout_records_what_it_wrote_on_the_rerun(batch_reference, tmp_path):
    """Another process holds the warehouse: the batch waits FUNDFORM_WAREHOUSE_WAIT (not 60 s), writes its runs,
    fails to record them and says so; the rerun, with the warehouse free, skips the complete runs and records them."""
    (tmp_path / "batch.toml").write_text(BATCH)
    warehouse = tmp_path / "out" / "fundform.duckdb"
    warehouse.parent.mkdir(parents=True)
    duckdb.connect(str(warehouse)).close()
    holder = subprocess.Popen([sys.executable, "-c", f"import duckdb, time; c = duckdb.connect({str(warehouse)!r}); "
                               "print('held', flush=True); time.sleep(60)"], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        t0 = time.monotonic()
        blocked = fundform(tmp_path, "batch", str(tmp_path / "batch.toml"), "--json", FUNDFORM_WAREHOUSE_WAIT="1")
        elapsed = time.monotonic() - t0
    finally:
        holder.kill()
        holder.wait()
    assert blocked.returncode == 1, blocked.stderr
    summary = json.loads(blocked.stdout)
    assert summary["counts"]["failed"] == 2 and all("still in use" in r["error"] for r in summary["runs"])
    assert elapsed < 40, f"the batch waited {elapsed:.0f} s although FUNDFORM_WAREHOUSE_WAIT=1"
    again = fundform(tmp_path, "batch", str(tmp_path / "batch.toml"), "--json")
    assert again.returncode == 0, again.stderr
    statuses = [r["status"] for r in json.loads(again.stdout)["runs"]]
    assert all("recorded in the warehouse now" in s for s in statuses), statuses
    assert_batch_agrees(tmp_path, batch_reference)


def test_processes_running_and_batching_into_one_root_lose_no_record(tmp_path):
    """Three runs and a batch of two, all at once, into one output root and one warehouse: every run recorded,
    each once, every folder complete, nothing left over, no process waiting beyond the documented wait."""
    (tmp_path / "batch.toml").write_text(BATCH)
    env = env_for(tmp_path)
    procs = [subprocess.Popen([FUNDFORM, "run", "--years", "1", "--json", "--set", f"transition.floor=-0.0{i}"],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in (1, 2, 3)]
    procs.append(subprocess.Popen([FUNDFORM, "batch", str(tmp_path / "batch.toml"), "--json"], env=env,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    results = [p.communicate(timeout=180) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0, 0], [r[1] for r in results]
    ids = {json.loads(results[i][0])["run_id"] for i in range(3)}
    ids |= {r["run_id"] for r in json.loads(results[3][0])["runs"]}
    out = tmp_path / "out"
    assert len(ids) == 5
    assert set(recorded(out / "fundform.duckdb")) == ids == set(complete_folders(out))
    assert leftovers(out) == []


def test_every_failpoint_is_placed_in_the_code_and_documented():
    from fundform.base.failpoints import POINTS
    from fundform.base.paths import PROJECT_ROOT

    source = "".join(p.read_text() for p in (PROJECT_ROOT / "fundform").rglob("*.py"))
    doc = (PROJECT_ROOT / "docs" / "reliability.md").read_text()
    for point in POINTS:
        assert f'failpoint("{point}"' in source, f"{point} is never called"
        assert f"`{point}`" in doc, f"{point} is not in docs/reliability.md"


def test_the_documented_derived_bounds_are_the_codes():
    from fundform.base.paths import PROJECT_ROOT
    from fundform.inputs import checks as ds
    from fundform.inputs.contracts import _num

    doc = (PROJECT_ROOT / "docs" / "reliability.md").read_text().replace(",", "")
    _num = (lambda f: lambda x: f(x).replace(",", ""))(_num)  # prose may or may not group digits
    assert f"{_num(ds.POPULATION_PER_AREA[0])} to {_num(ds.POPULATION_PER_AREA[1])}" in doc
    assert f"GBP {_num(ds.BASELINE_PER_HEAD[0])} to GBP {_num(ds.BASELINE_PER_HEAD[1])}" in doc
    for lo, hi, _ in ds.COMPONENT_PER_HEAD.values():
        assert f"GBP {_num(lo)} to GBP {_num(hi)}" in doc
    assert f"{_num(ds.TAX_BASE_PER_HEAD[0])} to {_num(ds.TAX_BASE_PER_HEAD[1])} Band D" in doc
    assert f"| {_num(ds.TAX_BASE_GROWTH[0])} to {_num(ds.TAX_BASE_GROWTH[1])} |" in doc
