"""One allocation, end to end: `compute` is the list of stages, each in its own module.

    checked inputs (fundform.inputs) -> need and today's funding per area and year (fundform.need.frames,
    fundform.baselines) -> settlement per stream (fundform.settlement.allocate; NHS rounds: settlement.rounds) ->
    local resources and grants (fundform.localtax) -> outputs and the identities checked (fundform.reconcile).

`compute` is pure (data and formula in, frames out); `fundform.runs` adds reading, the manifest and the atomic write.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import polars as pl

from fundform.baselines import check_baseline_year, published_round  # noqa: F401  (re-exported)
from fundform.errors import FundformError
from fundform.formula.registry import LoadedFormula
from fundform.formula.spec import FormulaSpec
from fundform.geography import with_level
from fundform.inputs.dataset import Dataset
from fundform.localtax.grants import (
    grant_envelope,
    grants,
    negative_grant_policy,
    notional_pence,
    run_local_resources,
    scenario_degree,
)
from fundform.need.frames import WP_COMPONENTS, area_frame, check_indicator_tables, year_frames  # noqa: F401
from fundform.numeric import fixed_sum
from fundform.outputs.schema import ALLOCATIONS, NEED, STREAMS
from fundform.params import ONE, RunParameters, RunResult, Scenarios
from fundform.reconcile import baseline_sources, extra_checks, population_policy, reconcile
from fundform.settlement.allocate import (  # noqa: F401  (re-exported)
    Settlement,
    _label,
    allocate_streams,
    share_matrix,
    stream_spec,
)
from fundform.settlement.control_total import index_growth, index_levels, settlement_years
from fundform.settlement.money import largest_remainder, round_half_up
from fundform.settlement.rounds import RoundPath, nhs_round_path  # noqa: F401  (re-exported)
from fundform.settlement.transition import BOUND_CEILING, BOUND_FLOOR
from fundform.waterfall import cohort_budgets, need_steps, waterfall

__all__ = ["RunParameters", "RunResult", "compute", "area_frame", "year_frames", "nhs_round_path", "share_matrix",
           "check_indicator_tables", "negative_grant_policy", "run_local_resources", "stream_spec"]


@dataclass
class Settled:
    """Everything before the outputs, for every scenario: the prepared data, the years, the local resources and
    each scenario's equalisation degree, and the settlement of each stream."""

    data: Dataset  # the run's data at its level (all population years)
    ref: Dataset  # the first settlement year's
    years: pl.DataFrame
    growth: dict[str, float]
    local: object
    degree: np.ndarray  # (S, years)
    settlements: list[Settlement]


def prepare(data: Dataset, spec: FormulaSpec, params: RunParameters) -> Dataset:
    """The checks a version makes of the run's years and the data, and the data at the run's level (a deal file's
    areas; a small-area population summed to areas once)."""
    years = settlement_years(params.start_year, params.years)
    outside = sorted(set(years["financial_year"]) - set(spec.effective_years))
    if outside:
        raise FundformError(f"{spec.id} {spec.version} is effective for {', '.join(spec.effective_years)}; the run "
                            f"asks for {', '.join(outside)}")
    check_indicator_tables(spec, data)
    data = with_level(data, params.level, params.deal_file)
    pop = data.tables["population"]
    if pop.height > 200_000 and "small_area_code" in pop.columns:  # need uses area x sex x age: sum it once
        keys = [k for k in ("financial_year", "area_code", "sex", "age") if k in pop.columns]
        pop = pop.group_by(keys).agg(fixed_sum(pl.col("population")).alias("population")).sort(keys)
        data = Dataset(data.directory, {**data.tables, "population": pop}, data.files, data.conversions)
    return data


def settle(data: Dataset, spec: FormulaSpec, params: RunParameters, scen: Scenarios = ONE,
           progress: Callable[[str], None] | None = None) -> Settled:
    """The formula's stages for every scenario at once: local resources and the equalisation each scenario
    applies, then need, control totals and the transition of each stream. A run is one scenario."""
    step = progress or (lambda _msg: None)
    data = prepare(data, spec, params)
    years = settlement_years(params.start_year, params.years)
    fy = years["financial_year"].to_list()
    growth = index_growth(spec.indices, spec.control_total.inflation_index)
    ref = data.for_year(fy[0])  # what is not computed year by year reads the first settlement year's population
    step("local resources")
    local = run_local_resources(ref, spec, params, fy)
    degree = scenario_degree(local, spec, params.years, scen)
    extra = None
    if spec.local_tax.basis == "grant":  # the envelope shared by need is the grant total plus e x sum(N)
        extra = grant_envelope(local, area_frame(ref, spec, params.level)["area_code"].to_list(), fy, degree)
    step("need, targets and transition")
    settlements = allocate_streams(data, spec, params, years, growth, scen, extra, step)
    return Settled(data, ref, years, growth, local, degree, settlements)


