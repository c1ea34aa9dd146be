"""The checks across a dataset's tables, after each table passed its own contract: every authority in every
table, lookups that add up, NHS rounds that agree with each other, and plausibility bounds on quantities derived
from two tables (each bound with the evidence it rests on)."""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Set as AbstractSet

import polars as pl

from fundform.base.errors import Problem
from fundform.inputs.contracts import Plausible, TableContract, row_labels
from fundform.inputs.files import AGES, SEXES, SHARE_TOLERANCE
from fundform.inputs.tables import (
    CONTRACTS,
    LEVELS,
    REQUIRED_LEVELS,
)

# Bounds on quantities derived from two tables, per authority: (name, lo, hi, why).
POPULATION_PER_AREA = (1_000, 3_000_000, "lower-tier authorities in mid-2023 held 2,229 (Isles of Scilly) to "
                       "1,166,049 (Birmingham) residents (ONS MYE2); the bound allows a third of the smallest and "
                       "two and a half times the largest")
POPULATION_TOTAL_MAX = (None, 80_000_000, "England's population was 57.7m in mid-2023 and is projected at 60.2m in "
                        "2030 (ONS 2022-based projections); no set of English authorities holds 80m")
BASELINE_PER_HEAD = (200, 20_000, "today's health and care funding was GBP 1,838 to GBP 3,734 per resident across "
                     "authorities in 2024/25 (NHS England allocations and MHCLG outturn over ONS population)")
COMPONENT_PER_HEAD = {  # per resident, 2024/25: observed range, and the bound (about a quarter of the lowest, three
    # or more times the highest); a component that is zero in an authority is almost always a column left empty
    "nhs_core": (300, 10_000, "NHS core allocations were GBP 1,160 to GBP 2,766 per resident across authorities in "
                 "2024/25"),
    "nhs_primary_medical": (30, 1_500, "primary medical care allocations were GBP 126 to GBP 305 per resident in "
                            "2024/25"),
    "adult_social_care": (20, 5_000, "adult social care net expenditure was GBP 192 to GBP 912 per resident in "
                          "2024-25 (MHCLG outturn)"),
    "public_health": (3, 1_000, "public health net expenditure was GBP 33 to GBP 198 per resident in 2024-25 "
                      "(MHCLG outturn)"),
}
TAX_BASE_GROWTH = (0.5, 2.0, "tax bases changed by -3.3% to +6.4% between 2023-24 and 2024-25 (CTR Table 9); the "
                   "bound allows halving or doubling")
TAX_BASE_PER_HEAD = (0.05, 2.0, "council tax bases were 0.21 to 0.67 Band D equivalents per resident in 2024-25 (CTR "
                     "Table 9 over ONS population)")


def _bound_problem(frame: pl.DataFrame, value: str, bound: tuple, file: str, column: str, what: str,
                   unit: str) -> Problem | None:
    lo, hi, why = bound
    bad = frame.filter(((pl.col(value) < lo) if lo is not None else pl.lit(False))
                       | ((pl.col(value) > hi) if hi is not None else pl.lit(False)))
    if not bad.height:
        return None
    name = "where" if "where" in frame.columns else "area_code"  # a drawn figure names its draw too
    labels = tuple(f"{r[name]} ({r[value]:,.4g} {unit})" for r in bad.head(50).iter_rows(named=True))
    return Problem(file, column, f"{bad.height} authority(ies) with an implausible {what}",
                   f"{what} {Plausible(lo, hi, why).text()}" + (f", in {unit}" if unit else ""),
                   labels + ((f"... {bad.height - 50} more",) if bad.height > 50 else ()))


