"""The Python API (docs/python-api.md): the same numbers as the command line, as Polars frames."""

from __future__ import annotations

import json
import re

import polars as pl
import pytest
from typer.testing import CliRunner

import fundform
from cli import app
from fundform.base.errors import FundformError
from fundform.base.paths import PROJECT_ROOT

runner = CliRunner()


def test_run_equals_the_command_line_for_the_same_options(isolated):
    r = fundform.run(set={"transition.floor": -0.01}, years=2)
    cli = runner.invoke(app, ["run", "--set", "transition.floor=-0.01", "--years", "2", "--out",
                              str(isolated / "cli"), "--json"])
    assert cli.exit_code == 0, cli.output
    assert r.run_id == json.loads(cli.output)["run_id"]
    written = pl.read_parquet(isolated / "cli" / "allocations.parquet")
    assert r.allocations.equals(written)
    assert r.out_dir is None and not (isolated / "out").exists()  # computed only: nothing written or recorded
    # money reconciles to the penny, as every run's does
    assert r.reconciliation["holds"].all()
    per_year = r.allocations.group_by("financial_year").agg(pl.col("allocation").sum(), pl.col("control_total").first())
    assert (per_year["allocation"] == per_year["control_total"]).all()


def test_a_run_written_and_recorded_is_found_again(isolated):
    r = fundform.run(years=1, record=True)
    assert r.out_dir is not None and (r.out_dir / "manifest.json").exists()
    again = fundform.Run.load(r.run_id)
    assert again.allocations.equals(r.allocations) and again.manifest["run_id"] == r.run_id
    assert "written to" in repr(again)


def test_explain_steps_add_to_the_grant(isolated):
    r = fundform.run(years=1)
    w = fundform.explain(r, "Hartlepool")
    grant = r.allocations.filter(pl.col("area_code") == "E06000001")["grant"][0]
    assert w["amount"].sum() == grant and w["area_code"].unique().to_list() == ["E06000001"]
    with pytest.raises(FundformError, match="--level icb"):
        fundform.explain(r, "NHS Lincolnshire ICB")


def test_compare_and_sweep(isolated):
    c = fundform.compare("fundform-needs", "reform-2017", years=1)
    assert c["area_code"].n_unique() == 296 and {"grant_a", "grant_b", "change"} <= set(c.columns)
    assert c.schema["change"] == pl.Decimal(20, 2)  # pounds, as the command line writes it
    s = fundform.sweep("fundform-needs", {"transition.floor": [-0.01, 0.0]}, years=1)
    assert s.scenarios.height == 2 and s.stats["area_code"].n_unique() == 296
    # each scenario of the sweep is the direct run with the same --set: the least of the two is the sweep's min
    lo = fundform.run(set={"transition.floor": -0.01}, years=1).allocations
    hi = fundform.run(set={"transition.floor": 0.0}, years=1).allocations
    both = lo.select("area_code", a=pl.col("grant").cast(pl.Float64)).join(
        hi.select("area_code", b=pl.col("grant").cast(pl.Float64)), on="area_code")
    stats = s.stats.join(both, on="area_code")
    import numpy as np

    assert np.abs(stats["grant_min"].to_numpy() - np.minimum(stats["a"], stats["b"]).to_numpy()).max() < 0.005
    assert np.abs(stats["grant_max"].to_numpy() - np.maximum(stats["a"], stats["b"]).to_numpy()).max() < 0.005


def test_bad_options_raise_the_command_lines_errors(isolated):
    with pytest.raises(FundformError, match="unknown level 'lsoa'"):
        fundform.run(level="lsoa")
    with pytest.raises(FundformError, match="transition.floor"):
        fundform.run(set={"transition.floor": float("nan")})


def test_the_documented_example_runs(isolated):
    """Every Python block of docs/python-api.md, run as a notebook user would paste it."""
    text = (PROJECT_ROOT / "docs" / "python-api.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert blocks
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, "docs/python-api.md", "exec"), namespace)  # the project's own doc


def test_compare_reads_a_run_already_written_with_the_same_id_instead_of_recomputing(isolated, monkeypatch):
    """A side named by its formula whose run (same formula, inputs, options, packages: the same id) was written is
    read back; a side with other options is computed, once, from data read once."""
    import fundform.studies.pipeline
    from fundform.interfaces.api import comparison

    written = fundform.run(years=1, record=True)
    calls = []
    real = fundform.studies.pipeline.compute
    monkeypatch.setattr(fundform.studies.pipeline, "compute", lambda *a, **k: calls.append(1) or real(*a, **k))
    same = comparison("fundform-needs", "fundform-needs", years=1)
    assert calls == [] and (same.table["change"] == 0).all()
    fresh = comparison("fundform-needs", "fundform-needs", years=1, set={"transition.floor": -0.01})
    assert len(calls) == 2  # a run with another id is computed (each side once)
    by_hand = fundform.run(years=1, set={"transition.floor": -0.01}).allocations
    assert (fresh.frame.sort("area_code")["grant_b"] == by_hand.sort("area_code")["grant"]).all()
    assert written.allocations["grant"].sum() == same.frame["grant_a"].sum()


def test_a_loaded_model_runs_variants_warm_with_the_command_lines_numbers(isolated):
    """fundform.load() checks the data once; each variant's tables equal a cold `fundform run --set` to the penny."""
    m = fundform.load()
    for floor in (-0.01, 0.0):
        warm = m.run(set={"transition.floor": floor}, years=2)
        cli = runner.invoke(app, ["run", "--set", f"transition.floor={floor}", "--years", "2", "--out",
                                  str(isolated / f"cli{floor}"), "-q"])
        assert cli.exit_code == 0, cli.output
        for t in ("allocations", "waterfall", "cohorts", "streams", "need"):
            assert getattr(warm, t).equals(pl.read_parquet(isolated / f"cli{floor}" / f"{t}.parquet")), t


def test_a_changed_file_is_read_and_checked_again(tmp_path, data_copy, monkeypatch):
    """The warm data is held by the content of its files: a run after a file changes sees the change (and its
    checks run again: a broken file is refused, never served from memory)."""
    monkeypatch.setenv("FUNDFORM_OUT_ROOT", str(tmp_path / "out"))
    first = fundform.run(data=data_copy, years=1)
    b = pl.read_parquet(data_copy / "baseline.parquet")
    b.with_columns(pl.when(pl.col("area_code") == "E06000001").then(pl.col("public_health") * 2)
                   .otherwise(pl.col("public_health")).alias("public_health")).write_parquet(
        data_copy / "baseline.parquet")
    second = fundform.run(data=data_copy, years=1)
    assert first.run_id != second.run_id
    assert not first.allocations["baseline"].equals(second.allocations["baseline"])
    pop = pl.read_parquet(data_copy / "population.parquet")
    pop.with_columns(population=-pl.col("population")).write_parquet(data_copy / "population.parquet")
    with pytest.raises(FundformError, match="population"):
        fundform.run(data=data_copy, years=1)


def test_the_api_docstring_examples_run(isolated):
    """The Python API's own examples (fundform/interfaces/api.py's docstring) run as written and give what they
    say."""
    import doctest

    import fundform.interfaces.api as api

    failed, tried = doctest.testmod(api, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert tried >= 5 and failed == 0
