"""Exporting a run's tables as CSV, as an Excel workbook, as Parquet, or into a Hive-partitioned Parquet dataset.

Every format carries the same tables. CSV and Excel carry money as exact two-place decimals; the workbook has one
formatted sheet per table (pounds formatted, headers frozen) and a sheet with the manifest. A Hive-partitioned
dataset accumulates many runs' allocations under formula_id=<id>/financial_year=<YYYY-YY>/<run id>.parquet (the
year's slash becomes a hyphen in directory names), for Treasury models that read a whole dataset at once.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl
import pyarrow.parquet as pq

if TYPE_CHECKING:
    import pyarrow as pa

from fundform.base.errors import FundformError
from fundform.base.failpoints import failpoint
from fundform.outputs.manifest import read_run_manifest
from fundform.outputs.registry import TABLES
from fundform.outputs.schema import MONEY
from fundform.outputs.write import WORKBOOK_MARK, atomic_write_dir, atomic_write_file, write_parquet

FORMATS = ("csv", "xlsx", "parquet")


def run_tables(run_dir: Path) -> dict[str, Path]:
    return {name: run_dir / f"{name}.parquet" for name in TABLES if (run_dir / f"{name}.parquet").exists()}


def _flatten(d: dict[str, Any] | list[Any], prefix: str = "") -> list[tuple[str, Any]]:
    """The manifest as key, value rows a person reads in a spreadsheet: nested tables and lists of records become
    dotted keys (inputs.0.file), a list of plain values one comma-separated cell, never raw JSON."""
    rows: list[tuple[str, Any]] = []
    items = d.items() if isinstance(d, dict) else enumerate(d)
    for k, v in items:
        key = f"{prefix}{k}"
        if isinstance(v, dict) or (isinstance(v, list) and any(isinstance(x, (dict, list)) for x in v)):
            rows += _flatten(v, key + ".") if v else [(key, "")]
        elif isinstance(v, list):
            rows.append((key, ", ".join(str(x) for x in v)))
        else:
            rows.append((key, v))
    return rows


def export_format(fmt: str | None, out: Path | None) -> str:
    """The format an export writes: as given, or from the --out file's suffix (.xlsx), else parquet. A format and a
    file suffix that disagree, or a file name for the formats that write a folder of files, are refused."""
    suffix = out.suffix.lower() if out is not None else ""
    if fmt is not None and fmt not in FORMATS:
        raise FundformError(f"unknown format '{fmt}' (choose one of {', '.join(FORMATS)})")
    if suffix == ".xlsx":
        if fmt not in (None, "xlsx"):
            raise FundformError(f"--out {out} names an Excel workbook but --format is {fmt}: give --format xlsx, or "
                                "a folder for the csv and parquet files (nothing was written)")
        return "xlsx"
    if out is not None and suffix in (".csv", ".parquet") and not (out.exists() and out.is_dir()):
        raise FundformError(f"--out {out}: a {suffix[1:]} export writes one file per table into a folder: give a "
                            "folder name (nothing was written)")
    return fmt or "parquet"


def export_run(run_dir: Path, fmt: str, out_dir: Path) -> Path:
    """The run's tables as `fmt` into the folder `out_dir` (written whole or not at all), or, for xlsx with an
    `out_dir` ending .xlsx, that one workbook file."""
    if fmt not in FORMATS:
        raise FundformError(f"unknown format '{fmt}' (choose one of {', '.join(FORMATS)})")
    tables = run_tables(run_dir)
    if fmt == "xlsx" and Path(out_dir).suffix.lower() == ".xlsx":
        failpoint("export.write", out_dir)
        return atomic_write_file(Path(out_dir), _workbook(tables, json.loads((run_dir / "manifest.json").read_text())),
                                 "workbook")
    manifest_text = (run_dir / "manifest.json").read_text()
    files: dict[str, pa.Table | str | bytes] = {"manifest.json": manifest_text}
    if fmt == "parquet":
        for name, path in tables.items():
            files[f"{name}.parquet"] = pq.read_table(path)
    elif fmt == "csv":
        for name, path in tables.items():
            files[f"{name}.csv"] = pl.read_parquet(path).write_csv()
    else:
        files["fundform.xlsx"] = _workbook(tables, json.loads(manifest_text))
    failpoint("export.write", out_dir)
    return atomic_write_dir(out_dir, files)


def workbook_of(run_dir: Path) -> bytes:
    """A written run's Excel workbook: every table and the manifest, as `fundform export --format xlsx` writes."""
    return _workbook(run_tables(run_dir), json.loads((run_dir / "manifest.json").read_text()))