def plausibility_problems(tables: dict[str, pl.DataFrame], names: dict[str, str]) -> tuple[list[Problem],
                                                                                          list[Problem]]:
    """Checks across tables, per authority. Hard: what no run can compute (an authority with no residents, no
    funding at all). Soft (plausibility bounds, each with where it comes from): population per authority and in
    total, today's funding per resident, the tax base per resident."""
    hard: list[Problem] = []
    soft: list[Problem] = []
    if "population" not in tables:
        return hard, soft
    pop = tables["population"]
    by_year = "financial_year" in pop.columns
    if by_year:  # sizes are checked in every year; per-head figures against the baseline's year (or the first)
        sizes = (pop.group_by("financial_year", "area_code").agg(population=pl.col("population").sum())
                 .sort("financial_year", "area_code").with_columns(area_code=pl.format("{} {}", "area_code",
                                                                                         "financial_year")))
        years = sorted(pop["financial_year"].unique().to_list())
        b_year = (tables["baseline"]["baseline_year"][0] if "baseline" in tables and tables["baseline"].height
                  and "baseline_year" in tables["baseline"].columns else None)
        ref = str(b_year) if b_year in years else years[0]
        per_area = (pop.filter(pl.col("financial_year") == ref).group_by("area_code")
                    .agg(population=pl.col("population").sum()).sort("area_code"))
    else:
        per_area = pop.group_by("area_code").agg(population=pl.col("population").sum()).sort("area_code")
        sizes = per_area
    total = float(pop.group_by("financial_year").agg(pl.col("population").sum())["population"].to_numpy().max()
                  if by_year else per_area["population"].sum())
    return population_problems(sizes, per_area, total, "", tables, names)


def population_problems(sizes: pl.DataFrame, per_area: pl.DataFrame | None, total: float, total_where: str,
                        tables: dict[str, pl.DataFrame], names: dict[str, str]) -> tuple[list[Problem], list[Problem]]:
    """The bounds on an authority's population and on what is divided by it: `sizes` (area_code, population, and
    optionally `where`, naming the row: a year, a draw) in every year, `per_area` the reference year's (None: the
    per-resident bounds are not re-checked), `total` the largest total of a year (or a draw). A plain run's dataset
    and each draw of its population (engine.draws) pass these same bounds."""
    hard: list[Problem] = []
    soft: list[Problem] = []
    pop_file = names.get("population", "population")
    empty = sizes.filter(pl.col("population") <= 0)
    if empty.height:
        hard.append(Problem(pop_file, "population", f"{empty.height} authority(ies) with no residents at all",
                            "a population > 0 for every authority (need per head and grant per head divide by it)",
                            tuple(empty["where"].head(50).to_list()) if "where" in empty.columns
                            else row_labels(empty, ["area_code"])))
    p = _bound_problem(sizes, "population", POPULATION_PER_AREA, pop_file, "population", "population",
                       "residents")
    soft += [p] if p else []
    if total > POPULATION_TOTAL_MAX[1]:
        soft.append(Problem(pop_file, "population", f"a total population of {total:,.0f}"
                            + (f" ({total_where})" if total_where else ""),
                            f"a total <= {POPULATION_TOTAL_MAX[1]:,} (plausibility bound: {POPULATION_TOTAL_MAX[2]}; "
                            "--allow-implausible overrides it)"))
    if per_area is None:
        return hard, soft
    if "baseline" in tables:
        from fundform.inputs.tables import BASELINE_COMPONENTS

        b_file = names.get("baseline", "baseline")
        base = tables["baseline"].select("area_code", total=pl.sum_horizontal(*BASELINE_COMPONENTS))
        if float(base["total"].sum()) <= 0:
            hard.append(Problem(b_file, ",".join(BASELINE_COMPONENTS), "today's funding is zero in every authority",
                                "some funding to start the settlement from (the control total grows from it)"))
        per_head = base.join(per_area, on="area_code").filter(pl.col("population") > 0).with_columns(
            per_head=pl.col("total") / pl.col("population"))
        p = _bound_problem(per_head, "per_head", BASELINE_PER_HEAD, b_file, ",".join(BASELINE_COMPONENTS),
                           "funding per resident", "GBP")
        soft += [p] if p else []
        parts = tables["baseline"].join(per_area, on="area_code").filter(pl.col("population") > 0)
        for comp, bound in COMPONENT_PER_HEAD.items():
            p = _bound_problem(parts.with_columns(per_head=pl.col(comp) / pl.col("population")), "per_head", bound,
                               b_file, comp, f"{comp.replace('_', ' ')} per resident", "GBP")
            soft += [p] if p else []
    if "council_tax" in tables:
        tb = tables["council_tax"].select("area_code", "tax_base_band_d").join(per_area, on="area_code").filter(
            pl.col("population") > 0).with_columns(per_head=pl.col("tax_base_band_d") / pl.col("population"))
        p = _bound_problem(tb, "per_head", TAX_BASE_PER_HEAD, names.get("council_tax", "council_tax"),
                           "tax_base_band_d", "tax base per resident", "Band D equivalents")
        soft += [p] if p else []
        growth = tables["council_tax"].filter(pl.col("tax_base_band_d_2023_24") > 0).with_columns(
            ratio=pl.col("tax_base_band_d") / pl.col("tax_base_band_d_2023_24"))
        p = _bound_problem(growth, "ratio", TAX_BASE_GROWTH, names.get("council_tax", "council_tax"),
                           "tax_base_band_d_2023_24", "ratio of the 2024-25 to the 2023-24 tax base", "")
        soft += [p] if p else []
    return hard, soft


