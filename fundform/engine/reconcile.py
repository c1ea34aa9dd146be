"""The identities every run must satisfy, checked exactly in pence, and what the manifest records of the inputs'
years."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import polars as pl

from fundform.engine.settlement.allocate import Settlement
from fundform.engine.settlement.control_total import index_growth
from fundform.engine.settlement.money import round_half_up
from fundform.engine.settlement.transition import ceiling_pence, floor_pence
from fundform.formula.spec import FormulaSpec
from fundform.inputs.dataset import Dataset

# one identity of a year: (financial year, what must hold, expected pence, actual pence)
Identity = tuple[str, str, int, int]


def population_policy(data: Dataset, areas: pl.DataFrame, fy: list[str], frames: list[pl.DataFrame]) -> dict:
    """For the manifest: the population of the run's areas in each settlement year, when it varies by year."""
    if data.population_years is None:
        return {}
    return {"population_by_year": {y: round(float(f["population"].sum()), 1) for y, f in zip(fy, frames)},
            "population_years_in_data": [data.population_years[0], data.population_years[-1]]}


def baseline_sources(data: Dataset, spec: FormulaSpec) -> dict:
    """For the manifest: the year each of today's funding components comes from, where the data records it."""
    if spec.baseline.source != "baseline_table" or "baseline" not in data.tables:
        return {}
    b = data["baseline"]
    cols = {"nhs_core": "nhs_core_source_year", "nhs_primary_medical": "nhs_primary_medical_source_year",
            "adult_social_care": "council_spending_source_year", "public_health": "council_spending_source_year"}
    out = {}
    for comp, col in cols.items():
        if comp in spec.baseline.columns and col in b.columns:
            out[comp] = sorted(b[col].unique().drop_nulls().to_list())
    return {"baseline_component_years": out} if out else {}


def extra_checks(alloc: pl.DataFrame, spec: FormulaSpec, settlements: list[Settlement]) -> list[Identity]:
    """Local-tax identities: adjustments net to zero; spending power = grant + local yield; on the grant basis,
    grants sum to the grant control total."""
    sums = alloc.group_by("financial_year", maintain_order=True).agg(
        pl.col("negative_grant_adjustment").sum(), pl.col("grant").sum(), pl.col("local_yield").sum(),
        pl.col("spending_power").sum(), pl.col("notional_local_tax").sum(), pl.col("control_total").first())
    rows: list[Identity] = []
    for r in sums.iter_rows(named=True):
        y = r["financial_year"]
        rows += [(y, "sum of negative-grant adjustments = 0", 0, r["negative_grant_adjustment"]),
                 (y, "sum of spending power = grants + local yield", r["grant"] + r["local_yield"],
                  r["spending_power"])]
        if spec.local_tax.basis == "grant":
            rows.append((y, "sum of grant = grant control total (envelope - equalised notional resources)",
                         r["control_total"] - r["notional_local_tax"], r["grant"]))
    return rows


def reconcile(alloc: pl.DataFrame, settlements: list[Settlement], target_totals: np.ndarray, released: np.ndarray,
              spec: FormulaSpec, *, extra: Sequence[Identity] = ()) -> pl.DataFrame:
    """The identities every run must satisfy, per year, checked exactly in pence."""
    sums = alloc.group_by("financial_year", maintain_order=True).agg(
        control_total=pl.col("control_total").first(),
        allocation=pl.col("allocation").sum(),
        target=pl.col("target_allocation").sum(),
        baseline=pl.col("baseline").sum(),
        grant=pl.col("grant").sum(),
        notional=pl.col("notional_local_tax").sum(),
        guarantee=pl.col("guarantee_payment").sum(),
    )
    inflation = np.array([index_growth(spec.indices, spec.control_total.inflation_index).get(y, 0.0)
                          for y in sums["financial_year"]])
    below_floor = np.zeros(sums.height)
    above_ceiling = np.zeros(sums.height)
    for s in settlements:
        prev = s.transition.previous.astype(np.float64)
        for i in range(sums.height):  # each year under that year's rule (a version's transition may be dated)
            rule = s.rules[i] if s.rules else s.rule
            if rule.floor is not None:
                below_floor[i] += np.maximum(floor_pence(prev[i], rule, inflation[i]) - s.transition.allocation[i],
                                             0).sum()
            if rule.ceiling is not None:
                above_ceiling[i] += np.maximum(s.transition.allocation[i] - ceiling_pence(prev[i], rule), 0).sum()
    rows = []
    for i, r in enumerate(sums.iter_rows(named=True)):  # a handful of identities per year, not a loop over areas
        y = r["financial_year"]
        rows += [
            (y, "sum of allocation = control total - released by a non-neutral rule",
             r["control_total"] - int(released[i]), r["allocation"]),
            (y, "sum of target allocation = target total", int(target_totals[i]), r["target"]),
            (y, "sum of baseline = control total", r["control_total"], r["baseline"]),
            (y, "sum of grant = allocations + guarantee payments - notional local tax",
             r["allocation"] + r["guarantee"] - r["notional"], r["grant"]),
            (y, "total shortfall below floors = 0", 0, int(below_floor[i])),
            (y, "total excess above ceilings = 0", 0, int(above_ceiling[i])),
        ]
        if len(settlements) > 1:  # parity of esteem: each stream spends its own total, none funds another
            for s in settlements:
                rows.append((y, f"stream {s.name}: its allocations = its own control total - released",
                             int(s.path["control_total"][i + 1]) - int(s.transition.released[i]),
                             int(s.transition.allocation[i].sum())))
    rows += list(extra)
    by_name = {s.name: s for s in settlements}
    for st in spec.streams:
        if st.linked_to:  # linked growth: the stream grows exactly as its link does, year by year
            s, link = by_name[st.name], by_name[st.linked_to]
            for i, y in enumerate(sums["financial_year"]):
                expected = int(round_half_up(s.base_year_total * int(link.path["control_total"][i + 1])
                                             / link.base_year_total))
                rows.append((y, f"stream {st.name}: control total grows with {st.linked_to}", expected,
                             int(s.path["control_total"][i + 1])))
    return pl.DataFrame(rows, schema={"financial_year": pl.String, "check": pl.String, "expected": pl.Int64,
                                      "actual": pl.Int64}, orient="row").with_columns(
        holds=pl.col("expected") == pl.col("actual"))
