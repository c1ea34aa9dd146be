"""The run warehouse: every run's manifest, allocations, streams and reconciliation in one DuckDB file.

Recording a run is one transaction: a failure part-way leaves no rows of that run. Re-recording the same run id
replaces its rows (runs are deterministic: the same id means the same output). `fundform sql` runs a query against
the warehouse, where DuckDB can also read any Parquet output directly (read_parquet('out/*/allocations.parquet')).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fundform.base.errors import FundformError, environment_failure
from fundform.base.failpoints import failpoint
from fundform.outputs.registry import OUTPUTS


class _DuckDB:
    """DuckDB, imported when the warehouse is first used: a run that records nothing does not pay for it."""

    def __getattr__(self, name: str) -> Any:
        import duckdb as module

        return getattr(module, name)


if TYPE_CHECKING:
    import duckdb
else:
    duckdb = _DuckDB()

RUN_TABLES = tuple(o.name for o in OUTPUTS if o.recorded)  # the registry's tables a warehouse keeps


def connect(path: Path, read_only: bool = False, wait: float | None = None,
            config: dict | None = None, probe: bool = False) -> duckdb.DuckDBPyConnection:
    """A connection to the warehouse. DuckDB lets one process write a database file at a time, so a run finishing
    while another records (a scheduled batch and an analyst's run, say) waits for the lock, with backoff, for up to
    `wait` seconds (default: the warehouse_wait setting) instead of failing at once."""
    path = Path(path)
    if read_only and not path.exists():
        raise FundformError(f"no run warehouse at {path}: run `fundform run` first (or set FUNDFORM_WAREHOUSE)")
    from fundform.outputs.write import ensure_folder

    ensure_folder(path.parent, "the run warehouse's folder")
    from fundform.base import config as settings

    wait = settings.WAREHOUSE_WAIT if wait is None else wait
    deadline, delay = time.monotonic() + wait, 0.05
    while True:
        if not probe:
            failpoint("warehouse.wait", path)
        try:
            return duckdb.connect(str(path), read_only=read_only, config=config or {})
        except duckdb.IOException as e:
            if "lock" not in str(e).lower():
                env = environment_failure(e, f"cannot open the run warehouse {path}")
                if env is not None:
                    raise env from None
                raise FundformError(f"{path}: cannot open the run warehouse ({e})") from e
            if time.monotonic() + delay > deadline:
                raise FundformError(f"{path}: the run warehouse is still in use by another process after {wait:g} s "
                                    f"({e}); try again, or raise FUNDFORM_WAREHOUSE_WAIT") from e
            time.sleep(delay)
            delay = min(delay * 2, 1.0)


def _ensure_tables(con: duckdb.DuckDBPyConnection, out_dir: Path) -> None:
    con.execute("""CREATE TABLE IF NOT EXISTS runs (
        run_id VARCHAR PRIMARY KEY, formula_id VARCHAR, formula_version VARCHAR, formula_sha256 VARCHAR,
        scenario VARCHAR, level VARCHAR, start_year VARCHAR, years INTEGER, out_dir VARCHAR, created_at VARCHAR,
        manifest JSON)""")
    for table in RUN_TABLES:
        f = out_dir / f"{table}.parquet"
        if f.exists():  # the table takes the output contract's columns, with the run id first
            con.execute(f"CREATE TABLE IF NOT EXISTS {table} AS SELECT ''::VARCHAR AS run_id, * "
                        f"FROM read_parquet(?) LIMIT 0", [str(f)])
            # a column the output contract gained since this warehouse was made (schema 1.8's todays_funding) is
            # added, NULL for the runs recorded before it
            have = {r[0] for r in con.execute(f"DESCRIBE {table}").fetchall()}
            for name, kind, *_ in con.execute("DESCRIBE SELECT * FROM read_parquet(?)", [str(f)]).fetchall():
                if name not in have:
                    con.execute(f'ALTER TABLE {table} ADD COLUMN "{name}" {kind}')


def _create(warehouse: Path, out_dir: Path) -> None:
    """A new warehouse is built beside its final name and linked into place only when its tables exist: a failure
    (a full disk, say) leaves no warehouse rather than an empty one. If another process created it meanwhile, its
    file is kept and this one discarded."""
    tmp = warehouse.parent / f".{warehouse.name}.tmp-{os.getpid()}"
    for leftover in (tmp, Path(f"{tmp}.wal")):
        leftover.unlink(missing_ok=True)
    try:
        con = duckdb.connect(str(tmp))
        try:
            _ensure_tables(con, out_dir)
            failpoint("warehouse.create", tmp)
            con.execute("CHECKPOINT")
        finally:
            con.close()
        try:
            os.link(tmp, warehouse)  # never replaces: another process's new warehouse wins
        except FileExistsError:
            pass
    except Exception as e:
        env = environment_failure(e, f"cannot create the run warehouse {warehouse}")
        if env is not None:
            raise env from None
        raise
    finally:
        for leftover in (tmp, Path(f"{tmp}.wal")):
            leftover.unlink(missing_ok=True)


def record_run(warehouse: Path, out_dir: Path, wait: float | None = None) -> str:
    """Record the run written to out_dir, in one transaction; returns its run id. A failure of the machine is
    raised as EnvironmentFailure naming the warehouse; the warehouse then holds none of this run's rows."""
    out_dir = Path(out_dir)
    warehouse = Path(warehouse)
    manifest = json.loads((out_dir / "manifest.json").read_text())
    run_id = manifest["run_id"]
    if not warehouse.exists():
        from fundform.outputs.write import ensure_folder

        ensure_folder(warehouse.parent, "the run warehouse's folder")
        _create(warehouse, out_dir)
    con = connect(warehouse, wait=wait)
    try:
        con.execute("BEGIN TRANSACTION")
        _ensure_tables(con, out_dir)
        con.execute("DELETE FROM runs WHERE run_id = ?", [run_id])
        p = manifest["parameters"]
        con.execute("INSERT INTO runs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", [
            run_id, manifest["formula"]["id"], manifest["formula"]["version"], manifest["formula"]["sha256"],
            manifest["formula"].get("scenario"), p["level"], p["start_year"], p["years"], str(out_dir.resolve()),
            manifest.get("created_at"), json.dumps(manifest)])
        failpoint("warehouse.recording", warehouse)
        for table in RUN_TABLES:
            f = out_dir / f"{table}.parquet"
            if f.exists():
                con.execute(f"DELETE FROM {table} WHERE run_id = ?", [run_id])
                con.execute(f"INSERT INTO {table} BY NAME SELECT ? AS run_id, * FROM read_parquet(?)",
                            [run_id, str(f)])
        con.execute("COMMIT")
    except Exception as e:
        try:
            con.execute("ROLLBACK")
        except duckdb.Error:
            pass
        env = environment_failure(e, f"cannot record the run in the warehouse {warehouse}")
        if env is not None:
            raise env from None
        raise
    finally:
        con.close()
    return run_id


def check_usable(warehouse: Path) -> None:
    """Before a run computes anything: the warehouse it will record into opens (an existing file must be a DuckDB
    database, a path must not run through a file), so a run never writes its outputs and then fails to record."""
    warehouse = Path(warehouse)
    for parent in warehouse.parents:
        if parent.exists():
            if not parent.is_dir():
                raise FundformError(f"the run warehouse {warehouse} lies under {parent}, which is a file: set "
                                    "FUNDFORM_WAREHOUSE to a path in a folder (nothing was written)")
            break
    if warehouse.exists():
        try:
            connect(warehouse, read_only=True, wait=0, probe=True).close()
        except FundformError as e:
            if "still in use by another process" in str(e):
                return  # locked by a writer: a warehouse, busy; recording will wait for it as usual
            raise type(e)(f"{e} (nothing was written)") from None


def recorded_ids(warehouse: Path) -> set[str]:
    """Every run id the warehouse holds (empty if there is no warehouse, or it has no tables yet)."""
    if not Path(warehouse).exists():
        return set()
    con = connect(warehouse, read_only=True)
    try:
        return {r[0] for r in con.execute("SELECT run_id FROM runs").fetchall()}
    except duckdb.CatalogException:
        return set()
    finally:
        con.close()


def list_runs(warehouse: Path) -> list[dict]:
    con = connect(warehouse, read_only=True)
    try:
        cur = con.execute("SELECT run_id, formula_id, formula_version, scenario, level, start_year, years, "
                          "created_at, out_dir FROM runs ORDER BY created_at, run_id")
        cols = [d[0] for d in cur.description]
        return [dict(zip(cols, row)) for row in cur.fetchall()]
    except duckdb.CatalogException:  # a warehouse with no tables (an older version's interrupted creation)
        return []
    finally:
        con.close()


READ_ONLY_STATEMENTS = ("SELECT", "EXPLAIN")


def sandboxed(warehouse: Path, readable: list[Path]) -> duckdb.DuckDBPyConnection:
    """A read-only connection for analysts' SQL: the warehouse opened read-only, no extensions installed or
    loaded, the file system closed except the folders in `readable` (the run outputs, for read_parquet), and the
    configuration locked so a query cannot reopen any of it."""
    con = connect(warehouse, read_only=True, config={"autoinstall_known_extensions": "false",
                                                     "autoload_known_extensions": "false"})
    dirs = ", ".join("'" + str(Path(d).resolve()).replace("'", "''") + "/'" for d in readable)
    con.execute(f"SET allowed_directories = [{dirs}]")
    con.execute("SET enable_external_access = false")
    con.execute("SET lock_configuration = true")
    return con


def query(warehouse: Path, sql: str, readable: list[Path] | None = None) -> tuple[list[str], list[tuple]]:
    """Run an analyst's query: SELECT (with WITH, UNION...) and EXPLAIN only, sandboxed (see `sandboxed`)."""
    con = sandboxed(warehouse, readable or [])
    try:
        try:
            statements = con.extract_statements(sql)
        except duckdb.Error as e:
            raise FundformError(f"query failed: {e}") from None
        refused = sorted({st.type.name for st in statements if st.type.name not in READ_ONLY_STATEMENTS})
        if refused or not statements:
            raise FundformError(f"fundform sql runs read-only queries ({', '.join(READ_ONLY_STATEMENTS)}) over the "
                                f"warehouse and the run outputs; refused: {', '.join(refused) or 'an empty query'}. "
                                "Use `fundform export` to write files")
        cur = con.execute(sql)
        if cur.description is None:
            return [], []
        return [d[0] for d in cur.description], cur.fetchall()
    except duckdb.Error as e:
        raise FundformError(f"query failed: {e}") from None
    finally:
        con.close()


def find_run(ref: str, warehouse: Path, out_root: Path) -> Path:
    """A run by folder, or by id (its folder from the warehouse, else out_root/<id>)."""
    p = Path(ref)
    if (p / "allocations.parquet").exists():
        return p
    if Path(warehouse).exists():
        con = connect(warehouse, read_only=True)
        try:
            row = con.execute("SELECT out_dir FROM runs WHERE run_id = ? OR run_id LIKE ? ORDER BY run_id LIMIT 2",
                              [ref, f"{ref}%"]).fetchall()
        except duckdb.Error:
            row = []
        finally:
            con.close()
        if len(row) == 1 and (Path(row[0][0]) / "allocations.parquet").exists():
            return Path(row[0][0])
    if (Path(out_root) / ref / "allocations.parquet").exists():
        return Path(out_root) / ref
    raise FundformError(f"no run '{ref}': give a run's output folder or its id (see `fundform runs`)")
