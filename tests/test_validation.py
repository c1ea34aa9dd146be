"""Broken copies of the dataset: `fundform validate` names file, column and rows for each fault and exits 1;
`fundform run` refuses them, writes nothing, and leaves an earlier output folder byte-for-byte intact."""

from __future__ import annotations

import hashlib
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from cli import app

runner = CliRunner()


def rewrite(path: Path, fn) -> None:
    fn(pl.read_parquet(path)).write_parquet(path)


def drop_column(d):
    rewrite(d / "deprivation.parquet", lambda f: f.drop("imd_average_score"))


def duplicate_area(d):
    rewrite(d / "council_tax.parquet", lambda f: pl.concat([f, f.filter(pl.col("area_code") == "E06000001")]))


def negative_population(d):
    rewrite(d / "population.parquet", lambda f: f.with_columns(
        population=pl.when((pl.col("area_code") == "E07000223") & (pl.col("age") == 40) & (pl.col("sex") == "F"))
        .then(-5.0).otherwise(pl.col("population"))))


def missing_indicator(d):
    rewrite(d / "preventable_mortality.parquet", lambda f: f.with_columns(
        preventable_mortality_rate=pl.when(pl.col("area_code") == "E08000025").then(None)
        .otherwise(pl.col("preventable_mortality_rate"))))


def lookup_share_09(d):
    rewrite(d / "area_lookup.parquet", lambda f: f.with_columns(
        share=pl.when((pl.col("area_code") == "E06000002") & (pl.col("level") == "icb")).then(0.9)
        .otherwise(pl.col("share"))))


def area_absent(d):
    rewrite(d / "baseline.parquet", lambda f: f.filter(pl.col("area_code") != "E09000033"))


def missing_file(d):
    (d / "deprivation.parquet").unlink()


CASES = {
    # fault: (breaker, file named, column named, row or key named)
    "missing column": (drop_column, "deprivation.parquet", "imd_average_score", None),
    "duplicated area": (duplicate_area, "council_tax.parquet", "area_code", "E06000001"),
    "negative population": (negative_population, "population.parquet", "population", "E07000223/F/40"),
    "missing indicator value": (missing_indicator, "preventable_mortality.parquet", "preventable_mortality_rate",
                                "E08000025"),
    "lookup share sum 0.9": (lookup_share_09, "area_lookup.parquet", "share", "E06000002 icb sums to 0.9"),
    "area absent from one table": (area_absent, "baseline.parquet", "area_code", "E09000033"),
    "missing file": (missing_file, "deprivation.parquet", None, None),
}


def tree_digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_bundled_data_is_valid():
    result = runner.invoke(app, ["validate"])
    assert result.exit_code == 0, result.output
    assert "valid" in result.output


@pytest.mark.parametrize("fault", CASES)
def test_validate_names_file_column_and_rows(fault, data_copy):
    breaker, file, column, row = CASES[fault]
    breaker(data_copy)
    result = runner.invoke(app, ["validate", "--data", str(data_copy)])
    assert result.exit_code == 1
    text = " ".join(result.output.split())
    assert file in text
    if column:
        assert f"column '{column}'" in text
    if row:
        assert row in text
    assert "expected" in text


@pytest.mark.parametrize("fault", CASES)
def test_run_on_broken_data_writes_nothing_and_keeps_earlier_output(fault, data_copy, tmp_path):
    out = tmp_path / "out"
    first = runner.invoke(app, ["run", "--out", str(out), "--quiet"])
    assert first.exit_code == 0, first.output
    before = tree_digest(out)
    CASES[fault][0](data_copy)
    result = runner.invoke(app, ["run", "--data", str(data_copy), "--out", str(out), "--quiet"])
    assert result.exit_code == 1
    assert CASES[fault][1] in result.output
    assert tree_digest(out) == before
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []  # no temp folders left


def test_every_problem_is_reported_at_once(data_copy):
    for breaker, *_ in CASES.values():
        breaker(data_copy)
    result = runner.invoke(app, ["validate", "--data", str(data_copy), "--json"])
    assert result.exit_code == 1
    import json
    problems = json.loads(result.output)["problems"]
    files = {p["file"] for p in problems}
    assert {"deprivation.parquet", "council_tax.parquet", "population.parquet", "preventable_mortality.parquet",
            "area_lookup.parquet", "baseline.parquet"} <= files


def test_user_csv_dataset_is_read_and_checked(data_copy):
    # a user may supply tables as CSV; text cells that should be numbers are reported by row
    pop = pl.read_parquet(data_copy / "population.parquet")
    (data_copy / "population.parquet").unlink()
    pop.with_columns(population=pl.col("population").cast(pl.String)).with_columns(
        population=pl.when((pl.col("area_code") == "E06000003") & (pl.col("age") == 7) & (pl.col("sex") == "M"))
        .then(pl.lit("n/a")).otherwise(pl.col("population"))).write_csv(data_copy / "population.csv")
    result = runner.invoke(app, ["validate", "--data", str(data_copy)])
    assert result.exit_code == 1
    assert "population.csv" in result.output and "E06000003/M/7" in " ".join(result.output.split())
