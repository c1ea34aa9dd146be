"""Today's funding per area: the dataset's baseline table, or NHS England's published allocation rounds on the
ICBs of a run's vintage (boundary changes applied)."""

from __future__ import annotations

import polars as pl

from fundform.base.errors import FundformError, InvalidInput, Problem
from fundform.base.numeric import fixed_sum
from fundform.base.years import FinancialYear
from fundform.engine.geography import roll_up
from fundform.formula.spec import FormulaSpec
from fundform.inputs.dataset import Dataset


def baseline_by_area(data: Dataset, spec: FormulaSpec, level: str) -> pl.LazyFrame:
    """Today's funding per area of the level: the version's baseline components, summed up from lower tier."""
    baseline = data.lazy("baseline").select("area_code", baseline_gbp=pl.sum_horizontal(*spec.baseline.columns))
    return roll_up(baseline, data.lazy("area_lookup"), level, ["baseline_gbp"])


def icb_vintage(data: Dataset, year: str) -> pl.DataFrame | None:
    """old ICB -> new ICB shares for the changes in force by `year` (None when the data records none): the ICB
    configuration a run whose last year is `year` reports on."""
    if "icb_changes" not in data.tables:
        return None
    start = FinancialYear.parse(year).start
    ch = data["icb_changes"].filter(pl.col("effective_year").map_elements(
        lambda y: FinancialYear.parse(y).start, return_dtype=pl.Int64) <= start)
    return ch if ch.height else None


def to_vintage(frame: pl.LazyFrame, changes: pl.DataFrame | None, key: str, cols: list[str]) -> pl.LazyFrame:
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


def published_round(data: Dataset, spec: FormulaSpec, level: str, round_year: str, vintage: str | None = None
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
    rnd = (data.lazy("nhs_icb_allocations")
           .filter((pl.col("allocation_round") == round_year) & (pl.col("stream") == spec.baseline.stream))
           .with_columns(grown=pl.col("adjusted_recurrent_baseline") * (1 + pl.col("base_growth"))))
    rnd = to_vintage(rnd, icb_vintage(data, vintage) if vintage else None, key, money)
    # a round published without its outcomes (targets only) has no recurrent allocation: null, never a zero sum
    outcome = pl.when(pl.col("recurrent_allocation").is_null().any()).then(None).otherwise(
        fixed_sum(pl.col("recurrent_allocation")))
    # likewise a stream whose sheet publishes no targets (other primary care, running costs) has no fair shares
    targets = pl.when(pl.col("fair_shares_target").is_null().any()).then(None).otherwise(
        fixed_sum(pl.col("fair_shares_target")))
    # the published convergence of an area: its ICBs' baseline-weighted (an ICB's own where none merged)
    convergence = pl.when(pl.col("convergence").is_null().any()).then(None).otherwise(
        fixed_sum(pl.col("convergence") * pl.col("adjusted_recurrent_baseline"))
        / fixed_sum(pl.col("adjusted_recurrent_baseline")))
    return (rnd.sort(key, "icb_code").group_by(key, maintain_order=True).agg(
        baseline_gbp=fixed_sum(pl.col("adjusted_recurrent_baseline")),
        grown=fixed_sum(pl.col("grown")),
        fair_shares_target_gbp=targets,
        recurrent_allocation_gbp=outcome,
        published_convergence=convergence,
        round_region=pl.when(pl.col("nhs_region_code").n_unique() == 1).then(pl.col("nhs_region_code").first()),
    ).select(pl.col(key).alias("area_code"), "baseline_gbp", "fair_shares_target_gbp", "recurrent_allocation_gbp",
             "published_convergence", "round_region", base_growth_factor=pl.col("grown") / pl.col("baseline_gbp")))


def rounds_held(data: Dataset) -> str:
    """The rounds nhs_icb_allocations holds, stream by stream ("core: 2023/24, 2024/25; primary_medical_care:
    2023/24"), or "none": what a message about a missing round tells the user."""
    if "nhs_icb_allocations" not in data.tables:
        return "none (no nhs_icb_allocations table)"
    held = (data["nhs_icb_allocations"].select("stream", "allocation_round").unique()
            .sort("stream", "allocation_round").group_by("stream", maintain_order=True).agg("allocation_round"))
    return "; ".join(f"{s}: {', '.join(r)}" for s, r in held.iter_rows()) or "none"


def check_baseline_year(data: Dataset, spec: FormulaSpec) -> None:
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
