"""The one gate every drawn number passes (engine.draws): a drawn population or indicator value answers to the same
contracts and plausibility bounds as the same value in its table in a plain run (inputs.checks), hard limits always
and plausibility unless the dataset was read with --allow-implausible, checked per draw before any figure is
written; a refusal names the source, the draw, the area and the value."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

import numpy as np
import polars as pl

from fundform.base.errors import InvalidInput, Problem
from fundform.inputs.contracts import Column
from fundform.inputs.dataset import Dataset
from fundform.inputs.tables import CONTRACTS
from fundform.inputs.uncertainty import Source, UncertaintySpec


class Drawn(Protocol):
    """What the gate reads of a set of draws (engine.draws.DataDraws)."""

    size: int
    codes: list[str]
    pop_factor: Mapping[str, np.ndarray]

GATE_ROWS = 10_000  # draws checked together by the population gate


def column_contract(table: str, column: str | None) -> Column | None:
    """The contract a drawn value of `table.column` answers to: the fixed table's, or a user indicator table's
    (indicators/<name>: every value a positive number), exactly as the dataset's own rows are checked."""
    from fundform.inputs.tables import INDICATOR_PREFIX, indicator_contract

    if table.startswith(INDICATOR_PREFIX) and column:
        return indicator_contract(table.removeprefix(INDICATOR_PREFIX), ["area_code", column]).column(column)
    contract = CONTRACTS.get(table)
    if contract is None or column not in [c.name for c in contract.columns]:
        return None
    return contract.column(column)


def population_gate(out: Drawn, data: Dataset, unc: UncertaintySpec) -> None:
    """Every drawn population passes what a plain run's population passes (inputs.checks.population_problems): no
    row below the table's minimum and every authority with residents, always; the plausibility bounds on an
    authority's and England's population, and on funding and tax base per resident, unless the dataset was read
    with --allow-implausible. The bounds are monotone in an authority's factor, so each authority-year is checked at
    its smallest and largest draw, named by draw, authority, year and value; England's total at the draw that makes
    it largest."""
    from fundform.inputs.checks import population_problems

    if not out.pop_factor:
        return
    src = next((s for s in unc.sources if s.input == "population"), None)
    label = "uncertainty source population" + (f" (file {unc.file_of(src).name})" if src and src.method == "draws"
                                               else f" ({src.method})" if src else "")
    col = CONTRACTS["population"].column("population")
    ref = reference_year(data)
    hard: list[Problem] = []
    soft: list[Problem] = []
    factors = out.pop_factor  # Factors (computed a block of draws at a time) or a user's arrays
    for y in factors:
        f = None if hasattr(factors, "rows") else factors[y]
        pop = (data.for_year(y) if data.population_years else data).tables["population"]
        rows = pl.DataFrame({"area_code": out.codes}).join(
            pop.group_by("area_code").agg(total=pl.col("population").sum(), lo=pl.col("population").min(),
                                          hi=pl.col("population").max()), on="area_code", how="left",
            maintain_order="left")
        total, lo, hi = (rows[c].fill_null(0.0).to_numpy() for c in ("total", "lo", "hi"))
        # a row's drawn value is its value times the factor: the smallest and largest of an authority's rows
        n = len(out.codes)
        size_lo, size_hi = np.full(n, np.inf), np.full(n, -np.inf)
        i_lo, i_hi = np.zeros(n, np.int64), np.zeros(n, np.int64)
        sums = np.empty(out.size)
        bad_rows: list[tuple[int, int, float]] = []
        n_bad = 0
        for start in range(0, out.size, GATE_ROWS):  # a block of draws at a time: 100,000 draws in bounded memory
            # engine.draws.Factors computes a block of rows at a time; a user's arrays are sliced
            fb = f[start:start + GATE_ROWS] if f is not None else getattr(factors, "rows")(start, start + GATE_ROWS)[y]
            row_lo, row_hi = np.minimum(fb * lo, fb * hi), np.maximum(fb * lo, fb * hi)
            bad = ~np.isfinite(fb) | ((row_lo <= col.min) if col.min_exclusive else (row_lo < col.min))
            if col.max is not None:
                bad |= row_hi > col.max
            if bad.any():
                d, a = np.nonzero(bad)
                n_bad += int(bad.sum())
                bad_rows += [(start + int(i), int(j), float(fb[i, j])) for i, j in zip(d[:10], a[:10])]
                continue
            sizes = fb * total[None, :]
            lo_k, hi_k = sizes.argmin(0), sizes.argmax(0)
            cols = np.arange(n)
            lower, higher = sizes[lo_k, cols] < size_lo, sizes[hi_k, cols] > size_hi
            size_lo = np.where(lower, sizes[lo_k, cols], size_lo)
            i_lo = np.where(lower, lo_k + start, i_lo)
            size_hi = np.where(higher, sizes[hi_k, cols], size_hi)
            i_hi = np.where(higher, hi_k + start, i_hi)
            sums[start:start + fb.shape[0]] = sizes.sum(1)
        if n_bad:
            hard.append(Problem(label, "population", f"{n_bad} drawn authority-year(s) with a row outside the "
                                "population table's contract (a factor at or below 0 makes residents negative)",
                                f"every drawn row {col.expectation()} (the population table's own bound)",
                                tuple(f"draw {i}, {out.codes[j]} {y}: factor {v:.6g}" for i, j, v in bad_rows[:10])))
            continue
        ext = pl.DataFrame({
            "area_code": out.codes * 2,
            "population": np.r_[size_lo, size_hi],
            "where": [f"draw {i}, {c} {y}" for i, c in zip(np.r_[i_lo, i_hi], out.codes * 2)]})
        h, so = population_problems(ext, ext if y == ref else None, float(sums.max()),
                                    f"draw {int(sums.argmax())}, {y}", data.tables,
                                    {"population": label})
        hard += h
        soft += so
    problems = hard + ([] if data.allow_implausible else soft)
    if problems:
        raise InvalidInput(problems, str(unc.path) if getattr(unc, "path", None) else "")