def compute(data: Dataset, formula: LoadedFormula, params: RunParameters,
            progress: Callable[[str], None] | None = None) -> RunResult:
    """One run: the stages (`settle`, one scenario) and its outputs."""
    spec = formula.spec
    st = settle(data, spec, params, ONE, progress)
    (progress or (lambda _msg: None))("local tax and grants")
    return _finish(st.ref, spec, params, st.years, st.growth, [s.one() for s in st.settlements], st.local, st.data)


def _finish(data: Dataset, spec: FormulaSpec, params: RunParameters, years: pl.DataFrame, growth: dict[str, float],
            settlements: list[Settlement], local, full: Dataset | None = None) -> RunResult:
    """Pool the streams, deduct local tax, price in real terms, and assemble the output tables. `data` is the
    first settlement year's dataset; need, targets and population per head are each year's own."""
    first = settlements[0]
    areas = first.areas
    fy_list = years["financial_year"].to_list()
    frames = first.frames or [areas] * len(fy_list)
    codes = areas["area_code"]
    for s in settlements[1:]:
        if not s.areas["area_code"].equals(codes):
            raise FundformError(f"stream {s.name} covers different areas from stream {first.name}")
    total = lambda attr: sum(getattr(s.transition, attr) for s in settlements)  # noqa: E731
    targets = sum(s.targets for s in settlements)
    baselines = sum(s.baselines for s in settlements)
    allocation, previous, guarantee = total("allocation"), total("previous"), total("guarantee")
    released = total("released")
    path = first.path.with_columns(control_total=pl.Series(sum(s.path["control_total"].to_numpy()
                                                               for s in settlements)))
    if len(settlements) > 1:  # pooled need: the pooled target share, expressed as persons, year by year
        def pooled(frame: pl.DataFrame, t: int) -> pl.DataFrame:
            pop = frame["population"]
            share = targets[t] / targets[t].sum()
            return frame.with_columns(
                target_share=pl.Series(share), need_weighted_population=pl.Series(share) * pop.sum(),
                age_weighted_population=pl.lit(None, dtype=pl.Float64)).with_columns(
                need_index=pl.col("need_weighted_population") / pop)
        frames = [pooled(f, t) for t, f in enumerate(frames)]
        areas = frames[0]
        labels = np.stack([_label(s.transition.bound) for s in settlements])
        bound_label = np.where((labels == labels[0]).all(axis=0), labels[0], "streams")
        years_to_target = np.nanmax(np.stack([s.transition.years_to_target for s in settlements]), axis=0)
    else:
        bound_label = _label(first.transition.bound)
        years_to_target = first.transition.years_to_target
    # local resources on the pool (money in pence, each published figure rounded once to its own total)
    codes, fy = areas["area_code"].to_list(), years["financial_year"].to_list()
    pence = lambda a: largest_remainder(a * 100, round_half_up((a * 100).sum(axis=1)))  # noqa: E731
    notional, notional_full = notional_pence(local, codes, fy, np.asarray(local.degree, dtype=np.float64)[None])
    notional = notional[0]
    yields = {c: pence(local.array(c, codes, fy)) for c in
              ("council_tax_yield", "precept_flex_yield", "health_tax_yield", "business_rates_discount")}
    pop = np.stack([f["population"].to_numpy() for f in frames])  # (years, areas): each year's residents
    raw_grant = allocation + guarantee - notional
    grant = grants(allocation + guarantee, notional, pop, spec.local_tax)
    local_yield = yields["council_tax_yield"] + yields["health_tax_yield"] - yields["business_rates_discount"]
    spending_power = grant + local_yield
    deflator = index_levels(growth, spec.control_total.inflation_index, params.price_base,
                            years["financial_year"].to_list())["index_level"].to_numpy()
    real_f = grant / deflator[:, None]
    grant_real = largest_remainder(real_f, round_half_up(real_f.sum(axis=1)))
    per_head = round_half_up(grant / pop)

    flat = lambda a: np.asarray(a).reshape(-1)  # noqa: E731  (year-major, areas in code order)
    grid = years.join(areas.select("area_code"), how="cross").sort("year_index", "area_code")
    by_year = pl.concat([f.with_columns(financial_year=pl.lit(y)) for y, f in zip(fy_list, frames)],
                        how="diagonal_relaxed")
    allocations = (
        grid.join(by_year, on=["financial_year", "area_code"], how="left", maintain_order="left")
        .join(path.select("financial_year", "control_total"), on="financial_year", how="left", maintain_order="left")
        .with_columns(
            area_level=pl.lit(params.level),
            target_allocation=pl.Series(flat(targets)),
            baseline=pl.Series(flat(baselines)),
            previous_allocation=pl.Series(flat(previous)),
            allocation=pl.Series(flat(allocation)),
            transition_bound=pl.Series(flat(bound_label)),
            years_to_target=pl.Series(np.tile(years_to_target, params.years)).fill_nan(None),
            guarantee_payment=pl.Series(flat(guarantee)),
            notional_local_tax=pl.Series(flat(notional)),
            notional_local_resources=pl.Series(flat(notional_full)),
            equalisation=pl.Series(flat(-notional)),
            negative_grant_adjustment=pl.Series(flat(grant - raw_grant)),
            **{c: pl.Series(flat(v)) for c, v in yields.items()},
            local_yield=pl.Series(flat(local_yield)),
            spending_power=pl.Series(flat(spending_power)),
            grant=pl.Series(flat(grant)),
            grant_real=pl.Series(flat(grant_real)),
            grant_per_head=pl.Series(flat(per_head)),
        )
        .with_columns(
            distance_from_target=(pl.col("allocation") - pl.col("target_allocation")) / pl.col("target_allocation"),
            year_index=pl.col("year_index").cast(pl.Int32),
        )
        .select([c.name for c in ALLOCATIONS])
    )
    streams = pl.concat([
        grid.join(s.path.select("financial_year", "control_total"), on="financial_year", how="left",
                  maintain_order="left").join(areas.select("area_code", "area_name"), on="area_code", how="left",
                                              maintain_order="left")
        .with_columns(area_level=pl.lit(params.level), stream=pl.lit(s.name),
                      target_allocation=pl.Series(flat(s.targets)), baseline=pl.Series(flat(s.baselines)),
                      previous_allocation=pl.Series(flat(s.transition.previous)),
                      allocation=pl.Series(flat(s.transition.allocation)),
                      transition_bound=pl.Series(flat(_label(s.transition.bound))))
        .with_columns(distance_from_target=(pl.col("allocation") - pl.col("target_allocation"))
                      / pl.col("target_allocation"))
        .select([c.name for c in STREAMS])
        for s in settlements])
    need = areas.with_columns(area_level=pl.lit(params.level)).select([c.name for c in NEED])
    need_spec = settlements[0].spec if len(settlements) == 1 else spec
    by_frame: dict[int, list] = {}  # each year's need steps from its own population (computed once if all alike)
    for y, f in zip(fy_list, frames):
        if id(f) not in by_frame:
            by_frame[id(f)] = need_steps((full or data).for_year(y), need_spec.at(y), params.level, f,
                                         pooled=len(settlements) > 1)
    steps = waterfall(allocations, {y: by_frame[id(f)] for y, f in zip(fy_list, frames)})
    recon = reconcile(allocations, settlements, targets.sum(axis=1), released, spec, extra_checks(
        allocations, spec, settlements))
    fy = years["financial_year"].to_list()
    bounds = np.stack([s.transition.bound for s in settlements])
    policies = {
        "notional_band_d_gbp": local.notional_band_d,
        "equalisation_degree": dict(zip(fy, map(float, local.degree))),
        **local.policies,
        "base_year_total_gbp": sum(s.base_year_total for s in settlements) / 100,
        "start_total_gbp": int(path["control_total"][0]) / 100,
        "start_allocation_year": path["financial_year"][0],
        "streams": [s.name for s in settlements],
        "boundary_conversions": list(data.conversions),
        **population_policy(full or data, areas, fy_list, frames),
        **baseline_sources(data, spec),
        **({"implausible_inputs_allowed": list(data.implausible)} if data.implausible else {}),
        "transition_scale_back": {f"{s.name} {y}" if len(settlements) > 1 else y: float(v)
                                  for s in settlements for y, v in zip(fy, s.transition.scale_back)},
        "released_by_transition_gbp": {y: int(v) / 100 for y, v in zip(fy, released)},
        "guarantee_paid_gbp": {y: int(v) / 100 for y, v in zip(fy, guarantee.sum(axis=1))},
        "areas_at_floor": {y: int((bounds[:, i] == BOUND_FLOOR).any(axis=0).sum()) for i, y in enumerate(fy)},
        "areas_at_ceiling": {y: int((bounds[:, i] == BOUND_CEILING).any(axis=0).sum()) for i, y in enumerate(fy)},
    }
    cohorts = cohort_budgets(data, spec, params.level, allocations)
    return RunResult(allocations, need, recon, path, policies, streams=streams, waterfall=steps, cohorts=cohorts)
