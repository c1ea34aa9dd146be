"""Why an area gets what it gets: the waterfall from an equal share per head to its grant, step by step.

The need steps are shares of the year's target total as the formula adds one thing at a time: population alone,
then the age cost curve, then each need indicator in the version's order (each share is the need-weighted
population with the multipliers so far, as a share of England's). Each step is the change in the area's share,
in pence, with the last need step landing exactly on the published target allocation. Then the money steps: the
transition (allocation - target), any guarantee payment, the local tax deduction and any negative-grant adjustment.
Every step is a difference of exact pence figures, so the steps add up to the grant to the penny.
"""

from __future__ import annotations

from functools import partial

import numpy as np
import polars as pl

from fundform.base.errors import InternalError
from fundform.engine.geography import roll_up
from fundform.engine.need.axis import version_need
from fundform.engine.settlement.money import round_half_up
from fundform.formula.spec import FormulaSpec, model_key
from fundform.inputs.dataset import Dataset


def need_steps(data: Dataset, spec: FormulaSpec, level: str, areas: pl.DataFrame, pooled: bool) -> list[tuple[str, np.ndarray]]:
    """(step name, cumulative share of the target total) for each need step, areas in `areas` order: the need's own
    steps (`need.axis`: age alone, then each indicator's multiplier in the version's order), summed to the level."""
    pop = areas["population"].to_numpy()
    steps = [("equal share per head", pop / pop.sum())]
    if pooled or spec.need.method != "age_cost_curve" or spec.baseline.target_shares != "need":
        label = "need (pooled across streams)" if pooled else "need weighting"
        return steps + [(label, areas["target_share"].to_numpy())]
    return steps + data.memo(("need_steps", model_key(spec.need), level, tuple(areas["area_code"])),
                             lambda: _need_steps(data, spec, level, areas))


def _need_steps(data: Dataset, spec: FormulaSpec, level: str, areas: pl.DataFrame) -> list[tuple[str, np.ndarray]]:
    need = version_need(data, spec.need)
    indicators = spec.need.indicators
    names = ["age"] + [i.name.replace("_", " ") for i in indicators]
    ltla = pl.LazyFrame({"area_code": need.inputs.codes,
                         **{f"step{k}": need.cumulative(k)[0] for k in range(len(indicators) + 1)}})
    cols = [f"step{k}" for k in range(len(indicators) + 1)]
    by_level = areas.select("area_code").join(roll_up(ltla, data.lazy("area_lookup"), level, cols).collect(),
                                              on="area_code", how="left", maintain_order="left")
    return [(name, by_level[c].to_numpy() / by_level[c].sum()) for name, c in zip(names, cols)]


def waterfall(allocations: pl.DataFrame, steps_by_year: dict[str, list[tuple[str, np.ndarray]]] | list
              ) -> pl.DataFrame:
    """Long table: one row per area, year and step, with the step's amount and the running total (int pence).
    Need steps are each year's own (that year's population), or one list for every year."""
    a = allocations.sort("year_index", "area_code")
    years = a["financial_year"].unique(maintain_order=True).to_list()
    n = a.height // len(years)
    col = lambda c: a[c].to_numpy().reshape(len(years), n)  # (years, areas)
    target, money = col("target_allocation"), [
        ("transition", col("allocation") - col("target_allocation")), ("guarantee payment", col("guarantee_payment")),
        ("local tax deduction", -col("notional_local_tax")), ("negative-grant rule", col("negative_grant_adjustment"))]
    names: list[str] | None = None
    cums = []
    for t, y in enumerate(years):
        steps = steps_by_year[y] if isinstance(steps_by_year, dict) else steps_by_year
        total = target[t].sum()
        cumulative = [round_half_up(share * total) for _, share in steps[:-1]]
        cumulative.append(target[t])  # the need steps land exactly on the target
        running = target[t]
        for _, amount in money:
            running = running + amount[t]
            cumulative.append(running)
        year_names = [s for s, _ in steps] + [m for m, _ in money]
        if names is not None and year_names != names:
            raise InternalError("internal error: the waterfall's steps differ between years")
        names = year_names
        cums.append(np.stack(cumulative).astype(np.int64))  # (steps, areas)
    cum = np.stack(cums)  # (years, steps, areas)
    amount = np.diff(cum, axis=1, prepend=0)
    if names is None:
        raise InternalError("internal error: a waterfall of no years")
    k = len(names)
    keys = a.select("area_code", "area_name", "area_level", "financial_year", "year_index")
    # rows year-major, then area, then step: the order the sort below would give
    order = lambda arr: arr.transpose(0, 2, 1).reshape(-1)
    return keys.select(pl.all().repeat_by(k)).explode(keys.columns).with_columns(
        step_order=pl.Series(np.tile(np.arange(1, k + 1, dtype=np.int32), a.height)),
        step=pl.Series(names * a.height), amount=pl.Series(order(amount)), cumulative=pl.Series(order(cum)))