def reference_year(data: Dataset) -> str | None:
    """The year whose residents the per-resident bounds read (inputs.checks): the baseline's, else the first."""
    years = data.population_years
    if not years:
        return None
    b = data.tables.get("baseline")
    b_year = b["baseline_year"][0] if b is not None and b.height and "baseline_year" in b.columns else None
    return b_year if b_year in years else sorted(years)[0]


def check_bounds(src: Source, drawn: np.ndarray, codes: list[str], data: Dataset, unc: UncertaintySpec) -> None:
    """A drawn value passes what the same value in its table would: the column's contract (a user indicator's
    too), always, and its plausibility bound unless the dataset was read with --allow-implausible; refused naming
    the source, the draws, the authorities and the values."""
    col = column_contract(src.input, src.column)
    lo, hi = (col.min, col.max) if col else (None, None)
    lo_open = col.min_exclusive if col else False
    where = f"uncertainty source {src.label}" + (f" (file {unc.file_of(src).name})" if src.method == "draws" else "")
    bad = ~np.isfinite(drawn)
    if lo is not None:
        bad |= (drawn <= lo) if lo_open else (drawn < lo)
    if hi is not None:
        bad |= drawn > hi
    problems = []
    if bad.any():
        problems.append(_drawn_problem(where, src, drawn, bad, codes, what="outside the column's contract",
                                       expected=(col.expectation() if col else "finite values")
                                       + f" ({src.input}'s own bound)"))
    plausible = col.plausible if col is not None else None
    if plausible is not None and not data.allow_implausible:
        odd = ~bad & (((drawn < plausible.lo) if plausible.lo is not None else False)
                      | ((drawn > plausible.hi) if plausible.hi is not None else False))
        if np.any(odd):
            problems.append(_drawn_problem(where, src, drawn, odd, codes, what="outside the column's plausibility "
                                           "bound", expected=plausible.text()))
    if problems:
        raise InvalidInput(problems)


def _drawn_problem(where: str, src: Source, drawn: np.ndarray, bad: np.ndarray, codes: list[str], *, what: str,
                   expected: str) -> Problem:
    s, a = np.nonzero(bad)
    rows = tuple(f"draw {i}, {codes[j]}: {drawn[i, j]:.6g}" for i, j in zip(s[:10], a[:10]))
    return Problem(where, src.column or "", f"{int(bad.sum())} drawn value(s) {what}", expected,
                   rows + ((f"... {int(bad.sum()) - 10} more",) if bad.sum() > 10 else ()))
