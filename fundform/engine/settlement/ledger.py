"""The medium-term ledger: five-year budgets balanced over the settlement, not annually (Localis 2016).

Each year an area's budget is its allocation. Its balance carries from year to year: an underspend adds to it, an
overspend draws on it. Where the version limits carry-forward (as a share of the year's allocation), an underspend
above the limit is forfeited; where it limits borrowing, an overspend beyond it is a breach, reported. An area
balances if, over the window, it spent no more than it was allocated and never breached its borrowing limit.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl

from fundform.base.errors import InvalidInput, Problem
from fundform.engine.settlement.money import round_half_up
from fundform.formula.spec import Ledger
from fundform.inputs.contracts import Column, TableContract, row_labels
from fundform.inputs.files import read_user_file

ACTUALS = TableContract(
    name="actuals",
    description="Actual spending per area and financial year, for the ledger.",
    source="the user", vintage="-",
    columns=(Column("area_code", "str", "code", "area code at the run's level"),
             Column("financial_year", "str", "financial year", "e.g. 2026/27"),
             Column("spending", "float", "GBP", "actual spending against the allocation", min=0)),
    key=("area_code", "financial_year"), covers_every_area=False,
)


def read_actuals(path: Path) -> pl.DataFrame:
    return read_user_file(path, ACTUALS)


def check_coverage(actuals: pl.DataFrame, allocations: pl.DataFrame, file: str) -> None:
    """Every area and year of the run has actuals; no actuals for unknown areas or years."""
    problems = []
    run_keys = allocations.select("area_code", "financial_year")
    a = actuals.with_row_index("__row")
    unknown_area = a.join(run_keys.select("area_code").unique(), on="area_code", how="anti")
    if unknown_area.height:
        level = allocations["area_level"][0] if "area_level" in allocations.columns else "the run's"
        kinds = {"E12": "region", "E47": "ca", "Q": "icb", "Y": "nhs-region"}
        guess = sorted({next((lv for p, lv in kinds.items() if c.startswith(p)), "") for c in unknown_area["area_code"]}
                       - {""})
        hint = (f"; these look like codes of level {', '.join(guess)}: run at that level (fundform run --level "
                f"{guess[0]}) and give that run") if guess and guess[0] != level else ""
        problems.append(Problem(file, "area_code", f"{unknown_area.height} row(s) for areas not in the run (level "
                                f"{level}){hint}", f"area codes of the run's level, {level}",
                                row_labels(unknown_area, ["area_code"])))
    unknown_year = a.join(run_keys.select("financial_year").unique(), on="financial_year", how="anti")
    if unknown_year.height:
        problems.append(Problem(file, "financial_year", f"{unknown_year.height} row(s) for years outside the run",
                                f"years {', '.join(sorted(run_keys['financial_year'].unique()))}",
                                row_labels(unknown_year, ["area_code", "financial_year"])))
    missing = run_keys.join(actuals, on=["area_code", "financial_year"], how="anti").sort(
        "area_code", "financial_year").with_row_index("__row")
    if missing.height:
        problems.append(Problem(file, "financial_year", f"{missing.height} area-year(s) of the run have no actuals",
                                "one row per area and year of the run",
                                tuple(f"{r[0]} {r[1]}" for r in missing.select("area_code", "financial_year")
                                      .head(50).rows())))
    if problems:
        raise InvalidInput(problems, file)


def ledger(allocations: pl.DataFrame, actuals: pl.DataFrame, rule: Ledger) -> pl.DataFrame:
    """Per area and year: allocation, spending, the year's under/overspend, the balance carried, what a limit
    forfeited or breached; per area (on every row) whether it balances over the window. Money in int pence."""
    frame = allocations.select("area_code", "area_name", "financial_year", "year_index",
                               allocation=(pl.col("allocation") * 100).cast(pl.Int64)).join(
        actuals.select("area_code", "financial_year", "spending"), on=["area_code", "financial_year"], how="left",
        maintain_order="left").sort("area_code", "year_index")
    areas = frame["area_code"].unique(maintain_order=True)
    n, years = areas.len(), frame["year_index"].n_unique()
    alloc = frame["allocation"].to_numpy().reshape(n, years)
    spend = round_half_up(frame["spending"].to_numpy().reshape(n, years) * 100)
    carry_cap = (np.floor(alloc * rule.carry_forward_limit.value) if rule.carry_forward_limit
                 else np.full(alloc.shape, np.inf))
    borrow_cap = (np.floor(alloc * rule.borrowing_limit.value) if rule.borrowing_limit
                  else np.full(alloc.shape, np.inf))
    balance = np.zeros(n)
    carried_in, carried_out, forfeited, breach = (np.zeros(alloc.shape) for _ in range(4))
    for t in range(years):  # the balance carries year to year: a recurrence, vectorised over areas
        carried_in[:, t] = balance
        raw = balance + alloc[:, t] - spend[:, t]
        forfeited[:, t] = np.maximum(raw - carry_cap[:, t], 0)
        breach[:, t] = np.maximum(-raw - borrow_cap[:, t], 0)
        balance = np.clip(raw, -borrow_cap[:, t], carry_cap[:, t])
        carried_out[:, t] = balance
    over_window = alloc.sum(axis=1) - spend.sum(axis=1)
    balances = (over_window >= 0) & (breach.sum(axis=1) == 0)
    first_breach = [next((frame["financial_year"][i * years + t] for t in range(years) if breach[i, t] > 0), None)
                    for i in range(n)]
    as_int = lambda a: pl.Series(a.reshape(-1).astype(np.int64))
    status = np.where(balances, "balances", np.where(over_window < 0, "overspent over the window",
                                                     "breaches the borrowing limit"))
    return frame.with_columns(
        spending=as_int(spend), in_year=as_int(alloc - spend), carried_in=as_int(carried_in),
        carried_out=as_int(carried_out), forfeited=as_int(forfeited), borrowing_breach=as_int(breach),
        window_balance=pl.Series(np.repeat(over_window, years)),
        balances=pl.Series(np.repeat(balances, years)),
        status=pl.Series(np.repeat(status, years)),
        first_breach_year=pl.Series([fb for fb in first_breach for _ in range(years)], dtype=pl.String),
    )
