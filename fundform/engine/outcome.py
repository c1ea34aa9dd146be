"""The settlement's one outcome: every stage of the formula for every scenario at once, arrays (scenarios, years,
areas). A run is one scenario that sets nothing (`pipeline.compute` turns scenario 0 into the output tables); a
sweep settles chunks of scenarios (`sweeps`); the explorer evaluates one scenario. All of them read the same
`Outcome`, so no figure is computed two ways.

    checked inputs -> `prepare` (the run's level, the version's checks) -> `settle`: local resources and each
    scenario's equalisation degree, need, control totals and the transition of each stream -> `outcome`: the
    streams pooled, notional local tax deducted, grants after the negative-grant rule, priced in real terms, per head.

What follows the transition lives here and nowhere else (a test checks the imports): a new quantity computed from
the settlement is one property of `Outcome`; a new output table is one entry of `fundform.outputs.registry`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import polars as pl

from fundform.base.errors import FundformError, present
from fundform.base.numeric import fixed_sum
from fundform.engine.context import Settle
from fundform.engine.geography import roll_up, with_level
from fundform.engine.localtax.grants import grant_envelope, grants, notional_pence, run_local_resources, scenario_degree
from fundform.engine.localtax.resources import LocalResources
from fundform.engine.need.frames import area_frame, check_indicator_tables
from fundform.engine.params import RunParameters
from fundform.engine.scenarios import ONE, Scenarios
from fundform.engine.settlement.allocate import Settlement, allocate_streams
from fundform.engine.settlement.control_total import index_growth, index_levels, settlement_years
from fundform.engine.settlement.money import round_half_up, split_rounded
from fundform.engine.settlement.transition import BOUND_CEILING, BOUND_FLOOR
from fundform.formula.spec import FormulaSpec
from fundform.inputs.dataset import Dataset

YIELDS = ("council_tax_yield", "precept_flex_yield", "health_tax_yield", "business_rates_discount")


@dataclass(kw_only=True)
class Settled:
    """Everything up to the transition, for every scenario: the prepared data, the years, the local resources and
    each scenario's equalisation degree, and the settlement of each stream."""

    data: Dataset  # the run's data at its level (all population years)
    ref: Dataset  # the first settlement year's
    years: pl.DataFrame
    growth: dict[str, float]
    local: LocalResources
    degree: np.ndarray  # (S, years): the one source of the equalisation degree, a run's and a sweep's
    settlements: list[Settlement]
    population: np.ndarray | None = None  # (S, years, areas) each draw's residents, on the data axis; else None


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
        data = dataclasses.replace(data, tables={**data.tables, "population": pop})  # every other field kept
    return data


def settle(data: Dataset, spec: FormulaSpec, params: RunParameters, scen: Scenarios = ONE,
           progress: Callable[[str], None] | None = None) -> Settled:
    """The formula's stages up to the transition for every scenario at once: local resources and the equalisation
    each scenario applies, then need, control totals and the transition of each stream."""
    step = progress or (lambda _msg: None)
    # what the stages derive from these scenarios is this settlement's alone: a fresh cache on its own copy, so the
    # shared default (ONE) and a concurrent settlement on the same scenarios are never touched
    scen = dataclasses.replace(scen, derived={})
    data = prepare(data, spec, params)
    years = settlement_years(params.start_year, params.years)
    fy = years["financial_year"].to_list()
    growth = index_growth(spec.indices, spec.control_total.inflation_index)
    ref = data.for_year(fy[0])  # what is not computed year by year reads the first settlement year's population
    step("local resources")
    local = run_local_resources(ref, spec, params, fy)
    degree = scenario_degree(spec, params.years, scen)
    extra = None
    if spec.local_tax.basis == "grant":  # the envelope shared by need is the grant total plus e x sum(N)
        extra = grant_envelope(local, area_frame(ref, spec, params.level)["area_code"].to_list(), fy, degree)
    step("need, targets and transition")
    ctx = Settle(data=data, version=spec, params=params, years=years, growth=growth, scen=scen)
    settlements = allocate_streams(ctx, extra=extra, step=step)
    population = None
    if scen.draws is not None:
        population = draw_population(data, params.level, fy, scen, settlements[0].areas["area_code"].to_list())
    return Settled(data=data, ref=ref, years=years, growth=growth, local=local, degree=degree,
                   settlements=settlements, population=population)


def draw_population(data: Dataset, level: str, fy: list[str], scen: Scenarios, codes: list[str]) -> np.ndarray:
    """(S, years, areas) each draw's residents at the run's level: its authorities' (as its need counted them)
    rolled up as a run on its variant dataset rolls them (the same roll-up, by draw)."""
    out = []
    for y in fy:
        pop = scen.derived[("draw_population", y)]  # (S, authorities)
        if level == "ltla":
            out.append(pop)
            continue
        S, n = pop.shape
        long = pl.LazyFrame({"area_code": np.tile(np.asarray(present(scen.draws, "the draws").codes), S),
                             "draw": np.repeat(np.arange(S), n), "population": pop.reshape(-1)})
        rolled = roll_up(long, data.lazy("area_lookup"), level, ["population"], by=["draw"]).collect()
        wide = rolled.pivot(on="area_code", index="draw", values="population").sort("draw").select(codes)
        out.append(wide.to_numpy())
    return np.stack(out, axis=1)


