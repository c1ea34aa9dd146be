"""The output contract read back by PyArrow, Polars and DuckDB; the run warehouse; exports; compare; explain."""

from __future__ import annotations

import json
from decimal import Decimal

import duckdb
import polars as pl
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from cli import app
from fundform.outputs.registry import TABLES
from fundform.outputs.schema import MONEY
from fundform.outputs.warehouse import list_runs, record_run
from fundform.outputs.write import MANIFEST_KEY

runner = CliRunner()


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("run") / "r"
    r = runner.invoke(app, ["run", "--out", str(d), "--quiet", "--no-record"])
    assert r.exit_code == 0, r.output
    return d


@pytest.mark.parametrize("table", ["allocations", "need", "reconciliation", "streams", "waterfall"])
def test_round_trip_pyarrow_polars_duckdb(run_dir, table):
    path = run_dir / f"{table}.parquet"
    contract = TABLES[table]
    schema = pq.read_schema(path)
    assert schema.names == [c.name for c in contract]
    for c in contract:
        f = schema.field(c.name)
        assert f.type == c.type and f.metadata[b"unit"].decode() == c.unit
    manifest = json.loads(schema.metadata[MANIFEST_KEY])
    assert manifest["formula"]["id"] == "fundform-needs" and len(manifest["run_id"]) == 16
    # Polars: the same columns, money as exact decimals
    frame = pl.read_parquet(path)
    assert frame.columns == schema.names
    for c in contract:
        if c.type == MONEY:
            assert frame.schema[c.name] == pl.Decimal(20, 2)
    # DuckDB: the same columns and decimal types, and the same exact sums
    con = duckdb.connect()
    described = con.execute(f"DESCRIBE SELECT * FROM read_parquet('{path}')").fetchall()
    assert [d[0] for d in described] == schema.names
    for (name, dtype, *_), c in zip(described, contract):
        if c.type == MONEY:
            assert dtype == "DECIMAL(20,2)", (name, dtype)
    money = [c.name for c in contract if c.type == MONEY]
    if money:
        col = money[-1]
        assert con.execute(f'SELECT sum("{col}") FROM read_parquet(\'{path}\')').fetchone()[0] == \
            sum(frame[col].to_list(), Decimal(0))
    # DuckDB reads the field and file metadata too
    kv = con.execute(f"SELECT key, value FROM parquet_kv_metadata('{path}')").fetchall()
    assert any(k == b"fundform" for k, _ in kv)


def test_warehouse_records_runs_atomically_and_answers_sql(tmp_path, monkeypatch):
    wh = tmp_path / "w.duckdb"
    monkeypatch.setenv("FUNDFORM_WAREHOUSE", str(wh))
    for level in ("region", "nhs-region"):
        r = runner.invoke(app, ["run", "--level", level, "--out", str(tmp_path / level), "--quiet"])
        assert r.exit_code == 0, r.output
    listed = runner.invoke(app, ["runs", "--json"])
    assert len(json.loads(listed.output)) == 2
    counted = runner.invoke(app, ["sql", "select count(*) as n from allocations", "--json"])
    assert json.loads(counted.output) == [{"n": 9 * 5 + 7 * 5}]
    # recording the same run again replaces its rows, never duplicates them
    record_run(wh, tmp_path / "region")
    assert len(list_runs(wh)) == 2
    # a failed recording leaves nothing behind: break a file and try to record it as a new run
    broken = tmp_path / "broken"
    broken.mkdir()
    for f in (tmp_path / "region").iterdir():
        (broken / f.name).write_bytes(f.read_bytes())
    m = json.loads((broken / "manifest.json").read_text())
    m["run_id"] = "brokenrun0000000"
    (broken / "manifest.json").write_text(json.dumps(m))
    (broken / "streams.parquet").write_bytes(b"not parquet")
    with pytest.raises(Exception):
        record_run(wh, broken)
    n = runner.invoke(app, ["sql", "select count(*) as n from allocations where run_id = 'brokenrun0000000'",
                            "--json"])
    assert json.loads(n.output) == [{"n": 0}] and len(list_runs(wh)) == 2


def test_a_warehouse_made_before_a_column_was_added_takes_the_new_runs(run_dir, tmp_path):
    """A warehouse from before schema 1.8 (allocations without todays_funding) records a new run: the column is
    added, NULL for the earlier runs, the new run's values in it (it failed with a binder error)."""
    wh = tmp_path / "old.duckdb"
    record_run(wh, run_dir)
    con = duckdb.connect(str(wh))
    con.execute("ALTER TABLE allocations DROP COLUMN todays_funding")
    con.execute("UPDATE allocations SET run_id = 'earlierrun000000'")
    con.close()
    record_run(wh, run_dir)
    con = duckdb.connect(str(wh))
    rows = dict(con.execute("SELECT run_id, count(todays_funding) FROM allocations GROUP BY run_id").fetchall())
    con.close()
    assert rows["earlierrun000000"] == 0 and rows[json.loads((run_dir / "manifest.json").read_text())["run_id"]] \
        == pl.read_parquet(run_dir / "allocations.parquet").height


