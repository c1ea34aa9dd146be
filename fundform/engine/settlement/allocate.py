"""One stream's (or the whole version's) settlement, for every scenario at once: control totals, targets from each
year's need, today's funding uprated, and the transition. A run is the case of one scenario that sets nothing."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, fields, replace

import numpy as np
import polars as pl

from fundform.base.errors import FundformError
from fundform.base.years import year_before
from fundform.engine.context import Part, Settle
from fundform.engine.need.axis import scenario_shares
from fundform.engine.need.frames import year_frames
from fundform.engine.settlement.control_total import control_totals, linked_totals
from fundform.engine.settlement.money import apportion, round_half_up
from fundform.engine.settlement.rollup import members, roll_pence
from fundform.engine.settlement.rounds import nhs_round_path
from fundform.engine.settlement.transition import (
    BOUND_CEILING,
    BOUND_FLOOR,
    BOUND_NONE,
    TransitionResult,
    run_transition,
)
from fundform.formula.components import IGNORES_BASELINE
from fundform.formula.quantities import Quantity
from fundform.formula.rules import TRANSITION_NUMBERS, Transition
from fundform.formula.spec import FormulaSpec, Stream
from fundform.inputs.dataset import Dataset


@dataclass(kw_only=True)
class Settlement:
    """One stream's (or the whole version's) allocation before local tax, in pence: per scenario, year and area
    (arrays (S, years, areas)); `one(i)` is scenario i as a run reports it (arrays (years, areas)). Built by
    keyword: fourteen figures of one kind (pence arrays) in a row are too easy to pass in the wrong order."""

    name: str
    areas: pl.DataFrame
    path: pl.DataFrame  # financial_year, year_index (0 = the year before), inflation_factor, real_factor, control_total
    targets: np.ndarray
    baselines: np.ndarray | None  # None where no rule reads them and the scenarios ask for no detail
    transition: TransitionResult
    rule: Transition
    base_year_total: int
    spec: FormulaSpec  # the version as this stream sees it (Part.spec)
    frames: list[pl.DataFrame] = field(default_factory=list)  # each settlement year's area frame
    rules: list[Transition] = field(default_factory=list)  # each year's transition rule (dated sections)
    totals: np.ndarray  # (S, years + 1) pence: the year before and each year's control total
    infeasible: np.ndarray | None = None  # (S,) scenarios whose bounds could not meet a total (a design's marks)
    todays: np.ndarray | None = None  # (areas,) pence: today's funding in cash, the base year's (no scenario axis)

    def one(self, i: int = 0) -> Settlement:
        """Scenario i alone: what a run of it reports."""
        tr = TransitionResult(**{f.name: getattr(self.transition, f.name)[i] for f in fields(TransitionResult)})
        return replace(self, path=self.path.with_columns(control_total=pl.Series(self.totals[i])),
                       targets=self.targets[i], baselines=None if self.baselines is None else self.baselines[i],
                       transition=tr, totals=self.totals[i])


def rule_values(ctx: Settle, part: Part, rules: list[Transition]) -> list[dict[str, np.ndarray]] | None:
    """Each year's transition numbers that the scenarios set ((S, 1) arrays, read where that year's rule takes
    them from: a dated section's own number from its year on), or None when they set none."""
    scen, version, stream = ctx.scen, part.version, part.stream
    out = [{k: scen.get(version, stream, f"transition.{k}", getattr(rule, k).value, y)[:, None]
            for k in TRANSITION_NUMBERS if isinstance(getattr(rule, k, None), Quantity)
            and scen.sets(version, stream, f"transition.{k}", y)} for rule, y in zip(rules, ctx.fy)]
    return out if any(out) else None