def bound_labels(bound: np.ndarray) -> np.ndarray:
    """"floor", "ceiling" or "none" for each bound code."""
    return np.where(bound == BOUND_FLOOR, "floor", np.where(bound == BOUND_CEILING, "ceiling", "none"))


def _pool(arrays: list[np.ndarray]) -> np.ndarray:
    """The streams' arrays summed (one stream's own array, not a copy)."""
    return arrays[0] if len(arrays) == 1 else sum(arrays[1:], arrays[0])


def _pool_kept(arrays: list[np.ndarray | None]) -> np.ndarray | None:
    """The streams' arrays summed where every stream kept one (uprated baselines, today's funding), else None."""
    kept = [a for a in arrays if a is not None]
    return _pool(kept) if len(kept) == len(arrays) else None


@dataclass(kw_only=True)
class Outcome:
    """Every quantity of the settlement, per scenario, year and area: arrays (S, years, areas) of int64 pence
    (areas in code order, as `areas`), pooled over the version's streams where it has more than one. Derived
    figures (real terms, per head, yields) are computed when first read, so a sweep of thousands of scenarios pays
    only for what it asks."""

    settled: Settled
    spec: FormulaSpec
    params: RunParameters
    areas: pl.DataFrame  # the first settlement year's area frame (area_code, area_name, need columns)
    frames: list[pl.DataFrame]  # each settlement year's area frame (the pooled need of a version with streams)
    population: np.ndarray  # (years, areas) each year's residents (registered patients for practice-based need)
    targets: np.ndarray
    baselines: np.ndarray | None  # today's funding uprated; None when a sweep keeps no detail
    previous: np.ndarray
    allocation: np.ndarray
    guarantee: np.ndarray
    released: np.ndarray  # (S, years) pence of the control total a non-neutral rule left unallocated
    bounds: np.ndarray  # (streams, S, years, areas) int8: each stream's -1 at floor, 1 at ceiling, 0 free
    notional: np.ndarray  # notional local tax deducted: the degree x notional resources, split to the penny
    grant: np.ndarray  # after the negative-grant rule

    @property
    def settlements(self) -> list[Settlement]:
        return self.settled.settlements

    @property
    def degree(self) -> np.ndarray:
        return self.settled.degree

    @property
    def codes(self) -> list[str]:
        return self.areas["area_code"].to_list()

    @property
    def financial_years(self) -> list[str]:
        return self.settled.years["financial_year"].to_list()

    @property
    def size(self) -> int:
        return self.grant.shape[0]

    @cached_property
    def at_floor(self) -> np.ndarray:
        """(S, years, areas) held at a floor in any stream."""
        return (self.bounds == BOUND_FLOOR).any(axis=0)

    @cached_property
    def bound(self) -> np.ndarray:
        """(S, years, areas) int8: the one stream's bound; pooled, at a floor if any stream is, else the first's."""
        if self.bounds.shape[0] == 1:
            return self.bounds[0]
        return np.where(self.at_floor, np.int8(BOUND_FLOOR), self.bounds[0]).astype(np.int8)

    def bound_label(self, i: int = 0) -> np.ndarray:
        """(years, areas) "floor", "ceiling" or "none" for scenario i; pooled, "streams" where the streams differ."""
        labels = bound_labels(self.bounds[:, i])
        return np.where((labels == labels[0]).all(axis=0), labels[0], "streams")

    @cached_property
    def todays_funding(self) -> np.ndarray | None:
        """(areas,) pence: today's funding in cash, the base year's, the streams' summed; None where the version
        holds none (a version that starts from shares alone)."""
        return _pool_kept([s.todays for s in self.settlements])

    @cached_property
    def years_to_target(self) -> np.ndarray:
        """(S, areas) further years at the rule's pace to come within 0.1% of target after the last year; pooled, the
        latest stream's (NaN where a stream's rule never gets there)."""
        per = np.stack([s.transition.years_to_target for s in self.settlements])
        if per.shape[0] == 1:
            return per[0]
        with np.errstate(all="ignore"):
            return np.where(np.isnan(per).any(axis=0), np.nan, per.max(axis=0))

    @cached_property
    def infeasible(self) -> np.ndarray:
        """(S,) scenarios whose floors or ceilings could not meet a year's total (marked only for a design's
        candidates; a run or a sweep stops instead)."""
        out = np.zeros(self.size, dtype=bool)
        for s in self.settlements:
            if s.infeasible is not None:
                out |= s.infeasible
        return out

    @cached_property
    def floor_cost(self) -> np.ndarray:
        """(S, years) pence: what floors and guarantees cost each year, the money areas held at a floor get above
        what the rule alone gave them (allocation - unconstrained), plus guarantee payments."""
        cost = self.guarantee.sum(axis=-1).astype(np.float64)
        for s in self.settlements:
            tr = s.transition
            cost = cost + np.where(tr.bound == BOUND_FLOOR, np.maximum(tr.allocation - tr.unconstrained, 0.0),
                                   0.0).sum(axis=-1)
        return cost

    @cached_property
    def notional_full(self) -> np.ndarray:
        """(years, areas) notional local resources in full, each year split to the penny once."""
        return split_rounded(self.settled.local.array("notional_local_resources", self.codes,
                                                      self.financial_years) * 100)

    @cached_property
    def yields(self) -> dict[str, np.ndarray]:
        """(years, areas) what areas raise (council tax, precept flexibility, a health tax, less business-rates
        discounts), each year split to the penny once."""
        return {c: split_rounded(self.settled.local.array(c, self.codes, self.financial_years) * 100)
                for c in YIELDS}

    @cached_property
    def local_yield(self) -> np.ndarray:
        y = self.yields
        return y["council_tax_yield"] + y["health_tax_yield"] - y["business_rates_discount"]

    @cached_property
    def spending_power(self) -> np.ndarray:
        return self.grant + self.local_yield

    @cached_property
    def negative_grant_adjustment(self) -> np.ndarray:
        return self.grant - (self.allocation + self.guarantee - self.notional)

    @cached_property
    def deflator(self) -> np.ndarray:
        """(years,) the version's inflation index at each year, 1 in the run's price base year."""
        return index_levels(self.settled.growth, self.spec.control_total.inflation_index, self.params.price_base,
                            self.financial_years)["index_level"].to_numpy()

    @cached_property
    def grant_real(self) -> np.ndarray:
        """The grant at the price base year's prices: each year's grants over the deflator, split to the penny."""
        return split_rounded(self.grant / self.deflator[:, None])

    @cached_property
    def grant_per_head(self) -> np.ndarray:
        """Pence per resident (per registered patient for practice-based need), rounded half up."""
        return round_half_up(self.grant / self.population)