def cross_table_problems(tables: dict[str, pl.DataFrame], names: dict[str, str],
                         contracts: dict[str, TableContract] | None = None,
                         converted: AbstractSet[str] = frozenset()) -> list[Problem]:
    """Coverage of areas across tables, complete population grids, lookup shares that sum to 1. A row of a file is
    named by its row number in that file (1 = the first data row) and its key; an area absent from a file, or a
    group of rows, by its key alone. Row numbers are not given for tables converted from older codes (their rows
    were merged).

    Over 80 lines: each identity between tables is a few lines; all are checked in one call, so every problem is
    reported at once."""
    problems: list[Problem] = []
    if "areas" not in tables:
        return problems
    areas = tables["areas"].select("area_code").unique(maintain_order=True)
    for name, frame in tables.items():
        if name == "areas" or "area_code" not in frame.columns:
            continue
        file = names.get(name, name)
        present = frame.select("area_code").unique()
        missing = areas.join(present, on="area_code", how="anti", maintain_order="left").sort("area_code")
        if missing.height and (contracts or CONTRACTS)[name].covers_every_area:
            problems.append(Problem(file, "area_code", f"{missing.height} authority(ies) of the areas table absent",
                                    "every authority in areas to appear", row_labels(missing, ["area_code"])))
        rows = frame if name in converted else frame.with_row_index("__row")
        unknown = rows.join(areas, on="area_code", how="anti", maintain_order="left")
        if unknown.height:
            problems.append(Problem(file, "area_code", f"{unknown.height} row(s) with codes not in the areas table",
                                    "codes listed in areas", row_labels(unknown, ["area_code"])))

    if "population" in tables:
        pop = tables["population"]
        per = ["financial_year"] if "financial_year" in pop.columns else []
        # cells per authority (and year): distinct (sex, age) pairs; rows when the key is unique (check_table says
        # when it is not), which saves a group-by over every row of a population by year
        cells = (pl.len() if "small_area_code" not in pop.columns else pl.struct("sex", "age").n_unique())
        grid = pop.group_by(*per, "area_code").agg(n=cells, sexes=pl.col("sex").n_unique())
        if per:  # every year covers every authority, and is labelled "<code> <year>" below
            n_areas = areas.height
            short = pop.group_by("financial_year").agg(n=pl.col("area_code").n_unique()).filter(
                pl.col("n") != n_areas).sort("financial_year")
            if short.height:
                problems.append(Problem(names.get("population", "population"), "financial_year",
                                        f"{short.height} year(s) without every authority",
                                        f"all {n_areas} authorities of areas in every year",
                                        tuple(f"{r[0]}: {r[1]} authorities" for r in short.rows())))
            grid = grid.with_columns(area_code=pl.format("{} {}", "area_code", "financial_year"))
        incomplete = grid.filter((pl.col("n") != AGES * len(SEXES)) | (pl.col("sexes") != len(SEXES))).sort("area_code")
        if incomplete.height:
            problems.append(Problem(names.get("population", "population"), "age,sex",
                                    f"{incomplete.height} authority(ies) without a full age-sex grid",
                                    f"ages 0..90 for each of sexes {', '.join(SEXES)} ({AGES * len(SEXES)} cells)",
                                    row_labels(incomplete, ["area_code"])))
        bad_sex = pop.with_row_index("__row").filter(~pl.col("sex").is_in(list(SEXES)))
        if bad_sex.height:
            problems.append(Problem(names.get("population", "population"), "sex", f"{bad_sex.height} unknown sex code(s)",
                                    "F or M", row_labels(bad_sex, ["area_code", "sex", "age"])))

    if "council_tax_bands" in tables:  # optional, but complete when given: eight bands per authority
        bands = tables["council_tax_bands"].group_by("area_code").agg(n=pl.col("band").n_unique()).filter(
            pl.col("n") != 8).sort("area_code")
        if bands.height:
            problems.append(Problem(names.get("council_tax_bands", "council_tax_bands"), "band",
                                    f"{bands.height} authority(ies) without all eight bands",
                                    "bands A to H for every authority", row_labels(bands, ["area_code"])))

    if "area_lookup" in tables:
        lk = tables["area_lookup"]
        file = names.get("area_lookup", "area_lookup")
        sums = lk.group_by("area_code", "level").agg(share=pl.col("share").sum()).sort("area_code", "level")
        bad = sums.filter((pl.col("share") - 1.0).abs() > SHARE_TOLERANCE).with_columns(
            area_code=pl.format("{} {} sums to {}", "area_code", "level", pl.col("share").round(12))
        )
        if bad.height:
            problems.append(Problem(file, "share", f"{bad.height} authority-level share sum(s) differ from 1",
                                    f"shares of each authority within a level to sum to 1 (within {SHARE_TOLERANCE:g})",
                                    row_labels(bad, ["area_code"])))
        unknown_levels = sorted(set(lk["level"].unique().to_list()) - set(LEVELS))
        present_levels = set(lk["level"].unique().to_list())
        for level in [lv for lv in LEVELS if lv in REQUIRED_LEVELS or lv in present_levels]:
            covered = lk.filter(pl.col("level") == level).select("area_code").unique()
            missing = areas.join(covered, on="area_code", how="anti").sort("area_code")
            if missing.height:
                problems.append(Problem(file, "level", f"{missing.height} authority(ies) not mapped at level '{level}'",
                                        f"every authority mapped at every level it has ({', '.join(LEVELS)}; ca "
                                        "optional)",
                                        row_labels(missing, ["area_code"])))
        if unknown_levels:
            problems.append(Problem(file, "level", f"unknown level(s) {unknown_levels}", f"one of {', '.join(LEVELS)}"))
        names_per_code = lk.group_by("level", "target_code").agg(n=pl.col("target_name").n_unique()).filter(pl.col("n") > 1)
        if names_per_code.height:
            problems.append(Problem(file, "target_name", "an area code carries more than one name",
                                    "one name per target code", row_labels(names_per_code.sort("level", "target_code"),
                                                                           ["level", "target_code"])))
    return problems


