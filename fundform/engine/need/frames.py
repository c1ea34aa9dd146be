"""Need assembly: each area's need, target share, population and today's funding, for each settlement year from
that year's inputs and the version as dated for that year."""

from __future__ import annotations

import polars as pl

from fundform.base.errors import FundformError, InvalidInput, Problem, present
from fundform.base.numeric import fixed_sum
from fundform.base.years import year_before
from fundform.engine.baselines import (
    baseline_by_area,
    check_baseline_year,
    icb_names,
    icb_vintage,
    published_round,
    rounds_held,
    to_vintage,
)
from fundform.engine.geography import roll_up
from fundform.engine.need.axis import version_need
from fundform.engine.need.weighted_population import target_shares
from fundform.formula.spec import FormulaSpec, iter_needs, model_key
from fundform.inputs.dataset import Dataset

WP_COMPONENTS = ("wp_general_acute", "wp_community", "wp_mental_health", "wp_maternity", "wp_health_inequalities",
                 "wp_prescribing")


def _need_from_age_curve(data: Dataset, spec: FormulaSpec, level: str) -> pl.LazyFrame:
    """Each lower-tier authority's need (`need.axis`, the one computation), summed to the level."""
    steps = version_need(data, spec.need)
    ltla = pl.LazyFrame({"area_code": steps.inputs.codes, "population": steps.inputs.population,
                         "age_weighted_population": steps.age_weighted[0],
                         "need_weighted_population": steps.need_weighted[0]})
    return roll_up(ltla, data.lazy("area_lookup"), level,
                   ["population", "age_weighted_population", "need_weighted_population"])


def _need_from_practices(data: Dataset, spec: FormulaSpec, level: str, year: str | None = None,
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
        frame = to_vintage(frame, icb_vintage(data, vintage) if vintage else None, key, cols)
        names = (icb_names(data) if level == "icb" else data.lazy("area_lookup").filter(
            pl.col("level") == level).select(pl.col("target_code").alias("code"), area_name="target_name").unique(
            maintain_order=True)).rename({"code": key})
        return (frame.sort(key, "practice_code").group_by(key, maintain_order=True)
                .agg([fixed_sum(pl.col(c)).alias(c) for c in cols])
                .join(names, on=key, how="left", maintain_order="left").rename({key: "area_code"}).sort("area_code"))
    by_ltla = frame.sort("area_code", "practice_code").group_by("area_code", maintain_order=True).agg(
        [fixed_sum(pl.col(c)).alias(c) for c in cols])
    return roll_up(by_ltla, data.lazy("area_lookup"), level, cols)


def area_frame(data: Dataset, spec: FormulaSpec, level: str, year: str | None = None, vintage: str | None = None
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
    money = baseline_by_area(data, spec, level)
    frame = need.join(money.drop("area_name"), on="area_code", how="left", maintain_order="left")
    published = spec.baseline.source == "nhs_icb_allocations"
    if published:
        rnd = present(year or spec.baseline.allocation_round, "baseline.allocation_round")
        before = published_round(data, spec, level, year_before(rnd), vintage).select(
            "area_code", previous_recurrent_gbp="recurrent_allocation_gbp")
        frame = (frame.drop("baseline_gbp")
                 .join(published_round(data, spec, level, rnd, vintage), on="area_code", how="left",
                       maintain_order="left")
                 .join(before, on="area_code", how="left", maintain_order="left"))
    shares = target_shares(frame)
    if spec.baseline.target_shares == "published_fair_shares":
        fst = pl.col("fair_shares_target_gbp")
        shares = shares.with_columns(target_share=fst / fst.sum())
    out = shares.collect()
    needed = ["population", "need_weighted_population"] + ([] if published else ["baseline_gbp"])
    if spec.baseline.target_shares == "published_fair_shares":
        needed.append("fair_shares_target_gbp")
    gaps = out.filter(pl.any_horizontal(pl.col(needed).is_null()))
    if gaps.height and published and gaps["fair_shares_target_gbp"].null_count():
        raise FundformError(
            f"{spec.id}: no published round {year or spec.baseline.allocation_round} of stream '{spec.baseline.stream}' for "
            f"{gaps['fair_shares_target_gbp'].null_count()} of {out.height} areas at level {level} (e.g. "
            f"{', '.join(gaps.filter(pl.col('fair_shares_target_gbp').is_null())['area_code'].to_list()[:5])}), and "
            f"the year's targets are that round's published fair shares (baseline.target_shares = "
            f"\"published_fair_shares\"). nhs_icb_allocations holds {rounds_held(data)}. Start in a year whose round "
            "the data holds (--start-year), or append the round's rows (docs/nhs-rounds.md)")
    if gaps.height:
        raise FundformError(f"areas at level {level} without need or baseline"
                            + (f" in {year}" if year else "") + f": {gaps['area_code'].to_list()[:10]}")
    return out


def year_frames(data: Dataset, spec: FormulaSpec, level: str, fy: list[str]) -> list[pl.DataFrame]:
    """The area frame of each settlement year: that year's inputs (population, practice weights, published round)
    under the version as it stands that year (its dated sections), on the areas of the run's last year. Computed
    once when nothing varies by year."""
    return data.memo(("year_frames", frames_key(spec), level, tuple(fy)),
                     lambda: _year_frames(data, spec, level, fy))


def frames_key(spec: FormulaSpec) -> tuple:
    """What the area frames depend on: the version's need and today's funding (as dated by year), the control
    total's base year (checked against the baseline's) and its id (named in messages); not its transition, local tax
    or growth, so a scenario varying those reads the frames a run already derived."""
    import json

    dated = {y: {k: v for k, v in section.items() if k in ("need", "baseline")} for y, section in spec.years.items()}
    return (spec.id, model_key(spec.need), model_key(spec.baseline), spec.control_total.base_year,
            json.dumps(dated, sort_keys=True, default=str))


def _year_frames(data: Dataset, spec: FormulaSpec, level: str, fy: list[str]) -> list[pl.DataFrame]:
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


def check_indicator_tables(spec: FormulaSpec, data: Dataset) -> None:
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