def cohort_budgets(data: Dataset, spec: FormulaSpec, level: str, allocations: pl.DataFrame) -> pl.DataFrame:
    """Each cohort's part of every area's grant: its share of the area's age-weighted population under the version's
    age cost curve, each year from that year's residents (as every quantity of the year), the rest of the grant in
    'rest'; the parts add to the grant to the penny (largest remainder). Empty where need has no age detail
    (practice-based need) or the version names no cohorts."""
    from fundform.base.numeric import fixed_sum
    from fundform.engine.need.weighted_population import age_weights
    from fundform.engine.settlement.money import apportion

    cohorts = spec.cohorts
    if spec.need.method != "age_cost_curve" or not cohorts:
        return pl.DataFrame(schema={"area_code": pl.String, "area_name": pl.String, "area_level": pl.String,
                                    "financial_year": pl.String, "year_index": pl.Int32, "cohort": pl.String,
                                    "ages": pl.String, "share": pl.Float64, "amount": pl.Int64})
    cols = {c.name: pl.col("age").is_between(c.age_from, c.age_to) for c in cohorts}
    a = allocations.sort("year_index", "area_code")
    years = a["financial_year"].unique(maintain_order=True).to_list()

    def year_shares(y: str) -> np.ndarray:
        """(areas, cohorts + rest) each cohort's share of the area's age-weighted population in year y."""
        w = age_weights(spec.at(y).need.curve)
        by_age = data.for_year(y).lazy("population").group_by("area_code", "age").agg(
            fixed_sum(pl.col("population")).alias("p"))
        tagged = by_age.join(w.lazy(), on="age").with_columns(awp=pl.col("p") * pl.col("age_weight"))
        ltla = tagged.group_by("area_code").agg(
            fixed_sum(pl.col("awp")).alias("total"),
            *[fixed_sum(pl.when(cond).then(pl.col("awp")).otherwise(0.0)).alias(n) for n, cond in cols.items()])
        lvl = roll_up(ltla, data.lazy("area_lookup"), level, ["total", *cols]).collect()
        order = a.filter(pl.col("financial_year") == y).select("area_code").join(lvl, on="area_code", how="left")
        sh = np.stack([order[n].to_numpy() / order["total"].to_numpy() for n in cols], axis=-1)
        return np.concatenate([sh, 1 - sh.sum(axis=-1, keepdims=True)], axis=-1)

    # each year's shares depend on the data, the curve, the cohorts and the areas alone: derived once per dataset
    key = lambda y: ("cohort_shares", y, model_key(spec.at(y).need.curve), repr(cohorts), level,
                     tuple(a.filter(pl.col("financial_year") == y)["area_code"]))
    shares = np.stack([data.memo(key(y), partial(year_shares, y)) for y in years])  # (years, areas, C + 1)
    grant = a["grant"].to_numpy().reshape(len(years), -1)
    parts = apportion(grant, shares)  # (years, areas, C + 1): the one rule every money split follows
    names = [c.name for c in cohorts] + ["rest"]
    ages = [f"{c.age_from}-{c.age_to}" if c.age_to < 90 else f"{c.age_from}+" for c in cohorts] + ["other"]
    k = len(names)
    base = a.select("area_code", "area_name", "area_level", "financial_year", "year_index")
    return (base.select(pl.all().repeat_by(k)).explode(base.columns)
            .with_columns(cohort=pl.Series(names * a.height), ages=pl.Series(ages * a.height),
                          share=pl.Series(shares.reshape(-1)), amount=pl.Series(parts.reshape(-1))))
