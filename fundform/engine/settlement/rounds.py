"""NHS England's allocation rounds as data, year by year: restated baselines, base growth, targets, convergence."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from fundform.base.errors import FundformError, present
from fundform.base.years import year_before
from fundform.engine.baselines import rounds_held
from fundform.engine.context import Part, Settle
from fundform.engine.settlement.control_total import control_total_path
from fundform.engine.settlement.money import apportion, round_half_up
from fundform.engine.settlement.transition import TransitionResult, run_transition
from fundform.formula.rules import GivenConvergence, Transition
from fundform.formula.spec import FormulaSpec


@dataclass(kw_only=True)
class RoundPath:
    """A run of published NHS rounds, year by year: what each year started from, its targets and the transition."""

    path: pl.DataFrame
    targets: np.ndarray  # (..., years, areas) pence
    baselines: np.ndarray  # (..., years, areas) pence: last year's allocation (restated) grown by base growth
    transition: TransitionResult
    rules: list[Transition]
    totals: np.ndarray  # (..., years + 1) pence: the start and each year's control total


def _cat(results: list[TransitionResult]) -> TransitionResult:
    by_year = lambda name: np.concatenate([getattr(r, name) for r in results], axis=-2)
    per_year = lambda name: np.concatenate([getattr(r, name) for r in results], axis=-1)
    return TransitionResult(previous=by_year("previous"), allocation=by_year("allocation"), bound=by_year("bound"),
                            unconstrained=by_year("unconstrained"), scale_back=per_year("scale_back"),
                            guarantee=by_year("guarantee"), released=per_year("released"),
                            years_to_target=results[-1].years_to_target)


def nhs_round_path(ctx: Settle, part: Part, frames: list[pl.DataFrame], *,
                   values: list[dict[str, np.ndarray]] | None = None, infeasible: np.ndarray | None = None
                   ) -> RoundPath:
    """NHS England's allocation rounds as data, year by year (a run is one round or a chain of them). Each year:
    the year's own round where the data holds it (its restated baseline, base growth and fair shares targets) and
    the version as dated for that year (its weights, target rule and pace of change).

    - start: the first year's published adjusted recurrent baseline;
    - restatement: in a later year with a published round, last year's allocation moves by what the round's
      restated baseline added to the previous round's published allocation (pay awards, transfers...), so a chain
      reproduces each published round and a scenario carries its own differences forward;
    - base growth: the round's per-ICB growth (base_growth "published"), else the index and real growth;
    - targets: need shares of the base year's published fair shares total grown by each ICB's or the national
      growth (target_total "published_fair_shares", where the round is published), else of the year's total;
    - the year's control total is last year's allocations grown; what convergence does not allocate is released.
    `values` (each year's, arrays (S, 1)) sweep the rule's numbers across the scenarios of `ctx`; `frames` are
    `part`'s area frames, one per settlement year; `infeasible` (S,) marks the scenarios whose bounds cannot meet
    a year's total.

    Over 80 lines: one year's round is one sequence (restate, grow, target, converge), kept together so it reads as
    the method document's step does."""
    spec, params, growth, years, fy = part.spec, ctx.params, ctx.growth, ctx.years, ctx.fy
    stream = None if part.stream is None else part.stream.name
    areas = frames[0]
    lead = (ctx.scen.size,)
    if areas["baseline_gbp"].null_count() == 0:  # the round's published (restated) baseline
        start_gbp = areas["baseline_gbp"].to_numpy()
    elif areas["previous_recurrent_gbp"].null_count() == 0:  # no round for the year: last year's published allocation
        start_gbp = areas["previous_recurrent_gbp"].to_numpy()
    else:
        raise FundformError(f"{spec.id}: nhs_icb_allocations holds neither the {fy[0]} round of stream "
                            f"'{spec.baseline.stream}' nor the {year_before(fy[0])} round's "
                            f"published allocations for the run's areas ({areas['baseline_gbp'].null_count()} of "
                            f"{areas.height} have neither): start in a year whose round, or the round before, the "
                            f"data holds (it holds {rounds_held(ctx.data)})")
    start = round_half_up(start_gbp * 100)
    prev = np.broadcast_to(start, (*lead, start.shape[0])).astype(np.int64)
    results, targets_all, baselines_all, totals, rules = [], [], [], [], []
    for t, y in enumerate(fy):
        sp = spec.at(y)
        f = frames[t]
        published = f["baseline_gbp"].null_count() == 0
        if t > 0 and published and f["previous_recurrent_gbp"].null_count() == 0:
            restate = round_half_up(f["baseline_gbp"].to_numpy() * 100) - round_half_up(
                f["previous_recurrent_gbp"].to_numpy() * 100)
            prev = prev + restate
        if published and sp.baseline.base_growth == "published":
            g = f["base_growth_factor"].to_numpy()
        else:  # no published growth for the year: the version's index and real growth, never a silent zero
            if y not in growth:
                raise FundformError(f"{spec.id}: {y} has no published round, so its base growth is the index "
                                    f"'{spec.control_total.inflation_index}' plus real growth, and the index has no "
                                    f"growth for {y} (it has {', '.join(sorted(growth))})")
            g = np.full(f.height, (1 + growth[y]) * (1 + sp.control_total.real_growth.value))
        grown = prev * g
        total = round_half_up(grown.sum(axis=-1))
        shares = f["target_share"].to_numpy()
        label = f"{y} (round {y}" + (f", stream {stream})" if stream else ")")
        if sp.baseline.target_total == "published_fair_shares" and published and f["fair_shares_target_gbp"].null_count():
            raise FundformError(f"{spec.id}: round {y} of stream '{spec.baseline.stream}' publishes no fair shares "
                                f"targets (nhs_icb_allocations.fair_shares_target is empty), and the "
                                f"{'stream' if stream else 'version'}'s targets are that round's published fair shares "
                                "(target_total = \"published_fair_shares\"): set target_total = \"control_total\" "
                                "for it (a stream's own key), as a stream whose rule takes no targets does")
        if sp.baseline.target_total == "published_fair_shares" and published:
            fst = f["fair_shares_target_gbp"].to_numpy()
            base = f["baseline_gbp"].to_numpy()
            tg = g if sp.baseline.target_growth == "icb" else np.full(f.height, (base * g).sum() / base.sum())
            w = shares * tg
            tgt = apportion(round_half_up(fst.sum() * 100 * w.sum()), w)
            tgt = np.broadcast_to(tgt, prev.shape)
        else:
            tgt = apportion(total, np.broadcast_to(shares, prev.shape))
        base_t = apportion(total, grown)
        rule = sp.transition
        given = (given_convergence(f, rule, spec, y, published=published, stream=stream)[None, :]
                 if isinstance(rule, GivenConvergence) else None)
        tr = run_transition(prev, tgt[..., None, :], np.asarray(total)[..., None], sp.transition, [label],
                            baselines=base_t[..., None, :], growth=np.broadcast_to(g, prev.shape)[..., None, :],
                            inflation=np.array([growth.get(y, 0.0)]),
                            values=None if values is None else values[t], first_year=t + 1,
                            infeasible=infeasible, given=given)
        results.append(tr)
        targets_all.append(tgt)
        baselines_all.append(base_t)
        totals.append(total)
        rules.append(sp.transition)
        prev = tr.allocation[..., 0, :]
    year0 = year_before(params.start_year)
    all_years = pl.concat([pl.DataFrame({"financial_year": [year0], "year_index": [0]}, schema=years.schema), years])
    path = control_total_path(int(start.sum()), spec.control_total, growth, all_years)
    all_totals = np.stack([np.broadcast_to(start.sum(), np.shape(totals[0])), *totals], axis=-1).astype(np.int64)
    return RoundPath(path=path, targets=np.stack(targets_all, axis=-2), baselines=np.stack(baselines_all, axis=-2),
                     transition=_cat(results), rules=rules, totals=all_totals)


def given_convergence(frame: pl.DataFrame, rule: GivenConvergence, spec: FormulaSpec, year: str, *, published: bool,
                      stream: str | None) -> np.ndarray:
    """Each area's convergence for a given_convergence rule in `year`: the round's published column, or the rule's
    table by NHS region (each ICB's region as the round records it) or by ICB. Every area must have one, and every
    code the table names must be one the round knows: a table naming no such region or ICB is a mistake, not
    ignored."""
    what = f"{spec.id}: round {year}" + (f" of stream '{stream}'" if stream else "")
    codes = frame["area_code"]
    if rule.convergence == "published":
        c = frame["published_convergence"] if published else None
        if c is None or c.null_count():
            missing = codes.to_list() if c is None else codes.filter(c.is_null()).to_list()
            raise FundformError(f"{what}: transition.convergence = \"published\" reads the round's convergence column "
                                f"(nhs_icb_allocations.convergence), which is empty for {len(missing)} of {len(codes)} "
                                f"areas (e.g. {', '.join(missing[:5])}): give the round's convergence per ICB, or "
                                "state it by region or ICB (convergence = \"by_region\" or \"by_icb\")")
        return c.to_numpy().astype(np.float64)
    table = present(rule.by_region if rule.convergence == "by_region" else rule.by_icb,
                    f"transition.{rule.convergence}")
    keys = frame["round_region"] if rule.convergence == "by_region" else codes
    if keys.null_count():
        raise FundformError(f"{what}: transition.by_region needs each ICB's NHS region from the round "
                            f"(nhs_icb_allocations.nhs_region_code), which is missing or not one region for "
                            f"{', '.join(codes.filter(keys.is_null()).to_list()[:5])}")
    known = set(keys.to_list())
    unknown = sorted(set(table) - known)
    if unknown:
        kind = "NHS region" if rule.convergence == "by_region" else "ICB"
        raise FundformError(f"{what}: transition.{rule.convergence} names {kind} code(s) {', '.join(unknown)} that "
                            f"name no {kind} of the round (it has {', '.join(sorted(known))})")
    missing = sorted(known - set(table))
    if missing:
        raise FundformError(f"{what}: transition.{rule.convergence} gives no convergence for "
                            f"{', '.join(missing)}: every {'region' if rule.convergence == 'by_region' else 'ICB'} of "
                            "the run needs one")
    return np.array([table[k].value for k in keys.to_list()], dtype=np.float64)


def round_identities(rounds: pl.DataFrame) -> pl.DataFrame:
    """Which rule each published stream round follows, from its own columns: for every (round, stream) whose
    outcomes are published, the largest residual (over its ICBs) of each identity a sheet may satisfy, and the rule
    they point to (docs/nhs-rounds.md, "Finding a stream's rule"):

    - multiplicative: allocation = baseline x (1 + base growth) x (1 + convergence)  (nhs_convergence)
    - additive:       allocation = baseline x (1 + base growth + convergence)        (combine = "additive")
    - uniform:        allocation = baseline x (1 + base growth), convergence empty or 0  (rule = "uniform")

    and whether the round publishes targets (fair shares) and whether its convergence is one figure per NHS region
    (given_convergence, convergence = "published" or "by_region")."""
    alloc, base, g = pl.col("recurrent_allocation"), pl.col("adjusted_recurrent_baseline"), pl.col("base_growth")
    c = pl.col("convergence").fill_null(0.0)
    rows = (rounds.filter(alloc.is_not_null())
            .with_columns(multiplicative=(alloc / (base * (1 + g) * (1 + c)) - 1).abs(),
                          additive=(alloc / (base * (1 + g + c)) - 1).abs(),
                          uniform=(alloc / (base * (1 + g)) - 1).abs()))
    per_region = rows.group_by("allocation_round", "stream", "nhs_region_code").agg(
        spread=pl.col("convergence").max() - pl.col("convergence").min())
    out = (rows.group_by("allocation_round", "stream").agg(
        icbs=pl.len(), multiplicative=pl.col("multiplicative").max(), additive=pl.col("additive").max(),
        uniform=pl.col("uniform").max(), targets=pl.col("fair_shares_target").is_not_null().all(),
        convergence=pl.col("convergence").is_not_null().all())
        .join(per_region.group_by("allocation_round", "stream").agg(
            by_region=pl.col("spread").fill_null(0.0).max() < 1e-9), on=["allocation_round", "stream"])
        .with_columns(by_region=pl.col("by_region") & pl.col("convergence"))
        .sort("stream", "allocation_round"))
    best = pl.min_horizontal("multiplicative", "additive", "uniform")
    # ties go to the simplest rule: uniform where growth alone explains it, then additive, then multiplicative
    rule = (pl.when(pl.col("uniform") <= best * 1.000001).then(pl.lit("uniform"))
            .when(pl.col("additive") <= pl.col("multiplicative"))
            .then(pl.when(pl.col("targets")).then(pl.lit("nhs_convergence, combine = \"additive\""))
                  .otherwise(pl.lit("given_convergence, combine = \"additive\"")))
            .otherwise(pl.when(pl.col("targets")).then(pl.lit("nhs_convergence"))
                       .otherwise(pl.lit("given_convergence"))))
    closest = (pl.when(pl.col("uniform") <= best * 1.000001).then(pl.lit("uniform"))
               .when(pl.col("additive") <= pl.col("multiplicative")).then(pl.lit("additive"))
               .otherwise(pl.lit("multiplicative")))
    fits = best <= RULE_TOLERANCE
    none = pl.format("no rule fits within {}% (closest: {}, largest residual {}%)",
                     pl.lit(f"{RULE_TOLERANCE:.2%}".rstrip("%")), closest, (best * 100).round(4))
    shape = (pl.when(pl.col("uniform") <= best * 1.000001)
             .then(pl.lit("every ICB's baseline grows by the round's base growth; no convergence"))
             .when(pl.col("additive") <= pl.col("multiplicative"))
             .then(pl.lit("baseline x (1 + base growth + convergence), the convergence added to the growth"))
             .otherwise(pl.lit("baseline x (1 + base growth) x (1 + convergence)")))
    source = (pl.when(pl.col("uniform") <= best * 1.000001).then(pl.lit(""))
              .when(pl.col("by_region")).then(pl.lit("; one convergence figure per NHS region, published"))
              .when(pl.col("targets")).then(pl.lit("; convergence from each ICB's distance to its published fair "
                                                   "shares target (or read as the sheet publishes it)"))
              .otherwise(pl.lit("; convergence published per ICB, no targets")))
    words = pl.when(fits).then(pl.concat_str([shape, source])).otherwise(
        pl.format("no rule fits: the closest identity misses an ICB by {}%", (best * 100).round(4)))
    return out.with_columns(largest_residual=best, fits=fits,
                            rule=pl.when(fits).then(rule).otherwise(none), in_words=words)


# A rule "fits" a published round when every ICB's allocation is reproduced within this share: the sheets publish
# GBP thousands (running cost allowances whole thousands, 0.012% at the smallest ICB), so a rule that holds leaves
# residuals well inside it; the same tolerance as every reproduced line of a letter (tests/test_icb_allocation.py)
RULE_TOLERANCE = 0.0005