def _workbook(tables: dict[str, Path], manifest: dict) -> bytes:
    import io

    import xlsxwriter

    buf = io.BytesIO()
    wb = xlsxwriter.Workbook(buf, {"in_memory": True})
    wb.set_properties({"title": f"fundform run {manifest.get('run_id', '')}", "author": "fundform",
                       "comments": f"{WORKBOOK_MARK} (every table of the run and its manifest)"})
    head = wb.add_format({"bold": True, "bg_color": "#DDE4EE", "border": 1, "text_wrap": True, "valign": "top"})
    gbp = wb.add_format({"num_format": "£#,##0.00;[Red]-£#,##0.00"})
    num = wb.add_format({"num_format": "#,##0.######"})
    people, person = _population_of(tables)
    for name, path in tables.items():
        table = pq.read_table(path)
        frame = pl.DataFrame(table)
        # a column with no value in this run (the NHS components of a version without them) is left out of the
        # workbook; the CSV and Parquet exports keep every column of the output contract
        if frame.height == 0:  # a table with no rows in this run (letter of a version not from NHS rounds;
            continue          # cohorts of a version without cohorts): no sheet, never an empty one
        empty = [c for c in frame.columns if frame[c].null_count() == frame.height and frame.height]
        table = table.drop_columns(empty)
        frame = frame.drop(empty)
        ws = wb.add_worksheet(name[:31])
        for j, field in enumerate(table.schema):
            unit = (field.metadata or {}).get(b"unit", b"").decode()
            if unit == "GBP per head":  # the run's own people: per resident or per registered patient
                unit = f"GBP per {person}"
            elif field.name == "population" and unit == "persons":
                unit = people
            ws.write(0, j, f"{field.name}\n({unit})" if unit else field.name, head)
            description = (field.metadata or {}).get(b"description", b"").decode()
            if description:  # the data dictionary's words on the heading, as a note
                ws.write_comment(0, j, description, {"x_scale": 2, "y_scale": 1.2})
            money = field.type == MONEY
            ws.set_column(j, j, 16 if money else max(10, min(40, len(field.name) + 2)), gbp if money else None)
            values = frame[field.name].to_list()
            for i, v in enumerate(values, start=1):  # the workbook is written cell by cell; xlsxwriter has no bulk API
                if v is None:
                    continue
                if money:
                    ws.write_number(i, j, float(v), gbp)  # Excel holds doubles; exact decimals are in CSV/Parquet
                elif isinstance(v, bool):  # before numbers: a bool is an int to Python, TRUE/FALSE to Excel
                    ws.write_boolean(i, j, v)
                elif isinstance(v, (int, float)):
                    ws.write_number(i, j, v, num)
                else:
                    ws.write_string(i, j, str(v))
        ws.freeze_panes(1, 0)
        ws.autofilter(0, 0, frame.height, len(table.schema) - 1)
    _letter_sheet(wb, tables, manifest, head, gbp)
    ws = wb.add_worksheet("manifest")
    ws.write_row(0, 0, ["key", "value"], head)
    for i, (k, v) in enumerate(_flatten(manifest), start=1):
        ws.write_string(i, 0, k)
        if isinstance(v, bool):
            ws.write_boolean(i, 1, v)
        elif isinstance(v, (int, float)):
            ws.write_number(i, 1, v)
        elif v is not None:
            ws.write_string(i, 1, str(v))
    ws.set_column(0, 0, 45)
    ws.set_column(1, 1, 90)
    wb.close()
    return buf.getvalue()


def _letter_sheet(wb: Any, tables: dict[str, Path], manifest: dict[str, Any], head: Any, gbp: Any) -> None:
    """A version of several streams: the allocation letter, one row per area and year, a column per stream (its
    title, pounds) and their sum, which is the area's allocation (fundform.outputs.letter)."""
    from fundform.outputs.letter import TOTAL, letter, line_columns, titles_of

    wide = letter(pl.read_parquet(tables["streams"]), titles_of(manifest)) if "streams" in tables else None
    if wide is None:
        return
    nhs = "letter" in tables and pq.read_metadata(tables["letter"]).num_rows > 0  # its own sheet "letter"
    ws = wb.add_worksheet("letter, by area" if nhs else "letter")
    money = [*line_columns(wide), TOTAL]
    for j, c in enumerate(wide.columns):
        ws.write(0, j, f"{c}\n(GBP)" if c in money else c, head)
        ws.set_column(j, j, 18 if c in money else 14, gbp if c in money else None)
    ws.write_comment(0, len(wide.columns) - 1, "each stream's allocation added: the area's allocation to the penny "
                     "(allocations.allocation)", {"x_scale": 2})
    for i, row in enumerate(wide.iter_rows(), start=1):
        for j, (c, v) in enumerate(zip(wide.columns, row)):
            if c in money:
                ws.write_number(i, j, v / 100, gbp)  # whole pence to pounds, correctly rounded
            else:
                ws.write_string(i, j, str(v))
    ws.freeze_panes(1, 2)


def _population_of(tables: dict[str, Path]) -> tuple[str, str]:
    """Whom the run counts: registered patients where its need is practice-based (need.parquet's NHS weighted
    populations hold values), else residents."""
    from fundform.outputs.text import population_words

    people, per = population_words(pl.read_parquet(tables["need"]) if "need" in tables else None)
    return people, per.removeprefix("per ")


def export_hive(run_dir: Path, dataset: Path) -> list[Path]:
    """Add this run's allocations to a Hive-partitioned dataset (by formula and financial year)."""
    table = pq.read_table(run_dir / "allocations.parquet")
    manifest = read_run_manifest(run_dir)
    frame = pl.DataFrame(table)
    written = []
    for year in frame["financial_year"].unique().sort().to_list():
        part = Path(dataset) / f"formula_id={manifest['formula']['id']}" / f"financial_year={year.replace('/', '-')}"
        part.mkdir(parents=True, exist_ok=True)
        target = part / f"{manifest['run_id']}.parquet"
        tmp = part / f".{manifest['run_id']}.parquet.tmp-{os.getpid()}"
        idx = [i for i, y in enumerate(table.column("financial_year").to_pylist()) if y == year]
        write_parquet(table.take(idx).drop_columns(["financial_year"]), tmp)  # the partition holds the year
        tmp.replace(target)
        written.append(target)
    return written
