"""The medium-term ledger: balances carried within the settlement, limits, and malformed actuals."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from typer.testing import CliRunner

from cli import app
from fundform.base.errors import InvalidInput
from fundform.engine.settlement.ledger import check_coverage, ledger
from fundform.formula.spec import Ledger

runner = CliRunner()
Q = lambda v, unit="ratio": {"value": v, "unit": unit, "source": "assumption: a test value"}
C = lambda v: Q(v, "change per year")  # (a floor or ceiling)
Y = lambda v: Q(v, "years")
YEARS = ["2026/27", "2027/28", "2028/29"]


def run_frame(allocs: dict[str, list[int]]) -> pl.DataFrame:
    """A run's allocations (pounds, as the Parquet export holds them) for a few areas."""
    from decimal import Decimal
    rows = [(a, a, y, i + 1, Decimal(v)) for a, vs in allocs.items() for i, (y, v) in enumerate(zip(YEARS, vs))]
    return pl.DataFrame(rows, schema={"area_code": pl.String, "area_name": pl.String, "financial_year": pl.String,
                                      "year_index": pl.Int32, "allocation": pl.Decimal(20, 2)}, orient="row")


def spend_frame(spend: dict[str, list[float]]) -> pl.DataFrame:
    return pl.DataFrame([(a, y, v) for a, vs in spend.items() for y, v in zip(YEARS, vs)],
                        schema={"area_code": pl.String, "financial_year": pl.String, "spending": pl.Float64},
                        orient="row")


def test_underspends_carry_forward_and_an_area_balances_over_the_window():
    # A overspends 10 in year 1 and makes it up in year 3; B overspends 5 a year and never does
    table = ledger(run_frame({"A": [100, 100, 100], "B": [100, 100, 100]}),
                   spend_frame({"A": [110, 100, 85], "B": [105, 105, 105]}), Ledger())
    a = table.filter(pl.col("area_code") == "A")
    assert a["carried_out"].to_list() == [-1000, -1000, 500]  # pence
    assert a["carried_in"].to_list()[1:] == a["carried_out"].to_list()[:-1]
    assert a["status"][0] == "balances" and a["window_balance"][0] == a["in_year"].sum() == 500
    assert table.filter(pl.col("area_code") == "B")["status"][0] == "overspent over the window"


def test_limits_forfeit_excess_underspend_and_flag_borrowing_breaches():
    rule = Ledger(carry_forward_limit=Q(0.05), borrowing_limit=Q(0.05))
    table = ledger(run_frame({"A": [100, 100, 100], "B": [100, 100, 100]}),
                   spend_frame({"A": [90, 100, 100], "B": [110, 90, 90]}), rule)
    a = table.filter(pl.col("area_code") == "A")
    assert a["forfeited"].to_list() == [500, 0, 0] and a["carried_out"].to_list() == [500, 500, 500]
    b = table.filter(pl.col("area_code") == "B")
    assert b["borrowing_breach"].to_list() == [500, 0, 0]
    assert b["status"][0] == "breaches the borrowing limit" and b["first_breach_year"][0] == "2026/27"


@pytest.mark.parametrize("fault, column, row", [
    ("missing year", "financial_year", "A 2028/29"),
    ("unknown area", "area_code", "ZZ"),
])
def test_malformed_actuals_are_named(fault, column, row):
    alloc = run_frame({"A": [100, 100, 100]})
    spend = spend_frame({"A": [100, 100, 100]})
    if fault == "missing year":
        spend = spend.filter(pl.col("financial_year") != "2028/29")
    else:
        spend = pl.concat([spend, spend_frame({"ZZ": [1, 1, 1]})])
    with pytest.raises(InvalidInput) as e:
        check_coverage(spend, alloc, "actuals.csv")
    assert "actuals.csv" in str(e.value) and f"column '{column}'" in str(e.value) and row in str(e.value)


def test_ledger_command_on_a_run(tmp_path):
    r = runner.invoke(app, ["run", "--level", "region", "--years", "3", "--out", str(tmp_path / "run"), "--quiet"])
    assert r.exit_code == 0
    alloc = pl.read_parquet(tmp_path / "run" / "allocations.parquet")
    spend = alloc.select("area_code", "financial_year", spending=pl.col("allocation").cast(pl.Float64))
    spend.write_csv(tmp_path / "ok.csv")
    assert runner.invoke(app, ["ledger", str(tmp_path / "ok.csv"), "--run", str(tmp_path / "run")]).exit_code == 0
    spend.with_columns(spending=pl.when(pl.col("area_code") == "E12000007").then(-1.0)
                       .otherwise(pl.col("spending"))).write_csv(tmp_path / "neg.csv")
    neg = runner.invoke(app, ["ledger", str(tmp_path / "neg.csv"), "--run", str(tmp_path / "run")])
    assert neg.exit_code == 1 and "column 'spending'" in neg.output and "E12000007" in neg.output
    over = spend.with_columns(spending=pl.col("spending") * np.where(spend["area_code"] == "E12000001", 1.01, 1.0))
    over.write_csv(tmp_path / "over.csv")
    res = runner.invoke(app, ["ledger", str(tmp_path / "over.csv"), "--run", str(tmp_path / "run"), "--json"])
    assert res.exit_code == 1 and "E12000001" in res.output and "overspent over the window" in res.output
