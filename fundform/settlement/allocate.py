"""One stream's (or the whole version's) settlement, for every scenario at once: control totals, targets from each
year's need, today's funding uprated, and the transition. A run is the case of one scenario that sets nothing."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, fields, replace

import numpy as np
import polars as pl

from fundform.baselines import rounds_held
from fundform.formula.components import IGNORES_BASELINE
from fundform.formula.spec import (
    TRANSITION_NUMBERS,
    FormulaSpec,
    Quantity,
    Transition,
    format_year,
    parse_year,
)
from fundform.inputs.dataset import Dataset
from fundform.need.axis import scenario_shares
from fundform.need.frames import year_frames
from fundform.params import ONE, RunParameters, Scenarios
from fundform.settlement.control_total import control_totals, linked_totals
from fundform.settlement.money import apportion, round_half_up
from fundform.settlement.rounds import nhs_round_path
from fundform.settlement.transition import TransitionResult, run_transition


def share_matrix(frames: list[pl.DataFrame]) -> np.ndarray:
    """(years, areas) target shares, each year's from that year's frame."""
    return np.stack([f["target_share"].to_numpy() for f in frames])


@dataclass
class Settlement:
    """One stream's (or the whole version's) allocation before local tax, in pence: per scenario, year and area
    (arrays (S, years, areas)); `one(i)` is scenario i as a run reports it (arrays (years, areas))."""

    name: str
    areas: pl.DataFrame
    path: pl.DataFrame  # financial_year, year_index (0 = the year before), inflation_factor, real_factor, control_total
    targets: np.ndarray
    baselines: np.ndarray
    transition: TransitionResult
    rule: Transition
    base_year_total: int
    spec: object = None
    frames: list = field(default_factory=list)  # each settlement year's area frame
    rules: list = field(default_factory=list)  # each year's transition rule (dated sections)
    totals: np.ndarray | None = None  # (S, years + 1) pence: the year before and each year's control total

    def one(self, i: int = 0) -> Settlement:
        """Scenario i alone: what a run of it reports."""
        tr = TransitionResult(**{f.name: getattr(self.transition, f.name)[i] for f in fields(TransitionResult)})
        return replace(self, path=self.path.with_columns(control_total=pl.Series(self.totals[i])),
                       targets=self.targets[i], baselines=self.baselines[i], transition=tr, totals=self.totals[i])


def rule_values(version: FormulaSpec, stream, scen: Scenarios, rules: list[Transition], fy: list[str]
                ) -> list[dict[str, np.ndarray]] | None:
    """Each year's transition numbers that the scenarios set ((S, 1) arrays, read where that year's rule takes
    them from: a dated section's own number from its year on), or None when they set none."""
    out = [{k: scen.get(version, stream, f"transition.{k}", getattr(rule, k).value, y)[:, None]
            for k in TRANSITION_NUMBERS if isinstance(getattr(rule, k, None), Quantity)
            and scen.sets(version, stream, f"transition.{k}", y)} for rule, y in zip(rules, fy)]
    return out if any(out) else None


def allocate(data: Dataset, version: FormulaSpec, params: RunParameters, years: pl.DataFrame,
             growth: dict[str, float], scen: Scenarios = ONE, stream=None, link: Settlement | None = None,
             extra: np.ndarray | None = None) -> Settlement:
    """Need, targets, control totals and the transition for the version or one `stream` of it, for every scenario
    at once. `link`: the settled stream whose growth this one's is locked to; `extra` (S, years + 1) pence is
    added to the total shared by need (the equalised local resources of a version whose control total is the
    grant total)."""
    spec = version if stream is None else stream_spec(version, stream)
    name = "all" if stream is None else stream.name
    S = scen.size
    fy = years["financial_year"].to_list()
    frames = year_frames(data, spec, params.level, fy)
    areas = frames[0]
    n = areas.height
    base_year_total = int(round_half_up(areas["baseline_gbp"].sum() * 100)) if areas["baseline_gbp"].null_count() \
        == 0 else 0
    rules = [spec.at(y).transition for y in fy]
    values = rule_values(version, stream, scen, rules, fy)
    if spec.baseline.source == "nhs_icb_allocations":
        # published NHS rounds: the year-by-year path (restatements, base growth, targets) of each scenario
        rp = nhs_round_path(frames, spec, params, growth, years, values=values, scenarios=S,
                            held=lambda: rounds_held(data), stream=None if stream is None else stream.name)
        return Settlement(name, areas, rp.path, rp.targets, rp.baselines, rp.transition, spec.transition,
                          base_year_total, spec, frames, rp.rules, rp.totals)
    shares = scenario_shares(data, version, spec, stream, params.level, fy, frames, scen)
    year0 = format_year(parse_year(params.start_year) - 1)
    real = (scen.get(version, stream, "control_total.real_growth", spec.control_total.real_growth.value)
            if scen.sets(version, stream, "control_total.real_growth") else None)
    totals, infl, real_f = control_totals(base_year_total, spec.control_total, growth, [year0, *fy], real)
    path = pl.concat([pl.DataFrame({"financial_year": [year0], "year_index": [0]}, schema=years.schema), years]
                     ).with_columns(inflation_factor=pl.Series(infl),
                                    real_factor=pl.Series(np.broadcast_to(real_f, (S, len(fy) + 1))[0]))
    totals = np.broadcast_to(totals, (S, len(fy) + 1))
    if link is not None:  # growth locked to another stream's: the same cumulative factors from the base year
        totals = linked_totals(base_year_total, link.totals, link.base_year_total)
    if extra is not None:
        totals = totals + extra.astype(np.int64)
    ct = totals[:, 1:]
    weights = areas["baseline_gbp"].to_numpy()
    targets = apportion(ct, shares)
    # today's funding uprated: reported by a run, read by rules that blend from it (phasing, a plugin's)
    uses = scen.detail or any(r.rule not in IGNORES_BASELINE for r in rules)
    baselines = apportion(ct, np.broadcast_to(weights, (S, len(fy), n))) if uses else None
    start = apportion(totals[:, 0], np.broadcast_to(weights, (S, n)))
    inflation = np.array([growth.get(y, 0.0) for y in fy])
    labels = fy if stream is None else [f"{y} (stream {stream.name})" for y in fy]
    tr = run_transition(start, targets, ct, rules, labels, baselines=baselines, inflation=inflation, values=values)
    return Settlement(name, areas, path, targets, baselines, tr, spec.transition, base_year_total, spec, frames,
                      rules, totals)


def allocate_streams(data: Dataset, spec: FormulaSpec, params: RunParameters, years: pl.DataFrame,
                     growth: dict[str, float], scen: Scenarios = ONE, extra: np.ndarray | None = None,
                     step: Callable[[str], None] | None = None) -> list[Settlement]:
    """The version's settlement: one, or one per stream in the version's order (a linked stream settled after the
    stream its growth is locked to)."""
    if not spec.streams:
        return [allocate(data, spec, params, years, growth, scen, extra=extra)]
    done: dict[str, Settlement] = {}
    for st in sorted(spec.streams, key=lambda s: s.linked_to is not None):
        if step:
            step(f"stream {st.name}")
        done[st.name] = allocate(data, spec, params, years, growth, scen, st,
                                 done.get(st.linked_to) if st.linked_to else None)
    return [done[st.name] for st in spec.streams]


def stream_spec(spec: FormulaSpec, stream):
    """The version as seen by one stream (FormulaSpec.stream_view): its need, baseline, growth, rule and dated
    sections; local tax applies to the pool."""
    return spec.stream_view(stream)