def nhs_problems(tables: dict[str, pl.DataFrame], names: dict[str, str]) -> list[Problem]:
    """Practice and ICB tables must use the ICB codes of the area lookup, or of a later ICB configuration that
    icb_changes records; each old ICB's shares in icb_changes sum to 1."""
    problems: list[Problem] = []
    if "area_lookup" not in tables:
        return problems
    icbs = tables["area_lookup"].filter(pl.col("level") == "icb").select(icb_code="target_code").unique()
    if "icb_changes" in tables:
        ch = tables["icb_changes"]
        icbs = pl.concat([icbs, ch.select(icb_code="new_code").unique()]).unique()
        sums = ch.group_by("effective_year", "old_code").agg(pl.col("share").sum()).filter(
            (pl.col("share") - 1).abs() > SHARE_TOLERANCE).sort("effective_year", "old_code")
        if sums.height:
            problems.append(Problem(names.get("icb_changes", "icb_changes"), "share",
                                    f"{sums.height} old ICB(s) whose shares do not sum to 1",
                                    f"the shares of each old ICB to sum to 1 (within {SHARE_TOLERANCE:g})",
                                    row_labels(sums, ["effective_year", "old_code"])))
    if "nhs_icb_allocations" in tables and "stream" in tables["nhs_icb_allocations"].columns:
        problems += round_problems(tables["nhs_icb_allocations"], names.get("nhs_icb_allocations",
                                                                             "nhs_icb_allocations"), icbs_by_round(tables))
    regions = tables["area_lookup"].filter(pl.col("level") == "nhs-region").select(
        nhs_region_code="target_code").unique()
    for name in ("practice_weighted_population", "nhs_icb_allocations"):  # every row, whatever stream reads it
        if name in tables and "nhs_region_code" in tables[name].columns and regions.height:
            unknown = tables[name].with_row_index("__row").join(regions, on="nhs_region_code", how="anti",
                                                                maintain_order="left")
            if unknown.height:
                problems.append(Problem(names.get(name, name), "nhs_region_code", f"{unknown.height} row(s) whose "
                                        "NHS region code names no NHS region of the area lookup",
                                        "the codes of area_lookup level 'nhs-region' ("
                                        + ", ".join(sorted(regions["nhs_region_code"].to_list())) + ")",
                                        row_labels(unknown, ["nhs_region_code"])))
    for name in ("practice_weighted_population", "nhs_icb_allocations"):  # codes: the lookup's or later ones
        if name in tables:
            unknown = tables[name].with_row_index("__row").join(icbs, on="icb_code", how="anti", maintain_order="left")
            if unknown.height:
                problems.append(Problem(names.get(name, name), "icb_code", f"{unknown.height} row(s) with ICB codes "
                                        "not in the area lookup", "ICB codes of area_lookup level 'icb'",
                                        row_labels(unknown, ["icb_code"])))
    return problems