def outcome(st: Settled, spec: FormulaSpec, params: RunParameters) -> Outcome:
    """What follows the transition, for every scenario: the streams pooled, the notional local tax deducted at each
    scenario's degree, and the grants after the negative-grant rule."""
    first = st.settlements[0]
    codes = first.areas["area_code"]
    for s in st.settlements[1:]:
        if not s.areas["area_code"].equals(codes):
            raise FundformError(f"stream {s.name} covers different areas from stream {first.name}")
    parts = [s.transition for s in st.settlements]
    targets = _pool([s.targets for s in st.settlements])
    allocation, guarantee = _pool([p.allocation for p in parts]), _pool([p.guarantee for p in parts])
    frames = first.frames or [first.areas] * params.years
    if len(st.settlements) > 1:
        frames = [_pooled_need(f, targets[0, t]) for t, f in enumerate(frames)]
    population = (st.population if st.population is not None
                  else np.stack([f["population"].to_numpy() for f in frames]))
    notional = notional_pence(st.local, codes.to_list(), st.years["financial_year"].to_list(), st.degree)
    return Outcome(
        settled=st, spec=spec, params=params, areas=frames[0], frames=frames, population=population,
        targets=targets, baselines=_pool_kept([s.baselines for s in st.settlements]),
        previous=_pool([p.previous for p in parts]), allocation=allocation, guarantee=guarantee,
        released=_pool([p.released for p in parts]), bounds=np.stack([p.bound for p in parts]),
        notional=notional, grant=grants(allocation + guarantee, notional, population, spec.local_tax))


def _pooled_need(frame: pl.DataFrame, targets: np.ndarray) -> pl.DataFrame:
    """A version with streams: its need columns are the pooled target share (the share of the streams' summed
    target allocations), expressed as persons (the share x the year's population); no age-weighted population."""
    pop = frame["population"]
    share = targets / targets.sum()
    return frame.with_columns(
        target_share=pl.Series(share), need_weighted_population=pl.Series(share) * pop.sum(),
        age_weighted_population=pl.lit(None, dtype=pl.Float64)).with_columns(
        need_index=pl.col("need_weighted_population") / pop)


def evaluate(data: Dataset, spec: FormulaSpec, params: RunParameters, scen: Scenarios = ONE,
             progress: Callable[[str], None] | None = None) -> Outcome:
    """The outcome of `scen` (a run: one scenario that sets nothing)."""
    return outcome(settle(data, spec, params, scen, progress), spec, params)


__all__ = ["Outcome", "Settled", "bound_labels", "evaluate", "outcome", "prepare", "settle"]
