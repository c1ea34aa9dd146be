"""One allocation run, end to end: checked inputs -> need -> targets -> five-year settlement -> local tax -> grant.

``compute`` is pure (data and formula in, frames out); ``run`` adds reading, the manifest and the atomic write.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl

from fundform.errors import FundformError, InvalidInput, Problem, UsageProblem
from fundform.failpoints import failpoint
from fundform.formula.registry import LoadedFormula
from fundform.formula.scenario import resolve_formula
from fundform.formula.spec import Baseline, LocalTax, Transition, assumed_numbers, format_year, iter_needs, parse_year
from fundform.geography import deal_level_name, roll_up, with_level
from fundform.inputs.dataset import Dataset, indicator_files, load_dataset, sha256_file, table_sources
from fundform.inputs.tables import CONTRACTS, INDICATOR_PREFIX, LEVELS
from fundform.localtax.resources import local_resources
from fundform.need.weighted_population import need_weighted_population, target_shares
from fundform.numeric import fixed_sum
from fundform.outputs.manifest import build_manifest, with_volatile
from fundform.outputs.schema import ALLOCATIONS, COHORTS, NEED, RECONCILIATION, STREAMS, WATERFALL
from fundform.outputs.warehouse import check_usable, record_run
from fundform.outputs.write import atomic_write_dir, to_arrow
from fundform.settlement.control_total import control_total_path, index_growth, index_levels, settlement_years
from fundform.settlement.money import apportion, largest_remainder, round_half_up
from fundform.settlement.transition import (
    BOUND_CEILING,
    BOUND_FLOOR,
    TransitionResult,
    ceiling_pence,
    floor_pence,
    round_to_pence,
    run_transition,
    solve_bounded,
)
from fundform.waterfall import cohort_budgets, need_steps, waterfall


@dataclass(frozen=True)
class RunParameters:
    level: str = "ltla"
    start_year: str = "2026/27"
    years: int = 5
    price_base_year: str | None = None  # default: the first settlement year
    precept_rates: Path | None = None  # CSV area_code, rate: per-area adult social care precept rates
    local_bases: Path | None = None  # CSV area_code, income_base, business_rates_discount
    deal_path: Path | None = None  # set from level "deal:<path>": the user's deal-area file
    allow_implausible: bool = False  # inputs outside plausibility bounds run (and are listed in the manifest)

    def __post_init__(self) -> None:
        if self.level.startswith("deal:") and self.deal_path is None:
            path = Path(self.level[5:])
            if not path.is_file():
                raise FundformError(f"deal-area file {path} not found")
            object.__setattr__(self, "deal_path", path)
            object.__setattr__(self, "level", deal_level_name(path))  # outputs name the level by the file's name
        elif self.level not in LEVELS and self.deal_path is None:
            raise UsageProblem(f"unknown level '{self.level}' (choose one of {', '.join(LEVELS)}, or deal:FILE.csv)")
        try:
            parse_year(self.start_year)
            if self.price_base_year:
                parse_year(self.price_base_year)
        except ValueError as e:
            raise UsageProblem(str(e)) from None
        if not 1 <= self.years <= 20:
            raise UsageProblem(f"--years must be between 1 and 20, got {self.years}")

    @property
    def deal_file(self) -> Path | None:
        return self.deal_path

    @property
    def price_base(self) -> str:
        return self.price_base_year or self.start_year

    def as_dict(self) -> dict:
        out = {"level": self.level, "start_year": self.start_year, "years": self.years,
               "price_base_year": self.price_base}
        for name in ("precept_rates", "local_bases"):
            if getattr(self, name) is not None:
                out[name] = Path(getattr(self, name)).name
        if self.allow_implausible:  # only when set, so every other run keeps its id
            out["allow_implausible"] = True
        return out


@dataclass
class RunResult:
    allocations: pl.DataFrame  # money columns in int64 pence
    need: pl.DataFrame
    reconciliation: pl.DataFrame
    control_totals: pl.DataFrame
    policies: dict = field(default_factory=dict)
    manifest: dict = field(default_factory=dict)
    out_dir: Path | None = None
    streams: pl.DataFrame | None = None
    waterfall: pl.DataFrame | None = None
    cohorts: pl.DataFrame | None = None


WP_COMPONENTS = ("wp_general_acute", "wp_community", "wp_mental_health", "wp_maternity", "wp_health_inequalities",
                 "wp_prescribing")


def _baseline_by_area(data: Dataset, spec, level: str) -> pl.LazyFrame:
    """Today's funding per area of the level: the version's baseline components, summed up from lower tier."""
    baseline = data.lazy("baseline").select("area_code", baseline_gbp=pl.sum_horizontal(*spec.baseline.components))
    return roll_up(baseline, data.lazy("area_lookup"), level, ["baseline_gbp"])


def _need_from_age_curve(data: Dataset, spec, level: str) -> pl.LazyFrame:
    tables = {name: data.lazy(name) for name in data.tables}
    need = need_weighted_population(data.lazy("population"), spec.need.age_cost_curve, spec.need.indicators, tables)
    return roll_up(need, data.lazy("area_lookup"), level,
                   ["population", "age_weighted_population", "need_weighted_population"])


def icb_vintage(data: Dataset, year: str) -> pl.DataFrame | None:
    """old ICB -> new ICB shares for the changes in force by `year` (None when the data records none): the ICB
    configuration a run whose last year is `year` reports on."""
    if "icb_changes" not in data.tables:
        return None
    ch = data["icb_changes"].filter(pl.col("effective_year").map_elements(parse_year, return_dtype=pl.Int64)
                                    <= parse_year(year))
    return ch if ch.height else None


def _to_vintage(frame: pl.LazyFrame, changes: pl.DataFrame | None, key: str, cols: list[str]) -> pl.LazyFrame:
    """Rows on ICBs that later merged or split, moved to the ICBs of the run's vintage by the recorded shares
    (additive columns only); rows already on the new ICBs pass unchanged."""
    if changes is None or key != "icb_code":
        return frame
    moves = changes.lazy().select(pl.col("old_code").alias(key), "new_code", "share")
    return (frame.join(moves, on=key, how="left")
            .with_columns(pl.coalesce("new_code", key).alias(key),
                          *[pl.col(c) * pl.col("share").fill_null(1.0) for c in cols])
            .drop("new_code", "share"))


def icb_names(data: Dataset) -> pl.LazyFrame:
    """ICB code -> name, for the ICBs of the area lookup and any later ones the boundary changes record."""
    names = data.lazy("area_lookup").filter(pl.col("level") == "icb").select(
        pl.col("target_code").alias("code"), area_name="target_name").unique(maintain_order=True)
    if "icb_changes" in data.tables:
        later = data.lazy("icb_changes").select(pl.col("new_code").alias("code"), area_name="new_name").unique(
            maintain_order=True)
        names = pl.concat([names, later.join(names, on="code", how="anti")])
    return names


def _need_from_practices(data: Dataset, spec, level: str, year: str | None = None,
                         vintage: str | None = None) -> pl.LazyFrame:
    """NHS England's practice weighted populations summed to the level: ICBs and NHS regions directly from each
    practice's own codes (moved to the ICBs of the run's vintage), councils through the practice's authority. The
    weights are the version's `weights_year`, or each settlement year's own when that is "settlement_year"."""
    if "practice_weighted_population" not in data.tables:
        raise FundformError(f"{spec.id} needs the optional table practice_weighted_population in {data.directory}")
    wy = year if spec.need.weights_year == "settlement_year" and year else spec.need.weights_year
    practices = data.lazy("practice_weighted_population").filter(pl.col("weights_year") == wy)
    if practices.select(pl.len()).collect().item() == 0:
        held = sorted(data["practice_weighted_population"]["weights_year"].unique().to_list())
        raise InvalidInput([Problem(next((f.path.name for f in data.files if f.table == "practice_weighted_population"),
                                         "practice_weighted_population"), "weights_year",
                                    f"no practices for weights year {wy}" + (f" (settlement year {year})" if year else ""),
                                    f"the weights of every year the run needs (the table holds {', '.join(held)})")],
                           str(data.directory))
    cols = ["population", "need_weighted_population", *WP_COMPONENTS]
    frame = practices.select("practice_code", "area_code", "icb_code", "nhs_region_code", *WP_COMPONENTS,
                             population="registered_population",
                             need_weighted_population=spec.need.weighted_population_column)
    zero = (frame.group_by("icb_code").agg(pl.col("need_weighted_population").sum())
            .filter(pl.col("need_weighted_population") <= 0).collect())
    if zero.height:
        raise InvalidInput([Problem(next((f.path.name for f in data.files if f.table == "practice_weighted_population"),
                                         "practice_weighted_population"), spec.need.weighted_population_column,
                                    f"{zero.height} ICB(s) whose practices have no weighted population in "
                                    f"{wy}", "a weighted population > 0 for every ICB (its "
                                    "target share is its share of the total)", tuple(zero["icb_code"].sort()))],
                           str(data.directory))
    if level in ("icb", "nhs-region"):
        key = "icb_code" if level == "icb" else "nhs_region_code"
        frame = _to_vintage(frame, icb_vintage(data, vintage) if vintage else None, key, cols)
        names = (icb_names(data) if level == "icb" else data.lazy("area_lookup").filter(
            pl.col("level") == level).select(pl.col("target_code").alias("code"), area_name="target_name").unique(
            maintain_order=True)).rename({"code": key})
        return (frame.sort(key, "practice_code").group_by(key, maintain_order=True)
                .agg([fixed_sum(pl.col(c)).alias(c) for c in cols])
                .join(names, on=key, how="left", maintain_order="left").rename({key: "area_code"}).sort("area_code"))
    by_ltla = frame.sort("area_code", "practice_code").group_by("area_code", maintain_order=True).agg(
        [fixed_sum(pl.col(c)).alias(c) for c in cols])
    return roll_up(by_ltla, data.lazy("area_lookup"), level, cols)


def published_round(data: Dataset, spec, level: str, round_year: str, vintage: str | None = None
                    ) -> pl.LazyFrame:
    """Per area: what NHS England published for the allocation round `round_year` (no rows if the data holds no
    such round): the adjusted recurrent baseline (last year's allocation as restated for the round), the base
    growth factor, the base year's fair shares targets and the round's recurrent allocation, on the ICBs of the
    run's vintage."""
    if "nhs_icb_allocations" not in data.tables:
        raise FundformError(f"{spec.id} needs the optional table nhs_icb_allocations in {data.directory}")
    if level not in ("icb", "nhs-region"):
        raise FundformError(f"{spec.id} starts from NHS England's published ICB baselines: use --level icb or "
                            f"nhs-region (got {level})")
    key = "icb_code" if level == "icb" else "nhs_region_code"
    money = ["adjusted_recurrent_baseline", "grown", "fair_shares_target", "recurrent_allocation"]
    rnd = (data.lazy("nhs_icb_allocations").filter(pl.col("allocation_round") == round_year)
           .with_columns(grown=pl.col("adjusted_recurrent_baseline") * (1 + pl.col("base_growth"))))
    rnd = _to_vintage(rnd, icb_vintage(data, vintage) if vintage else None, key, money)
    return (rnd.sort(key, "icb_code").group_by(key, maintain_order=True).agg(
        baseline_gbp=fixed_sum(pl.col("adjusted_recurrent_baseline")),
        grown=fixed_sum(pl.col("grown")),
        fair_shares_target_gbp=fixed_sum(pl.col("fair_shares_target")),
        recurrent_allocation_gbp=fixed_sum(pl.col("recurrent_allocation")),
    ).select(pl.col(key).alias("area_code"), "baseline_gbp", "fair_shares_target_gbp", "recurrent_allocation_gbp",
             base_growth_factor=pl.col("grown") / pl.col("baseline_gbp")))


def check_baseline_year(data: Dataset, spec) -> None:
    """The baseline table's year must be the year the version's control total grows from: a 2023/24 baseline under
    a version that grows from 2024/25 would be a year of growth short, silently."""
    uses_table = spec.baseline.source == "baseline_table"
    if not uses_table or "baseline" not in data.tables or "baseline_year" not in data["baseline"].columns:
        return
    years = sorted(data["baseline"]["baseline_year"].unique().to_list())
    if years != [spec.control_total.base_year]:
        file = next((f.path.name for f in data.files if f.table == "baseline"), "baseline")
        raise InvalidInput([Problem(file, "baseline_year", f"holds {', '.join(map(str, years))}",
                                    f"{spec.control_total.base_year}, the year {spec.id}'s control total grows from "
                                    "(control_total.base_year); give the baseline of that year, or a version or "
                                    "--set control_total.base_year that matches the data")], str(data.directory))


def area_frame(data: Dataset, spec, level: str, year: str | None = None, vintage: str | None = None
               ) -> pl.DataFrame:
    """One row per area of the level: need, target share, today's funding, the local tax base. `year`: the
    settlement year the frame is for (its practice weights and published round, for NHS versions); `vintage`: the
    last year of the run, whose ICB configuration the frame reports on."""
    check_baseline_year(data, spec)
    if spec.need.method == "age_cost_curve":
        need = _need_from_age_curve(data, spec, level).with_columns(
            [pl.lit(None, dtype=pl.Float64).alias(c) for c in WP_COMPONENTS])
    else:
        need = _need_from_practices(data, spec, level, year, vintage).with_columns(
            age_weighted_population=pl.lit(None, dtype=pl.Float64))
    money = _baseline_by_area(data, spec, level)
    frame = need.join(money.drop("area_name"), on="area_code", how="left", maintain_order="left")
    published = spec.baseline.source == "nhs_icb_allocations"
    if published:
        rnd = year or spec.baseline.allocation_round
        before = published_round(data, spec, level, format_year(parse_year(rnd) - 1), vintage).select(
            "area_code", previous_recurrent_gbp="recurrent_allocation_gbp")
        frame = (frame.drop("baseline_gbp")
                 .join(published_round(data, spec, level, rnd, vintage), on="area_code", how="left",
                       maintain_order="left")
                 .join(before, on="area_code", how="left", maintain_order="left"))
    out = target_shares(frame)
    if spec.baseline.target_shares == "published_fair_shares":
        fst = pl.col("fair_shares_target_gbp")
        out = out.with_columns(target_share=fst / fst.sum())
    out = out.collect()
    needed = ["population", "need_weighted_population"] + ([] if published else ["baseline_gbp"])
    if spec.baseline.target_shares == "published_fair_shares":
        needed.append("fair_shares_target_gbp")
    gaps = out.filter(pl.any_horizontal(pl.col(needed).is_null()))
    if gaps.height:
        raise FundformError(f"areas at level {level} without need or baseline"
                            + (f" in {year}" if year else "") + f": {gaps['area_code'].to_list()[:10]}")
    return out


def year_frames(data: Dataset, spec, level: str, fy: list[str]) -> list[pl.DataFrame]:
    """The area frame of each settlement year: that year's inputs (population, practice weights, published round)
    under the version as it stands that year (its dated sections), on the areas of the run's last year. Computed
    once when nothing varies by year."""
    return data.memo(("year_frames", spec.model_dump_json(), level, tuple(fy)),
                     lambda: _year_frames(data, spec, level, fy))


def _year_frames(data: Dataset, spec, level: str, fy: list[str]) -> list[pl.DataFrame]:
    per_year = (data.population_years is not None or bool(spec.years)
                or spec.baseline.source == "nhs_icb_allocations" or spec.need.weights_year == "settlement_year")
    if not per_year:
        one = area_frame(data, spec, level)
        return [one] * len(fy)
    vintage = fy[-1]
    frames = [area_frame(data.for_year(y), spec.at(y), level, y if spec.baseline.source == "nhs_icb_allocations"
                         or spec.at(y).need.weights_year == "settlement_year" else None, vintage) for y in fy]
    codes = frames[0]["area_code"]
    for y, f in zip(fy, frames):
        if not f["area_code"].equals(codes):
            raise FundformError(f"the areas of level {level} differ between {fy[0]} and {y}: "
                                f"{sorted(set(codes) ^ set(f['area_code']))[:10]}")
    return frames


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


def settlement_inputs(frames: list[pl.DataFrame], spec, params: RunParameters, growth: dict[str, float],
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
class RoundPath:
    """A run of published NHS rounds, year by year: what each year started from, its targets and the transition."""

    path: pl.DataFrame
    targets: np.ndarray  # (..., years, areas) pence
    baselines: np.ndarray  # (..., years, areas) pence: last year's allocation (restated) grown by base growth
    transition: TransitionResult
    rules: list
    totals: np.ndarray  # (..., years + 1) pence: the start and each year's control total


def _cat(results: list[TransitionResult]) -> TransitionResult:
    by_year = lambda name: np.concatenate([getattr(r, name) for r in results], axis=-2)  # noqa: E731
    per_year = lambda name: np.concatenate([getattr(r, name) for r in results], axis=-1)  # noqa: E731
    return TransitionResult(previous=by_year("previous"), allocation=by_year("allocation"), bound=by_year("bound"),
                            unconstrained=by_year("unconstrained"), scale_back=per_year("scale_back"),
                            guarantee=by_year("guarantee"), released=per_year("released"),
                            years_to_target=results[-1].years_to_target)


def nhs_round_path(frames: list[pl.DataFrame], spec, params: RunParameters, growth: dict[str, float],
                   years: pl.DataFrame, values: dict[str, np.ndarray] | None = None, scenarios: int | None = None,
                   held: list[str] | tuple[str, ...] = ()) -> RoundPath:
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
    `values` (arrays (S, 1)) sweep the rule's numbers across `scenarios`."""
    fy = years["financial_year"].to_list()
    areas = frames[0]
    lead = () if scenarios is None else (scenarios,)
    if areas["baseline_gbp"].null_count() == 0:  # the round's published (restated) baseline
        start_gbp = areas["baseline_gbp"].to_numpy()
    elif areas["previous_recurrent_gbp"].null_count() == 0:  # no round for the year: last year's published allocation
        start_gbp = areas["previous_recurrent_gbp"].to_numpy()
    else:
        raise FundformError(f"{spec.id}: nhs_icb_allocations holds neither the {fy[0]} round nor the year before's "
                            f"for the run's areas ({areas['baseline_gbp'].null_count()} of {areas.height} have "
                            "none): start in a year whose round, or the round before, the data holds"
                            + (f" (rounds held: {', '.join(held)})" if held else ""))
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
        tr = run_transition(prev, tgt[..., None, :], np.asarray(total)[..., None], sp.transition, [y],
                            baselines=base_t[..., None, :], growth=np.broadcast_to(g, prev.shape)[..., None, :],
                            inflation=np.array([growth.get(y, 0.0)]),
                            values=values[t] if isinstance(values, list) else values, first_year=t + 1)
        results.append(tr)
        targets_all.append(tgt)
        baselines_all.append(base_t)
        totals.append(total)
        rules.append(sp.transition)
        prev = tr.allocation[..., 0, :]
    year0 = format_year(parse_year(params.start_year) - 1)
    all_years = pl.concat([pl.DataFrame({"financial_year": [year0], "year_index": [0]}, schema=years.schema), years])
    path = control_total_path(int(start.sum()), spec.control_total, growth, all_years)
    all_totals = np.stack([np.broadcast_to(start.sum(), np.shape(totals[0])), *totals], axis=-1).astype(np.int64)
    if scenarios is None:
        path = path.with_columns(control_total=pl.Series(all_totals))
    return RoundPath(path, np.stack(targets_all, axis=-2), np.stack(baselines_all, axis=-2), _cat(results), rules,
                     all_totals)


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


def _allocate(data: Dataset, spec, params: RunParameters, years: pl.DataFrame, growth: dict[str, float],
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
            factors = link.path["control_total"].to_numpy() / link.base_year_total
            path = path.with_columns(control_total=pl.Series(round_half_up(base_year_total * factors)))
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


def stream_spec(spec, stream):
    """The version as seen by one stream: its need, baseline, growth and rule; local tax applies to the pool."""
    ct = spec.control_total if stream.real_growth is None else spec.control_total.model_copy(
        update={"real_growth": stream.real_growth})
    return spec.model_copy(update={
        "need": stream.need or spec.need, "baseline": Baseline(components=stream.baseline_components),
        "control_total": ct, "transition": stream.transition or spec.transition, "streams": [],
        "local_tax": LocalTax(rule="none")})


def _label(bound: np.ndarray) -> np.ndarray:
    return np.where(bound == BOUND_FLOOR, "floor", np.where(bound == BOUND_CEILING, "ceiling", "none"))


def compute(data: Dataset, formula: LoadedFormula, params: RunParameters,
            progress: Callable[[str], None] | None = None) -> RunResult:
    step = progress or (lambda _msg: None)
    spec = formula.spec
    years = settlement_years(params.start_year, params.years)
    outside = sorted(set(years["financial_year"]) - set(spec.effective_years))
    if outside:
        raise FundformError(f"{spec.id} {spec.version} is effective for {', '.join(spec.effective_years)}; the run "
                            f"asks for {', '.join(outside)}")
    growth = index_growth(spec.indices, spec.control_total.inflation_index)
    check_indicator_tables(spec, data)
    data = with_level(data, params.level, params.deal_file)
    pop = data.tables["population"]
    if pop.height > 200_000 and "small_area_code" in pop.columns:  # need uses area x sex x age: sum it once
        keys = [k for k in ("financial_year", "area_code", "sex", "age") if k in pop.columns]
        pop = pop.group_by(keys).agg(fixed_sum(pl.col("population")).alias("population")).sort(keys)
        data = Dataset(data.directory, {**data.tables, "population": pop}, data.files, data.conversions)
    fy = years["financial_year"].to_list()
    ref = data.for_year(fy[0])  # what is not computed year by year reads the first settlement year's population
    step("local resources")
    local = run_local_resources(ref, spec, params, fy)
    extra = None
    if spec.local_tax.basis == "grant":  # the envelope shared by need is the grant total plus e x sum(N)
        codes = area_frame(ref, spec, params.level)["area_code"].to_list()
        n_full = local.array("notional_local_resources", codes, fy).sum(axis=1) * 100
        per_year = round_half_up(local.degree * n_full)
        extra = np.concatenate([[per_year[0]], per_year])
    step("need, targets and transition")
    if not spec.streams:
        settlements = [_allocate(data, spec, params, years, growth, extra=extra)]
    else:
        done: dict[str, Settlement] = {}
        for st in sorted(spec.streams, key=lambda s: s.linked_to is not None):  # linked streams after their link
            step(f"stream {st.name}")
            done[st.name] = _allocate(data, stream_spec(spec, st), params, years, growth, st.name,
                                      done.get(st.linked_to) if st.linked_to else None)
        settlements = [done[st.name] for st in spec.streams]
    step("local tax and grants")
    return _finish(ref, spec, params, years, growth, settlements, local, data)


def run_local_resources(ref: Dataset, spec, params: RunParameters, fy: list[str]):
    """Local resources of a run (and of every scenario of a sweep): a precept tied to need reads each authority's
    need index from the first settlement year's data."""
    need_index = None
    if spec.local_tax.precept is not None and spec.local_tax.precept.rule == "tied_to_need" \
            and spec.need.method == "age_cost_curve":
        need_index = area_frame(ref, spec, "ltla").select("area_code", "need_index")
    return local_resources(ref, spec.local_tax, params.level, fy, need_index=need_index,
                           precept_file=params.precept_rates, bases_file=params.local_bases)


def check_indicator_tables(spec, data: Dataset) -> None:
    """Each indicator of the version (and of its streams) reads a table the dataset has, and a numeric column of it:
    a user's own table (indicators/<name>) can only be checked once the dataset is loaded."""
    problems = []
    for prefix, need in iter_needs(spec):
        for ind in need.indicators:
            frame = data.tables.get(ind.table)
            if frame is None:
                problems.append(f"{prefix}.indicators.{ind.name} reads table '{ind.table}', which {data.directory} "
                                f"does not have (expected {ind.table}.parquet or {ind.table}.csv there)")
            elif ind.column not in frame.columns or not frame.schema[ind.column].is_numeric():
                cols = [c for c, t in frame.schema.items() if t.is_numeric()]
                problems.append(f"{prefix}.indicators.{ind.name} reads column '{ind.column}' of '{ind.table}', which "
                                f"has no such numeric column (numeric columns: {', '.join(cols) or 'none'})")
    if problems:
        raise FundformError(f"{spec.id}: indicators without their data\n" + "\n".join(f"  - {p}" for p in problems))


def negative_grant_policy(grant: np.ndarray, population: np.ndarray, rule: LocalTax) -> np.ndarray:
    """Grants after the version's negative-grant rule, still summing to the same total each year: a tariff leaves
    negative grants (the area pays in); a floor at zero or a minimum grant per head is met by scaling back every
    other area's grant above its floor, solved exactly as the transition floors are."""
    if rule.negative_grants == "tariff":
        return grant
    floor = (np.zeros_like(grant, dtype=np.float64) if rule.negative_grants == "floor_at_zero"
             else np.broadcast_to(np.ceil(rule.minimum_grant_per_head.value * 100 * population), grant.shape)
             .astype(np.float64))
    if not (grant < floor).any():
        return grant
    total = grant.sum(axis=1)
    alloc, _ = solve_bounded(grant.astype(np.float64), floor, np.full(grant.shape, np.inf), total)
    rounded, _ = round_to_pence(alloc, floor, np.full(grant.shape, np.inf), total)
    return rounded


def _finish(data: Dataset, spec, params: RunParameters, years: pl.DataFrame, growth: dict[str, float],
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
    n_full = local.array("notional_local_resources", codes, fy)
    notional_full = pence(n_full)
    notional = pence(local.degree[:, None] * n_full)
    yields = {c: pence(local.array(c, codes, fy)) for c in
              ("council_tax_yield", "precept_flex_yield", "health_tax_yield", "business_rates_discount")}
    pop = np.stack([f["population"].to_numpy() for f in frames])  # (years, areas): each year's residents
    raw_grant = allocation + guarantee - notional
    grant = negative_grant_policy(raw_grant, pop, spec.local_tax)
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


def population_policy(data: Dataset, areas: pl.DataFrame, fy: list[str], frames: list[pl.DataFrame]) -> dict:
    """For the manifest: the population of the run's areas in each settlement year, when it varies by year."""
    if data.population_years is None:
        return {}
    return {"population_by_year": {y: round(float(f["population"].sum()), 1) for y, f in zip(fy, frames)},
            "population_years_in_data": [data.population_years[0], data.population_years[-1]]}


def baseline_sources(data: Dataset, spec) -> dict:
    """For the manifest: the year each of today's funding components comes from, where the data records it."""
    if spec.baseline.source != "baseline_table" or "baseline" not in data.tables:
        return {}
    b = data["baseline"]
    cols = {"nhs_core": "nhs_core_source_year", "nhs_primary_medical": "nhs_primary_medical_source_year",
            "adult_social_care": "council_spending_source_year", "public_health": "council_spending_source_year"}
    out = {}
    for comp, col in cols.items():
        if comp in spec.baseline.components and col in b.columns:
            out[comp] = sorted(b[col].unique().drop_nulls().to_list())
    return {"baseline_component_years": out} if out else {}


def extra_checks(alloc: pl.DataFrame, spec, settlements: list[Settlement]) -> list[tuple]:
    """Local-tax identities: adjustments net to zero; spending power = grant + local yield; on the grant basis,
    grants sum to the grant control total."""
    sums = alloc.group_by("financial_year", maintain_order=True).agg(
        pl.col("negative_grant_adjustment").sum(), pl.col("grant").sum(), pl.col("local_yield").sum(),
        pl.col("spending_power").sum(), pl.col("notional_local_tax").sum(), pl.col("control_total").first())
    rows = []
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
              spec, extra: list[tuple] = ()) -> pl.DataFrame:
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


@dataclass
class RunPlan:
    """What a run will be, known before computing anything: its resolved formula, its inputs' hashes, its id."""

    formula: object
    inputs: list[dict]
    parameters: dict
    run_id: str
    core: dict


def plan_run(formula_ref: str, data_dir: Path, params: RunParameters, sets: tuple[str, ...] = (),
             index_files: dict[str, Path] | None = None) -> RunPlan:
    formula = resolve_formula(formula_ref, sets, index_files=index_files)
    inputs = []
    for name in CONTRACTS:
        for path in table_sources(Path(data_dir), name):
            rel = path.name if path.parent == Path(data_dir) else f"{path.parent.name}/{path.name}"
            inputs.append({"table": name, "file": rel, "sha256": sha256_file(path)})
    inputs += [{"table": f"{INDICATOR_PREFIX}{path.stem}", "file": f"{INDICATOR_PREFIX}{path.name}",
                "sha256": sha256_file(path)} for path in indicator_files(Path(data_dir))]
    inputs += [{"table": name, "file": Path(path).name, "sha256": sha256_file(Path(path))}
               for name, path in (("precept_rates", params.precept_rates), ("local_bases", params.local_bases),
                                  ("deal_areas", params.deal_file)) if path and Path(path).is_file()]
    core = build_manifest(
        formula={"id": formula.spec.id, "version": formula.spec.version, "sha256": formula.sha256,
                 "file": formula.path.name, "resolved_sha256": formula.resolved_sha256,
                 "scenario": Path(formula.scenario).name if formula.scenario else None},
        inputs=inputs, parameters=params.as_dict(), overrides=[o.as_dict() for o in formula.overrides],
        policies={}, data_dir=str(data_dir),
        assumptions=[{"path": a["path"], "value": a["value"]} for a in assumed_numbers(formula.spec)])
    return RunPlan(formula, inputs, params.as_dict(), core["run_id"], core)


def run(formula_ref: str, data_dir: Path, params: RunParameters, out_dir: Path | None, out_root: Path,
        progress: Callable[[str], None] | None = None, write: bool = True, sets: tuple[str, ...] = (),
        index_files: dict[str, Path] | None = None, warehouse: Path | None = None,
        plan: RunPlan | None = None) -> RunResult:
    """Load and check everything, compute, and write the run atomically. Nothing is written if anything fails.

    formula_ref is a formula id, a formula file or a scenario file; sets are --set key.path=value overrides."""
    step = progress or (lambda _msg: None)
    if write and warehouse is not None:
        check_usable(warehouse)
    step("reading the formula version")
    plan = plan or plan_run(formula_ref, data_dir, params, sets, index_files)
    formula = plan.formula
    step("reading and checking the input data")
    data = load_dataset(data_dir, allow_implausible=params.allow_implausible)
    rows = {(f.path.name if f.path.parent == Path(data_dir) else f"{f.path.parent.name}/{f.path.name}"): f.rows
            for f in data.files}
    result = compute(data, formula, params, progress)
    failpoint("run.after_compute", out_dir)
    manifest = {**plan.core, "inputs": [{**i, **({"rows": rows[i["file"]]} if i["file"] in rows else {})}
                                        for i in plan.inputs], "policies": result.policies}
    result.manifest = manifest
    if not result.reconciliation["holds"].all():
        bad = result.reconciliation.filter(~pl.col("holds"))
        raise FundformError(f"internal error: reconciliation failed:\n{bad}")
    if write:
        step("writing outputs")
        target = Path(out_dir) if out_dir else Path(out_root) / manifest["run_id"]
        meta = {**manifest, "price_base_year": params.price_base}
        files = {
            "allocations.parquet": to_arrow(result.allocations, ALLOCATIONS, params.price_base, meta),
            "need.parquet": to_arrow(result.need, NEED, None, meta),
            "reconciliation.parquet": to_arrow(result.reconciliation, RECONCILIATION, None, meta),
            "streams.parquet": to_arrow(result.streams, STREAMS, None, meta),
            "waterfall.parquet": to_arrow(result.waterfall, WATERFALL, None, meta),
            "cohorts.parquet": to_arrow(result.cohorts, COHORTS, None, meta),
            # allow_nan=False: a NaN or infinity can never reach a manifest as bare, invalid JSON
            "manifest.json": json.dumps(with_volatile(manifest, str(data_dir)), indent=2, sort_keys=True,
                                        allow_nan=False) + "\n",
        }
        result.out_dir = atomic_write_dir(target, files)
        if warehouse is not None:
            step("recording in the run warehouse")
            record_run(warehouse, result.out_dir)
    return result