def test_a_run_waits_for_another_process_holding_the_warehouse(run_dir, tmp_path):
    # DuckDB lets one process write a file at a time: a run finishing while a batch records must wait, not fail
    import subprocess
    import sys
    import time

    from fundform.base.errors import FundformError

    wh = tmp_path / "wh.duckdb"
    duckdb.connect(str(wh)).close()
    holder = subprocess.Popen([sys.executable, "-c", "import duckdb,sys,time; c=duckdb.connect(sys.argv[1]); "
                               "print('locked', flush=True); time.sleep(float(sys.argv[2]))", str(wh), "2"],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(FundformError, match="still in use by another process after 0.2 s"):
            record_run(wh, run_dir, wait=0.2)
        t = time.monotonic()
        run_id = record_run(wh, run_dir, wait=30)  # succeeds once the other process lets go
        assert time.monotonic() - t > 0.5
    finally:
        holder.wait(timeout=30)
    assert [r["run_id"] for r in list_runs(wh)] == [run_id]


@pytest.mark.parametrize("fmt, files", [("csv", {"allocations.csv", "waterfall.csv", "manifest.json"}),
                                        ("xlsx", {"fundform.xlsx", "manifest.json"}),
                                        ("parquet", {"allocations.parquet", "manifest.json"})])
def test_export_formats(run_dir, tmp_path, fmt, files):
    r = runner.invoke(app, ["export", str(run_dir), "--format", fmt, "--out", str(tmp_path / fmt)])
    assert r.exit_code == 0, r.output
    assert files <= {p.name for p in (tmp_path / fmt).iterdir()}
    if fmt == "csv":  # money exact to the penny in text
        csv = pl.read_csv(tmp_path / fmt / "allocations.csv", infer_schema_length=0)
        assert csv["grant"].str.contains(r"^-?\d+\.\d{2}$").all()
    if fmt == "xlsx":
        import re
        import zipfile
        with zipfile.ZipFile(tmp_path / fmt / "fundform.xlsx") as z:
            sheets = re.findall(r'<sheet name="([^"]+)"', z.read("xl/workbook.xml").decode())
            styles = z.read("xl/styles.xml").decode()
        assert sheets == ["allocations", "need", "reconciliation", "streams", "waterfall", "cohorts", "manifest"]
        assert "£#,##0.00" in styles  # pounds formatted


def test_hive_partitioned_dataset_accumulates_runs(run_dir, tmp_path):
    hive = tmp_path / "hive"
    r = runner.invoke(app, ["export", str(run_dir), "--format", "parquet", "--out", str(tmp_path / "p"),
                            "--hive", str(hive)])
    assert r.exit_code == 0, r.output
    parts = sorted(p.relative_to(hive).parts[:2] for p in hive.rglob("*.parquet"))
    assert parts[0] == ("formula_id=fundform-needs", "financial_year=2026-27") and len(parts) == 5
    n = duckdb.connect().execute(f"SELECT count(*), count(DISTINCT financial_year) FROM read_parquet("
                                 f"'{hive}/**/*.parquet', hive_partitioning=true)").fetchone()
    assert n == (296 * 5, 5)


def test_compare_winners_and_losers_sum_to_the_change_in_totals(tmp_path):
    out = tmp_path / "cmp.parquet"
    r = runner.invoke(app, ["compare", "fundform-needs", "reform-2017", "--out", str(out), "--json"])
    assert r.exit_code == 0, r.output
    summary = json.loads(r.output)["summary"]
    for row in summary:
        assert row["gains"] - row["losses"] == row["change_in_total"] == row["total_b"] - row["total_a"]
        assert row["winners"] + row["losers"] + row["unchanged"] == 296
    table = pl.read_parquet(out)
    assert table["imd_decile"].null_count() == 0 and set(table["imd_decile"].unique()) == set(range(1, 11))


def test_explain_steps_add_to_the_grant_for_every_area_and_year(default_run):
    w = default_run.waterfall
    sums = w.group_by("area_code", "financial_year").agg(pl.col("amount").sum(), pl.col("cumulative").last())
    j = default_run.allocations.select("area_code", "financial_year", "grant").join(
        sums, on=["area_code", "financial_year"])
    assert j.height == 296 * 5
    assert (j["amount"] == j["grant"]).all() and (j["cumulative"] == j["grant"]).all()
    # and the need steps land on the target allocation
    need_end = w.filter(pl.col("step") == "preventable mortality").join(
        default_run.allocations.select("area_code", "financial_year", "target_allocation"),
        on=["area_code", "financial_year"])
    assert (need_end["cumulative"] == need_end["target_allocation"]).all()


def test_explain_command(tmp_path):
    r = runner.invoke(app, ["explain", "Hartlepool", "--json"])
    assert r.exit_code == 0, r.output
    steps = json.loads(r.output)
    assert [s["step"] for s in steps][:3] == ["equal share per head", "age", "deprivation"]
    ambiguous = runner.invoke(app, ["explain", "shire"])
    assert ambiguous.exit_code == 1 and "matches" in ambiguous.output