def allocate(ctx: Settle, stream: Stream | None = None, *, link: Settlement | None = None,
             extra: np.ndarray | None = None) -> Settlement:
    """Need, targets, control totals and the transition for the version or one `stream` of it, for every scenario
    at once. `link`: the settled stream whose growth this one's is locked to; `extra` (S, years + 1) pence is
    added to the total shared by need (the equalised local resources of a version whose control total is the
    grant total)."""
    part = ctx.part(stream)
    spec, data, params, scen, fy = part.spec, ctx.data, ctx.params, ctx.scen, ctx.fy
    S = scen.size
    frames = year_frames(data, spec, params.level, fy)
    areas = frames[0]
    rules = [spec.at(y).transition for y in fy]
    values = rule_values(ctx, part, rules)
    if spec.baseline.source == "nhs_icb_allocations":
        if params.level == NHS_BASE_LEVEL[1]:  # ICBs receive the money: a region is the sum of its ICBs
            return _region_of_icbs(ctx, stream, frames)
        # published NHS rounds: the year-by-year path (restatements, base growth, targets) of each scenario
        infeasible = np.zeros(S, dtype=bool) if scen.mark_infeasible else None
        rp = nhs_round_path(ctx, part, frames, values=values, infeasible=infeasible)
        return Settlement(name=part.name, areas=areas, path=rp.path, targets=rp.targets, baselines=rp.baselines,
                          transition=rp.transition, rule=spec.transition, base_year_total=_base_year_total(areas),
                          spec=spec, frames=frames, rules=rp.rules, totals=rp.totals, infeasible=infeasible,
                          todays=_todays(areas, _same))
    # need, targets and today's funding are apportioned among lower-tier authorities and summed to the level, so an
    # area's are its members' to the penny (settlement.rollup); the transition applies to the level's areas
    base = frames if params.level == BASE_LEVEL else year_frames(data, spec, BASE_LEVEL, fy)
    to_level = _same if params.level == BASE_LEVEL else _roller(data, params.level, base[0], areas)
    n = base[0].height
    base_year_total = _base_year_total(base[0])
    shares = scenario_shares(ctx, part, base)
    year0 = year_before(params.start_year)
    real = (scen.get(part.version, stream, "control_total.real_growth", spec.control_total.real_growth.value)
            if scen.sets(part.version, stream, "control_total.real_growth") else None)
    totals, infl, real_f = control_totals(base_year_total, spec.control_total, ctx.growth, [year0, *fy], real)
    path = pl.concat([pl.DataFrame({"financial_year": [year0], "year_index": [0]}, schema=ctx.years.schema),
                      ctx.years]).with_columns(inflation_factor=pl.Series(infl),
                                               real_factor=pl.Series(np.broadcast_to(real_f, (S, len(fy) + 1))[0]))
    totals = np.broadcast_to(totals, (S, len(fy) + 1))
    if link is not None:  # growth locked to another stream's: the same cumulative factors from the base year
        totals = linked_totals(base_year_total, link.totals, link.base_year_total)
    if extra is not None:
        totals = totals + extra.astype(np.int64)
    ct = totals[:, 1:]
    weights = base[0]["baseline_gbp"].to_numpy()
    targets = to_level(apportion(ct, shares))
    # today's funding uprated: reported by a run, read by rules that blend from it (phasing, a plugin's)
    uses = scen.detail or any(r.rule not in IGNORES_BASELINE for r in rules)
    baselines = to_level(apportion(ct, np.broadcast_to(weights, (S, len(fy), n)))) if uses else None
    start = to_level(apportion(totals[:, 0], np.broadcast_to(weights, (S, n))))
    inflation = np.array([ctx.growth.get(y, 0.0) for y in fy])
    labels = fy if stream is None else [f"{y} (stream {stream.name})" for y in fy]
    infeasible = np.zeros(S, dtype=bool) if scen.mark_infeasible else None
    tr = run_transition(start, targets, ct, rules, labels, baselines=baselines, inflation=inflation, values=values,
                        infeasible=infeasible)
    return Settlement(name=part.name, areas=areas, path=path, targets=targets, baselines=baselines, transition=tr,
                      rule=spec.transition, base_year_total=base_year_total, spec=spec, frames=frames, rules=rules,
                      totals=totals, infeasible=infeasible, todays=_todays(base[0], to_level))


def _same(a: np.ndarray) -> np.ndarray:
    """The roll-up of a level that is its own base level: nothing to sum."""
    return a


def _base_year_total(areas: pl.DataFrame) -> int:
    """Today's funding in the base year, pence (0 where the areas hold none)."""
    b = areas["baseline_gbp"]
    return int(round_half_up(float(b.sum()) * 100)) if b.null_count() == 0 else 0


def _todays(areas: pl.DataFrame, to_level: Callable[[np.ndarray], np.ndarray]) -> np.ndarray | None:
    """Today's funding in cash, pence, per area of the level: the base year's total split by the areas' figures
    (the money rule: apportion(round(sum), figures)), summed to the level; None where the areas hold none."""
    if areas["baseline_gbp"].null_count():
        return None
    return to_level(apportion(np.array([_base_year_total(areas)]), areas["baseline_gbp"].to_numpy()[None, :]))[0]