# what a round may leave empty: its targets (a sheet that publishes none) and its outcomes (published later), each
# column for every ICB of the stream's round or for none of them
ROUND_OPTIONAL = ("fair_shares_target", "distance_from_target", "convergence", "recurrent_allocation",
                  "post_convergence_distance_from_target")


def icbs_by_round(tables: dict[str, pl.DataFrame]) -> Callable[[str], set[str]]:
    """round -> the ICB codes in force that year: the area lookup's, moved by the icb_changes effective by then."""
    lookup = set(tables["area_lookup"].filter(pl.col("level") == "icb")["target_code"].to_list())
    changes = tables.get("icb_changes")

    def of(rnd: str) -> set[str]:
        if changes is None:
            return lookup
        start = int(rnd[:4])
        done = changes.filter(pl.col("effective_year").str.slice(0, 4).cast(pl.Int64, strict=False) <= start)
        moved = set(done["old_code"].to_list())
        return (lookup - moved) | set(done["new_code"].to_list())
    return of


def round_problems(t: pl.DataFrame, file: str, icbs_in: Callable[[str], set[str]]) -> list[Problem]:
    """Each stream's round: every ICB in force that year (none missing), and each optional column given for every
    ICB of it or left empty for all of them."""
    problems: list[Problem] = []
    present = t.group_by("allocation_round", "stream").agg(pl.col("icb_code")).sort("allocation_round", "stream")
    for rnd, stream, codes in present.iter_rows():
        missing = sorted(icbs_in(rnd) - set(codes))
        if missing and not set(codes) - icbs_in(rnd):  # a round on another ICB vintage is the codes check's to name
            problems.append(Problem(file, "icb_code", f"round {rnd} of stream '{stream}' has no row for "
                                    f"{len(missing)} ICB(s) in force that year",
                                    f"one row per ICB for every stream's round (the {len(icbs_in(rnd))} ICBs of "
                                    f"{rnd}); missing", tuple(f"{rnd}/{stream}/{c}" for c in missing)))
    key = ["allocation_round", "stream", "icb_code"]
    rows = t.with_row_index("__row")
    for c in (c for c in ROUND_OPTIONAL if c in t.columns):
        half = (rows.group_by("allocation_round", "stream").agg(given=pl.col(c).is_not_null().sum(), n=pl.len())
                .filter((pl.col("given") > 0) & (pl.col("given") < pl.col("n"))).sort("allocation_round", "stream"))
        for rnd, stream, given, n in half.iter_rows():
            empty = rows.filter((pl.col("allocation_round") == rnd) & (pl.col("stream") == stream)
                                & pl.col(c).is_null()).sort("__row")
            problems.append(Problem(file, c, f"round {rnd} of stream '{stream}' gives {c} for {given} of its {n} "
                                    "ICBs", f"{c} given for every ICB of the stream, or left empty for all of "
                                    "them (a sheet that publishes none, or a round without published outcomes)",
                                    row_labels(empty, key)))
    return problems
