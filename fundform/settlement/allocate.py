"""One stream's (or the whole version's) settlement: control totals, targets from each year's need, today's
funding uprated, and the transition."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import polars as pl

from fundform.formula.spec import Baseline, FormulaSpec, LocalTax, Transition, format_year, parse_year
from fundform.inputs.dataset import Dataset
from fundform.need.frames import year_frames
from fundform.params import RunParameters
from fundform.settlement.control_total import control_total_path, linked_totals
from fundform.settlement.money import apportion, round_half_up
from fundform.settlement.rounds import nhs_round_path
from fundform.settlement.transition import BOUND_CEILING, BOUND_FLOOR, TransitionResult, run_transition


@dataclass
class SettlementInputs:
    path: pl.DataFrame  # financial_year, year_index (0 = the year before), inflation_factor, real_factor, control_total
    start: np.ndarray  # (areas,) pence: the allocation of the year before the settlement
    targets: np.ndarray  # (years, areas) pence
    baselines: np.ndarray  # (years, areas) pence: today's funding uprated
    growth: np.ndarray | None  # (years, areas) per-area base growth factors, or None for uniform growth
    inflation: np.ndarray  # (years,) growth of the version's index


def share_matrix(frames: list[pl.DataFrame]) -> np.ndarray:
    """(years, areas) target shares, each year's from that year's frame."""
    return np.stack([f["target_share"].to_numpy() for f in frames])


def settlement_inputs(frames: list[pl.DataFrame], spec: FormulaSpec, params: RunParameters, growth: dict[str, float],
                      years: pl.DataFrame) -> SettlementInputs:
    """Control totals, start, targets and uprated baselines of a version whose baseline is the dataset's table:
    each year's targets are that year's need shares of that year's total."""
    areas = frames[0]
    n = areas.height
    year0 = format_year(parse_year(params.start_year) - 1)
    all_years = pl.concat([pl.DataFrame({"financial_year": [year0], "year_index": [0]}, schema=years.schema), years])
    base_total = int(round_half_up(areas["baseline_gbp"].sum() * 100))
    path = control_total_path(base_total, spec.control_total, growth, all_years)
    inflation = np.array([growth.get(y, 0.0) for y in years["financial_year"]])
    totals = path["control_total"].to_numpy()
    ct = totals[1:]
    baseline_w = areas["baseline_gbp"].to_numpy()
    return SettlementInputs(path, apportion(totals[0], baseline_w), apportion(ct, share_matrix(frames)),
                            apportion(ct, np.broadcast_to(baseline_w, (params.years, n))), None, inflation)


@dataclass
class Settlement:
    """One stream's (or the whole version's) allocation before local tax: per area and year, in pence."""

    name: str
    areas: pl.DataFrame
    path: pl.DataFrame
    targets: np.ndarray
    baselines: np.ndarray
    transition: TransitionResult
    rule: Transition
    base_year_total: int
    spec: object = None
    frames: list = field(default_factory=list)  # each settlement year's area frame
    rules: list = field(default_factory=list)  # each year's transition rule (dated sections)


def _allocate(data: Dataset, spec: FormulaSpec, params: RunParameters, years: pl.DataFrame, growth: dict[str, float],
              name: str = "all", link: Settlement | None = None, extra: np.ndarray | None = None) -> Settlement:
    """Need, targets, control totals and the transition for one version or one stream of it. `extra` (pence, the
    year before and each year) is added to the total shared by need: the equalised local resources of a version
    whose control total is the grant total."""
    fy = years["financial_year"].to_list()
    frames = year_frames(data, spec, params.level, fy)
    areas = frames[0]
    base_year_total = int(round_half_up(areas["baseline_gbp"].sum() * 100)) if areas["baseline_gbp"].null_count() \
        == 0 else 0
    rules = [spec.at(y).transition for y in fy]
    if spec.baseline.source == "nhs_icb_allocations":
        rp = nhs_round_path(frames, spec, params, growth, years, held=sorted(
            data["nhs_icb_allocations"]["allocation_round"].unique().to_list()))
        return Settlement(name, areas, rp.path, rp.targets, rp.baselines, rp.transition, spec.transition,
                          base_year_total, spec, frames, rp.rules)
    si = settlement_inputs(frames, spec, params, growth, years)
    path = si.path
    if link is not None or extra is not None:
        if link is not None:  # growth locked to another stream's: the same cumulative factors from the base year
            path = path.with_columns(control_total=pl.Series(linked_totals(
                base_year_total, link.path["control_total"].to_numpy(), link.base_year_total)))
        if extra is not None:
            path = path.with_columns(control_total=pl.col("control_total") + pl.Series(extra.astype(np.int64)))
        totals = path["control_total"].to_numpy()
        weights = areas["baseline_gbp"].to_numpy()
        n = areas.height
        si = SettlementInputs(path, apportion(totals[0], weights), apportion(totals[1:], share_matrix(frames)),
                              apportion(totals[1:], np.broadcast_to(weights, (params.years, n))), None, si.inflation)
    ct = path["control_total"].to_numpy()[1:]
    tr = run_transition(si.start, si.targets, ct, rules, fy, baselines=si.baselines, growth=si.growth,
                        inflation=si.inflation)
    return Settlement(name, areas, path, si.targets, si.baselines, tr, spec.transition, base_year_total, spec,
                      frames, rules)


def stream_spec(spec: FormulaSpec, stream):
    """The version as seen by one stream: its need, baseline, growth and rule; local tax applies to the pool."""
    ct = spec.control_total if stream.real_growth is None else spec.control_total.model_copy(
        update={"real_growth": stream.real_growth})
    return spec.model_copy(update={
        "need": stream.need or spec.need, "baseline": Baseline(components=stream.baseline_components),
        "control_total": ct, "transition": stream.transition or spec.transition, "streams": [],
        "local_tax": LocalTax(rule="none")})


def _label(bound: np.ndarray) -> np.ndarray:
    return np.where(bound == BOUND_FLOOR, "floor", np.where(bound == BOUND_CEILING, "ceiling", "none"))