BASE_LEVEL = "ltla"  # where a version built from authorities apportions what the transition does not touch
NHS_BASE_LEVEL = ("icb", "nhs-region")  # a version on NHS England's rounds: ICBs, and the regions they sum to


def _roller(data: Dataset, level: str, base: pl.DataFrame, areas: pl.DataFrame
            ) -> Callable[[np.ndarray], np.ndarray]:
    """The level's sum of lower-tier pence (each authority's lookup shares)."""
    codes = areas["area_code"].to_list()
    m = data.memo(("members", level, tuple(codes)), lambda: members(
        data["area_lookup"].filter(pl.col("level") == level).select(
            member_code="area_code", area_code="target_code", share="share"), base["area_code"].to_list(), codes))
    return lambda a: roll_pence(a, m)


def _region_of_icbs(ctx: Settle, stream: Stream | None, frames: list[pl.DataFrame]) -> Settlement:
    """A version on NHS England's rounds at NHS region level: the ICBs' settlement (NHS England allocates to ICBs),
    every figure of a region the sum of its ICBs' to the penny; a region is at a floor where any of its ICBs is
    (else at a ceiling where any is), and reaches target when its last ICB does. Need columns are the region's own
    (its practices' weighted populations), which are its ICBs' summed."""
    data = ctx.data
    icb = allocate(ctx.at_level(NHS_BASE_LEVEL[0]), stream)
    codes = frames[0]["area_code"].to_list()
    region = data["nhs_icb_allocations"].select(member_code="icb_code", area_code="nhs_region_code").unique()
    if "icb_changes" in data.tables:  # an ICB of the run's vintage formed from earlier ones: their region
        region = pl.concat([region, data["icb_changes"].select(old="old_code", member_code="new_code").join(
            region.rename({"member_code": "old"}), on="old").select("member_code", "area_code")]).unique()
    pairs = region.join(icb.areas.select(member_code="area_code"), on="member_code", how="semi")
    many = pairs.group_by("member_code").len().filter(pl.col("len") > 1)
    if many.height:
        raise FundformError(f"ICBs in more than one NHS region in nhs_icb_allocations: {many['member_code'].to_list()}")
    m = members(pairs.with_columns(share=pl.lit(1.0)), icb.areas["area_code"].to_list(), codes)
    tr = icb.transition

    def add(a: np.ndarray) -> np.ndarray:
        return roll_pence(a, m)

    floor_any = np.minimum.reduceat(tr.bound, m.starts, axis=-1) == BOUND_FLOOR
    ceiling_any = np.maximum.reduceat(tr.bound, m.starts, axis=-1) == BOUND_CEILING
    rolled = TransitionResult(
        previous=add(tr.previous), allocation=add(tr.allocation),
        bound=np.where(floor_any, BOUND_FLOOR, np.where(ceiling_any, BOUND_CEILING, BOUND_NONE)).astype(np.int8),
        unconstrained=np.add.reduceat(tr.unconstrained[..., m.member], m.starts, axis=-1),
        scale_back=tr.scale_back, guarantee=add(tr.guarantee), released=tr.released,
        years_to_target=np.maximum.reduceat(tr.years_to_target[..., m.member], m.starts, axis=-1))
    return replace(icb, areas=frames[0], frames=frames, targets=add(icb.targets),
                   baselines=None if icb.baselines is None else add(icb.baselines), transition=rolled,
                   todays=None if icb.todays is None else add(icb.todays))


def allocate_streams(ctx: Settle, *, extra: np.ndarray | None = None, step: Callable[[str], None] | None = None
                     ) -> list[Settlement]:
    """The version's settlement: one, or one per stream in the version's order (a linked stream settled after the
    stream its growth is locked to)."""
    spec = ctx.version
    if not spec.streams:
        return [allocate(ctx, extra=extra)]
    done: dict[str, Settlement] = {}
    for st in sorted(spec.streams, key=lambda s: s.linked_to is not None):
        if step:
            step(f"stream {st.name}")
        done[st.name] = allocate(ctx, st, link=done.get(st.linked_to) if st.linked_to else None)
    return [done[st.name] for st in spec.streams]
