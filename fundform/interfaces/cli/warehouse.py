"""fundform runs, sql and export: the run warehouse listed, queried, and its tables exported."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape

from fundform.interfaces.cli.common import (
    JsonOpt,
    QuietOpt,
    app,
    current_settings,
    out,
)


@app.command()
def runs(json_out: JsonOpt = False) -> None:
    """List the runs recorded in the run warehouse."""
    from rich.table import Table

    from fundform.outputs.warehouse import list_runs

    rows = list_runs(current_settings().warehouse)
    if json_out:
        out.print_json(json.dumps(rows))
        return
    t = Table(title=f"{len(rows)} run(s)")
    for c in ["run id", "formula", "version", "scenario", "level", "years", "created", "output"]:
        t.add_column(c, overflow="fold")
    for r in rows:
        t.add_row(r["run_id"], r["formula_id"], r["formula_version"], r["scenario"] or "", r["level"],
                  f"{r['start_year']} +{r['years']}", r["created_at"] or "", r["out_dir"])
    out.print(t)


@app.command()
def sql(query: Annotated[str, typer.Argument(help="SQL over the warehouse tables runs, allocations, streams, "
                                             "reconciliation, waterfall; read_parquet() reads any output file.")],
        json_out: JsonOpt = False) -> None:
    """Query the run warehouse (DuckDB) and the Parquet outputs."""
    from rich.table import Table

    from fundform.outputs.warehouse import query as run_query

    query_text = query
    s = current_settings()
    cols, rows = run_query(s.warehouse, query_text, readable=[s.out_root])
    if json_out:
        out.print_json(json.dumps([dict(zip(cols, r)) for r in rows], default=str))
        return
    t = Table()
    for c in cols:
        t.add_column(c, overflow="fold")
    for r in rows[:1000]:
        t.add_row(*["" if v is None else str(v) for v in r])
    out.print(t)
    if len(rows) > 1000:
        out.print(f"({len(rows)} rows; first 1000 shown; use --json for all)")


@app.command()
def export(
    run_ref: Annotated[str, typer.Argument(metavar="RUN", help="A run's output folder or its id.")],
    fmt: Annotated[Optional[str], typer.Option("--format", help="csv, xlsx or parquet. [default: xlsx for an --out "
                                               "file ending .xlsx, else parquet]", show_default=False)] = None,
    out_dir: Annotated[Optional[Path], typer.Option("--out", help="Folder to write, or for xlsx a FILE.xlsx. "
                                                    "[default: out/RUN_ID-FORMAT]", show_default=False)] = None,
    hive: Annotated[Optional[Path], typer.Option(help="Also add the run's allocations to this Hive-partitioned "
                                                 "dataset (formula_id=/financial_year=).")] = None,
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Export a run's tables as CSV files, an Excel workbook (a folder's fundform.xlsx, or the FILE.xlsx given), or
    Parquet (optionally into a Hive dataset). A table with no rows in the run has no sheet."""
    from fundform.outputs.export import export_format, export_hive, export_run
    from fundform.outputs.manifest import read_run_manifest
    from fundform.outputs.warehouse import find_run

    fmt = export_format(fmt, out_dir)
    s = current_settings()
    run_dir = find_run(run_ref, s.warehouse, s.out_root)
    run_id = read_run_manifest(run_dir)["run_id"]  # checked: it names the export's folder
    target = export_run(run_dir, fmt, out_dir or s.out_root / f"{run_id}-{fmt}")
    extra = export_hive(run_dir, hive) if hive else []
    if json_out:
        out.print_json(json.dumps({"run_id": run_id, "format": fmt, "out": str(target),
                                   "hive_files": [str(x) for x in extra]}))
    elif not quiet:
        out.print(f"exported run {run_id} as {fmt} to {escape(str(target))}"
                  + (f"; {len(extra)} partition file(s) in {escape(str(hive))}" if extra else ""))
