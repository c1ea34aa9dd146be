"""Build fundform's bundled default dataset from the published files in ../shared/data.

Re-runnable and deterministic: the same source files give byte-identical Parquet files. Run it from the project
root (``make data``); it writes ``data/default/*.parquet`` and ``data/default/BUILD_REPORT.md``. The engine never
reads ../shared at run time: it reads only what this script writes.

Every choice the published data leaves open is a named constant below, with its reason, and is repeated in
``data/README.md``. Any authority missing from any table stops the build with the list of missing codes.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import numpy as np
import polars as pl

HERE = Path(__file__).resolve().parent
DEFAULT_SOURCE = HERE.parent.parent / "shared" / "data"
DEFAULT_OUT = HERE / "default"

LTLA_GEOGRAPHIES = ["Unitary Authority", "Non-metropolitan District", "Metropolitan District", "London Borough"]
N_LTLA = 296

# Preventable mortality: the single year 2022, not a pooled 2020-22 mean. 2020 and 2021 are dominated by COVID-19
# deaths (classed as preventable in the ONS/OHID definition), which would tilt need toward areas hit by the early
# waves; and rates for 2012-2020 use pre-Census-2021 populations while 2021+ use rebased ones, so a 2020-22 pool mixes
# denominators. The cost is more sampling noise for small districts, which the formula's elasticity damps.
MORTALITY_YEAR = "2022"
# Suppressed in every year of the series (too few deaths). Each takes the value of the area it shares its health
# and public-health services with; the substitution is carried in the table's `source` column and reported.
MORTALITY_SUBSTITUTES = {
    "E06000053": ("E06000052", "Isles of Scilly suppressed; Cornwall's rate (shared Cornwall and Isles of Scilly ICB "
                                "and public health service)"),
    "E09000001": ("E09000012", "City of London suppressed; Hackney's rate (shared City and Hackney public health "
                                "service and former CCG)"),
}

# 2023 reorganisations: 2021 district codes that became new unitary authorities (2024 codes).
REORGANISATIONS_2023 = {
    "E06000063": ("Cumberland", ["E07000026", "E07000028", "E07000029"]),  # Allerdale, Carlisle, Copeland
    "E06000064": ("Westmorland and Furness", ["E07000027", "E07000030", "E07000031"]),  # Barrow, Eden, South Lakeland
    "E06000065": ("North Yorkshire", ["E07000163", "E07000164", "E07000165", "E07000166", "E07000167",
                                      "E07000168", "E07000169"]),  # Craven .. Selby
    "E06000066": ("Somerset", ["E07000187", "E07000188", "E07000189", "E07000246"]),  # Mendip .. S West & Taunton
}

REGION_ABBREVIATIONS = {  # council tax returns' region column -> ONS region code
    "NE": "E12000001", "NW": "E12000002", "YH": "E12000003", "EM": "E12000004", "WM": "E12000005",
    "E": "E12000006", "L": "E12000007", "SE": "E12000008", "SW": "E12000009",
}

# Mayoral combined authorities and their constituent members in 2024 (each CA's establishment order as amended;
# ONS Combined Authorities names and codes). The eight with codes from before 2024 are listed by lower-tier member;
# the three created in 2023-24 by upper-tier member (UPPER_TIER_COMBINED_AUTHORITIES below), expanded to districts
# through the upper-tier lookup with each council's name checked.
COMBINED_AUTHORITIES = {
    "E47000001": ("Greater Manchester", ["E08000001", "E08000002", "E08000003", "E08000004", "E08000005",
                                         "E08000006", "E08000007", "E08000008", "E08000009", "E08000010"]),
    "E47000002": ("South Yorkshire", ["E08000016", "E08000017", "E08000018", "E08000019"]),
    "E47000003": ("West Yorkshire", ["E08000032", "E08000033", "E08000034", "E08000035", "E08000036"]),
    "E47000004": ("Liverpool City Region", ["E06000006", "E08000011", "E08000012", "E08000013", "E08000014",
                                            "E08000015"]),
    "E47000006": ("Tees Valley", ["E06000001", "E06000002", "E06000003", "E06000004", "E06000005"]),
    "E47000007": ("West Midlands", ["E08000025", "E08000026", "E08000027", "E08000028", "E08000029", "E08000030",
                                    "E08000031"]),
    "E47000008": ("Cambridgeshire and Peterborough", ["E07000008", "E07000009", "E07000010", "E07000011",
                                                      "E07000012", "E06000031"]),
    "E47000009": ("West of England", ["E06000022", "E06000023", "E06000025"]),
}
UPPER_TIER_COMBINED_AUTHORITIES = {  # code: (name, {upper-tier member code: its name})
    "E47000012": ("York and North Yorkshire", {"E06000014": "York", "E06000065": "North Yorkshire"}),
    "E47000013": ("East Midlands", {"E06000015": "Derby", "E06000018": "Nottingham", "E10000007": "Derbyshire",
                                    "E10000024": "Nottinghamshire"}),
    "E47000014": ("North East", {"E06000047": "County Durham", "E06000057": "Northumberland",
                                 "E08000021": "Newcastle upon Tyne", "E08000022": "North Tyneside",
                                 "E08000023": "South Tyneside", "E08000024": "Sunderland", "E08000037": "Gateshead"}),
}
# Local authority reorganisations since 2019: each old district merged whole into a new authority (no splits at
# district level). The 2019 changes predate the IoD2019 codes, so their population weights are not in the data.
CODE_CHANGES = [
    (2019, "E06000058", "Bournemouth, Christchurch and Poole", ["E06000028", "E06000029", "E07000048"]),
    (2019, "E06000059", "Dorset", ["E07000049", "E07000050", "E07000051", "E07000052", "E07000053"]),
    (2019, "E07000244", "East Suffolk", ["E07000205", "E07000206"]),
    (2019, "E07000245", "West Suffolk", ["E07000201", "E07000204"]),
    (2019, "E07000246", "Somerset West and Taunton", ["E07000190", "E07000191"]),
    (2020, "E06000060", "Buckinghamshire", ["E07000004", "E07000005", "E07000006", "E07000007"]),
    (2021, "E06000061", "North Northamptonshire", ["E07000150", "E07000152", "E07000153", "E07000156"]),
    (2021, "E06000062", "West Northamptonshire", ["E07000151", "E07000154", "E07000155"]),
] + [(2023, new, name, olds) for new, (name, olds) in REORGANISATIONS_2023.items()]

EFFECTIVE_FROM = {"ltla": "2023/24", "utla": "2023/24", "region": "2023/24", "icb": "2022/23",
                  "nhs-region": "2022/23", "ca": "2024/25"}

OUTTURN_YEAR = "2024-25"
# Today's funding: the NHS core part from the latest published round's recurrent allocations; primary medical care
# from the latest round in the data (its 2025/26 sheet is not among the published files here); councils' adult
# social care and public health from the latest outturn. The baseline's year is the NHS core round's.
NHS_CORE_ROUND = "2025/26"
NHS_PMC_ROUND = "2024/25"


class BuildError(Exception):
    pass


def number(col: str) -> pl.Expr:
    """Parse a published number: thousands separators, '%'; '[z]', '-', 'NA', '..' and blanks become null."""
    cleaned = pl.col(col).cast(pl.String).str.strip_chars().str.replace_all(",", "").str.replace_all("%", "")
    return (
        pl.when(cleaned.is_in(["[z]", "[x]", "-", "NA", "..", ""]) | cleaned.is_null())
        .then(None)
        .otherwise(cleaned)
        .cast(pl.Float64)
        .alias(col)
    )


def require_all(table: str, df: pl.DataFrame, codes: set[str], col: str = "area_code") -> None:
    have = set(df[col].to_list())
    missing = sorted(codes - have)
    extra = sorted(have - codes)
    if missing or extra:
        raise BuildError(f"{table}: missing authorities {missing}; unexpected codes {extra}")


def build_areas(src: Path) -> pl.DataFrame:
    pop = pl.read_csv(src / "population/mye2_persons_mid2023.csv", infer_schema_length=0)
    areas = (
        pop.filter(pl.col("Code").str.starts_with("E") & pl.col("Geography").is_in(LTLA_GEOGRAPHIES))
        .select(area_code="Code", area_name="Name", area_type="Geography")
        .sort("area_code")
    )
    if areas.height != N_LTLA:
        raise BuildError(f"population: expected {N_LTLA} English lower-tier authorities, found {areas.height}")
    return areas


def build_population(src: Path, codes: set[str]) -> pl.DataFrame:
    frames = []
    for sex, fname in [("F", "mye2_females_mid2023.csv"), ("M", "mye2_males_mid2023.csv")]:
        wide = pl.read_csv(src / "population" / fname, infer_schema_length=0).filter(pl.col("Code").is_in(codes))
        ages = [c for c in wide.columns if c.rstrip("+").isdigit()]
        long = wide.unpivot(index="Code", on=ages, variable_name="age_label", value_name="population").select(
            area_code="Code",
            sex=pl.lit(sex),
            age=pl.col("age_label").str.strip_chars_end("+").cast(pl.Int16),
            population=pl.col("population").str.replace_all(",", "").cast(pl.Float64),
        )
        frames.append(long)
    out = pl.concat(frames).sort("area_code", "sex", "age")
    persons = pl.read_csv(src / "population/mye2_persons_mid2023.csv", infer_schema_length=0).filter(
        pl.col("Code").is_in(codes)
    )
    check = out.group_by("area_code", maintain_order=True).agg(pl.col("population").sum()).join(
        persons.select(area_code="Code", all_ages=pl.col("All ages").str.replace_all(",", "").cast(pl.Float64)),
        on="area_code",
    )
    bad = check.filter(pl.col("population") != pl.col("all_ages"))
    if bad.height:
        raise BuildError(f"population: females + males by age do not add to persons all ages for {bad['area_code'].to_list()}")
    require_all("population", out, codes)
    return out


# Population by financial year. Year Y/Y+1 takes the mid-Y population: mid-2023 and mid-2024 are ONS estimates,
# later years are projected. ONS's 2022-based projections exist by region, sex and five-year age only (no complete
# 2022-based file by authority could be obtained), the 2018-based ones by authority (on 2018 boundaries, persons).
# Method: start from mid-2024 persons by single year of age per authority, split by sex with the authority's mid-2023
# female/male ratio at that age; grow each authority x five-year band with the 2018-based authority projection
# (old districts summed into their successors); then scale each region x sex x five-year band to the 2022-based
# regional projection, so that regions and England equal the 2022-based totals and authorities keep the 2018-based
# relative growth within their region.
POPULATION_PROJECTED_YEARS = list(range(2025, 2036))  # mid-2025 .. mid-2035: 2025/26 .. 2035/36
PROJECTION_CHECKS = {2026: 59_137_044, 2030: 60_202_257}  # England, 2022-based (issue 13; ONS)
ENGLAND_TOLERANCE, REGION_TOLERANCE = 0.001, 0.005


def _band(age: pl.Expr) -> pl.Expr:
    return pl.when(age >= 90).then(pl.lit("90+")).otherwise(
        pl.format("{}-{}", (age // 5) * 5, (age // 5) * 5 + 4))


def _successor(code: str) -> str:
    old_to_new = {old: new for _, new, _, olds in CODE_CHANGES for old in olds}
    while code in old_to_new:
        code = old_to_new[code]
    return code


def build_population_by_year(src: Path, codes: set[str], mid2023: pl.DataFrame,
                             region_of: pl.DataFrame) -> tuple[pl.DataFrame, list[str]]:
    """Population by financial year x authority x sex x single year of age (see the method above)."""
    notes = []
    wide = pl.read_csv(src / "population/mye2_persons_mid2024.csv", infer_schema_length=0).filter(
        pl.col("Code").is_in(codes))
    ages = [c for c in wide.columns if c.rstrip("+").isdigit()]
    persons24 = wide.unpivot(index="Code", on=ages, variable_name="a", value_name="p").select(
        area_code="Code", age=pl.col("a").str.strip_chars_end("+").cast(pl.Int16),
        persons=pl.col("p").str.replace_all(",", "").cast(pl.Float64))
    require_all("population mid-2024", persons24, codes)
    ratio = mid2023.with_columns(share=pl.col("population") / pl.col("population").sum().over("area_code", "age")
                                 ).select("area_code", "sex", "age", pl.col("share").fill_nan(0.5))
    base = persons24.join(ratio, on=["area_code", "age"]).select(
        "area_code", "sex", "age", population=pl.col("persons") * pl.col("share"))
    if abs(base["population"].sum() - persons24["persons"].sum()) > 1e-3:
        raise BuildError("population: the mid-2024 sex split does not add back to persons")
    snpp18 = pl.read_csv(src / "population-projections/snpp2018_la_persons_5yr.csv", infer_schema_length=0)
    years = [str(y) for y in [2024, *POPULATION_PROJECTED_YEARS]]
    la18 = (snpp18.filter(pl.col("CODE").str.starts_with("E0") & (pl.col("AGE GROUP") != "All ages"))
            .select(code=pl.col("CODE").map_elements(_successor, return_dtype=pl.String), band="AGE GROUP",
                    **{y: pl.col(y).str.strip_chars().cast(pl.Float64) for y in years})
            .filter(pl.col("code").is_in(codes))
            .group_by("code", "band").agg(pl.col(years).sum()))
    missing = sorted(codes - set(la18["code"]))
    if missing:
        raise BuildError(f"population projections: authorities without a 2018-based projection: {missing}")
    snpp22 = pl.read_csv(src / "population-projections/snpp2022_region_sex_5yr.csv").select(
        region="code", year="year", sex=pl.col("sex").replace_strict({"female": "F", "male": "M"}),
        band="age_group", target=pl.col("population").cast(pl.Float64))
    with_band = base.with_columns(band=_band(pl.col("age"))).join(region_of, on="area_code")
    frames = [mid2023.select("area_code", financial_year=pl.lit("2023/24"), sex="sex", age="age",
                             population="population"),
              base.select("area_code", financial_year=pl.lit("2024/25"), sex="sex", age="age",
                          population="population")]
    variants = []
    for y in POPULATION_PROJECTED_YEARS:
        grown = (with_band.join(la18.select("code", "band", g=pl.col(str(y)) / pl.col("2024")),
                                left_on=["area_code", "band"], right_on=["code", "band"], how="left")
                 .with_columns(p=pl.col("population") * pl.col("g")))
        if grown["p"].null_count():
            raise BuildError(f"population projections: no 2018-based growth for some authority x band in {y}")
        raked = (grown.join(snpp22.filter(pl.col("year") == y), on=["region", "sex", "band"], how="left")
                 .with_columns(p=pl.col("p") * pl.col("target") / pl.col("p").sum().over("region", "sex", "band")))
        if raked["p"].null_count():
            raise BuildError(f"population projections: no 2022-based regional total for some region x sex x band in {y}")
        fy = f"{y}/{(y + 1) % 100:02d}"
        frames.append(raked.select("area_code", financial_year=pl.lit(fy), sex="sex", age="age", population="p"))
        # the other vintage: the 2018-based authority projection before the 2022-based regional constraint, as a
        # ratio to the central (all ages, persons): the spread between the two published vintages, by area and year
        variants.append(grown.group_by("area_code").agg(v=pl.col("p").sum()).join(
            raked.group_by("area_code").agg(c=pl.col("p").sum()), on="area_code").select(
            "area_code", financial_year=pl.lit(fy), variant=pl.lit("snpp2018"), ratio=pl.col("v") / pl.col("c")))
        # the checks: England and each region against the 2022-based projection (by construction, but checked)
        eng = raked["p"].sum()
        eng_target = snpp22.filter(pl.col("year") == y)["target"].sum()
        if y in PROJECTION_CHECKS and abs(eng / PROJECTION_CHECKS[y] - 1) > ENGLAND_TOLERANCE:
            raise BuildError(f"population {fy}: England {eng:,.0f} is more than 0.1% from the 2022-based "
                             f"projection {PROJECTION_CHECKS[y]:,}")
        if abs(eng / eng_target - 1) > ENGLAND_TOLERANCE:
            raise BuildError(f"population {fy}: England {eng:,.0f} vs 2022-based {eng_target:,.0f}")
        reg = raked.group_by("region").agg(pl.col("p").sum()).join(
            snpp22.filter(pl.col("year") == y).group_by("region").agg(pl.col("target").sum()), on="region")
        off = reg.filter(((pl.col("p") / pl.col("target")) - 1).abs() > REGION_TOLERANCE)
        if off.height:
            raise BuildError(f"population {fy}: regions more than 0.5% from the 2022-based projection: {off.rows()}")
        if y in PROJECTION_CHECKS:
            notes.append(f"population {fy}: England {eng:,.0f} (2022-based projection {PROJECTION_CHECKS[y]:,}); "
                         f"largest regional gap {(reg['p'] / reg['target'] - 1).abs().max():.2e}")
    out = pl.concat(frames).with_columns(pl.col("age").cast(pl.Int16)).sort("financial_year", "area_code", "sex", "age")
    notes.append(f"population: {out['financial_year'].n_unique()} financial years "
                 f"({out['financial_year'].min()} to {out['financial_year'].max()}): mid-2023 and mid-2024 ONS "
                 "estimates, then 2018-based authority growth constrained to the 2022-based regional projections")
    spread = pl.concat(variants).sort("financial_year", "area_code")
    notes.append(f"population_variants: the 2018-based authority projection against the central, "
                 f"{spread['ratio'].min() - 1:+.1%} to {spread['ratio'].max() - 1:+.1%} by area and year "
                 f"({spread['financial_year'].min()} to {spread['financial_year'].max()})")
    return out, notes, spread


def build_deprivation(src: Path, codes: set[str]) -> pl.DataFrame:
    iod = pl.read_csv(src / "deprivation/IoD2025_lad.csv").filter(pl.col("index_domain") == "Index of Multiple Deprivation")
    out = iod.select(
        "area_code",
        imd_average_score=pl.col("average_score").cast(pl.Float64),
        imd_rank_average_score=pl.col("rank_average_score").cast(pl.Int32),
        imd_proportion_bottom_decile=pl.col("proportion_bottom_decile").cast(pl.Float64),
    ).sort("area_code")
    require_all("deprivation", out, codes)
    return out


def build_mortality(src: Path, codes: set[str]) -> tuple[pl.DataFrame, list[str]]:
    raw = pl.read_csv(src / "preventable-mortality/mortality_rate_u75_preventable.csv", infer_schema_length=0)
    year = raw.filter((pl.col("period") == MORTALITY_YEAR) & (pl.col("unit") == "Persons")).with_columns(number("value"))
    observed = year.filter(pl.col("area_code").is_in(codes)).select(
        "area_code", rate=pl.col("value"), source=pl.lit("observed")
    )
    notes = []
    subs = []
    for code, (donor, reason) in MORTALITY_SUBSTITUTES.items():
        donor_rate = observed.filter(pl.col("area_code") == donor)["rate"].item()
        own = observed.filter(pl.col("area_code") == code)["rate"].item()
        if own is not None:
            raise BuildError(f"mortality: {code} has a published {MORTALITY_YEAR} value now; remove its substitution")
        subs.append({"area_code": code, "rate_sub": donor_rate, "source_sub": f"substituted from {donor}"})
        notes.append(f"{code}: {reason} ({donor_rate})")
    subs_df = pl.DataFrame(subs)
    out = (
        observed.join(subs_df, on="area_code", how="left")
        .select(
            "area_code",
            preventable_mortality_rate=pl.coalesce("rate", "rate_sub"),
            preventable_mortality_year=pl.lit(int(MORTALITY_YEAR), dtype=pl.Int16),
            preventable_mortality_source=pl.coalesce(pl.col("source_sub"), pl.col("source")),
        )
        .sort("area_code")
    )
    missing = out.filter(pl.col("preventable_mortality_rate").is_null())["area_code"].to_list()
    if missing:
        raise BuildError(f"mortality: suppressed {MORTALITY_YEAR} values with no stated policy: {missing}")
    require_all("preventable_mortality", out, codes)
    england = year.filter(pl.col("area_code") == "E92000001")["value"].item()
    notes.append(f"England {MORTALITY_YEAR} rate: {england} per 100,000 (kept for reference; the engine computes its own "
                 "population-weighted national value)")
    return out, notes


def build_council_tax(src: Path, codes: set[str], utla: pl.DataFrame) -> pl.DataFrame:
    billing = pl.read_csv(src / "council-tax/2024-25/ctr_2024-25_data_billing.csv", skip_rows=4, infer_schema_length=0)
    c = billing.columns
    b = billing.filter(pl.col("ONS Code").is_in(codes)).select(
        area_code=pl.col("ONS Code"),
        tax_base_band_d_2023_24=number(c[22]),
        tax_base_band_d=number(c[23]),
        band_d_billing_2023_24=number(c[26]),
        band_d_billing=number(c[27]),
        band_d_major_county_gla=number(c[33]),
        band_d_area=number(c[37]),
        asc_precept_increment_band_d_own=number(c[29]),
    )
    pre = pl.read_csv(src / "council-tax/2024-25/ctr_2024-25_data_precepting.csv", skip_rows=5, infer_schema_length=0)
    p = pre.columns
    counties = pre.filter(pl.col("Class") == "SC").select(
        utla_code=pl.col("ONS Code"), county_band_d=number(p[13]), county_asc_increment_band_d=number(p[15])
    )
    out = (
        b.join(utla.select("area_code", "utla_code"), on="area_code", how="left")
        .join(counties, on="utla_code", how="left")
        .select(
            "area_code",
            "tax_base_band_d",
            "tax_base_band_d_2023_24",
            "band_d_billing",
            "band_d_billing_2023_24",
            # The Band D of the authority that runs adult social care and public health: the county's precept in
            # two-tier areas, the authority's own average Band D (incl. ASC precept, excl. parishes) elsewhere.
            band_d_social_care_authority=pl.coalesce("county_band_d", "band_d_billing"),
            band_d_area="band_d_area",
            asc_precept_increment_band_d=pl.coalesce("county_asc_increment_band_d", "asc_precept_increment_band_d_own"),
        )
        .sort("area_code")
    )
    require_all("council_tax", out, codes)
    for col in out.columns[1:]:
        nulls = out.filter(pl.col(col).is_null())["area_code"].to_list()
        if nulls:
            raise BuildError(f"council_tax: column {col} missing for {nulls}")
    return out


def build_council_tax_bands(src: Path, codes: set[str]) -> pl.DataFrame:
    """Table 8: area council tax by band A..H for each billing authority, 2024-25 (two adults)."""
    t8 = pl.read_csv(src / "council-tax/2024-25/ct_table8_2024_25.csv", skip_rows=2, infer_schema_length=0)
    bands = [f"Band {b}" for b in "ABCDEFGH"]
    out = (t8.filter(pl.col("ONS Code").is_in(list(codes)))
           .select(pl.col("ONS Code").alias("area_code"), *[number(b) for b in bands])
           .unpivot(index="area_code", on=bands, variable_name="band", value_name="area_council_tax")
           .with_columns(band=pl.col("band").str.strip_prefix("Band "))
           .sort("area_code", "band"))
    require_all("council_tax_bands", out.unique("area_code"), codes)
    return out


def practice_file(src: Path) -> pl.DataFrame:
    return pl.read_csv(src / "nhs-weighted-populations/gp_practice_weighted_populations_2024_25.csv", infer_schema_length=0)


def to_2024_code(col: str) -> pl.Expr:
    mapping = {old: new for new, (_, olds) in REORGANISATIONS_2023.items() for old in olds}
    return pl.col(col).replace(mapping)


def build_utla(src: Path, areas: pl.DataFrame) -> pl.DataFrame:
    """Lower tier -> upper tier. Unitaries, metropolitan districts and London boroughs are their own upper tier;
    a shire district's county is the `Area` column of the council tax Table 8 (2024-25), matched by name to the
    counties of the precepting return."""
    t8 = pl.read_csv(src / "council-tax/2024-25/ct_table8_2024_25.csv", skip_rows=2, infer_schema_length=0)
    pre = pl.read_csv(src / "council-tax/2024-25/ctr_2024-25_data_precepting.csv", skip_rows=5, infer_schema_length=0)
    counties = pre.filter(pl.col("Class") == "SC").select(county_code="ONS Code", county=pl.col("Authority"))
    districts = t8.filter(pl.col("Class") == "SD").select(area_code="ONS Code", county="Area").join(
        counties, on="county", how="left"
    )
    unmatched = districts.filter(pl.col("county_code").is_null())
    if unmatched.height:
        raise BuildError(f"lookups: district counties not found in the precepting return: {unmatched.rows()}")
    out = areas.select("area_code", "area_type").join(districts, on="area_code", how="left").select(
        "area_code",
        utla_code=pl.when(pl.col("area_type") == "Non-metropolitan District")
        .then(pl.col("county_code"))
        .otherwise(pl.col("area_code")),
    )
    missing = out.filter(pl.col("utla_code").is_null())["area_code"].to_list()
    if missing:
        raise BuildError(f"lookups: no upper tier for {missing}")
    n = out["utla_code"].n_unique()
    if n != 153:
        raise BuildError(f"lookups: expected 153 upper-tier authorities, found {n}")
    return out


def build_lookup(src: Path, areas: pl.DataFrame, utla: pl.DataFrame) -> pl.DataFrame:
    pop = pl.read_csv(src / "population/mye2_persons_mid2023.csv", infer_schema_length=0)
    names = dict(zip(pop["Code"].to_list(), pop["Name"].to_list()))
    ltla = areas.select("area_code", level=pl.lit("ltla"), target_code="area_code", target_name="area_name", share=pl.lit(1.0))
    utla_l = utla.select(
        "area_code", level=pl.lit("utla"), target_code="utla_code",
        target_name=pl.col("utla_code").replace_strict(names, default=None), share=pl.lit(1.0),
    )
    billing = pl.read_csv(src / "council-tax/2024-25/ctr_2024-25_data_billing.csv", skip_rows=4, infer_schema_length=0)
    region = billing.filter(pl.col("ONS Code").is_in(areas["area_code"].to_list())).select(
        area_code="ONS Code", level=pl.lit("region"),
        target_code=pl.col("Region").replace_strict(REGION_ABBREVIATIONS, default=None),
    ).with_columns(target_name=pl.col("target_code").replace_strict(names, default=None), share=pl.lit(1.0))

    long = pl.read_csv(src / "lookups/lad21_icb22_registered_population_long.csv")
    gp = practice_file(src)
    icb_region = gp.select(icb="ICS22", icb_name="ICS22name", nhs_region="R22", nhs_region_name="Region22").unique()
    reg = (
        long.select(area_code=to_2024_code("la_code"), icb="icb_code_ods", pop="registered_pop_2024_25_projection")
        .group_by("area_code", "icb", maintain_order=True).agg(pl.col("pop").sum())
        .join(icb_region, on="icb", how="left")
    )
    icb = reg.select(
        "area_code", level=pl.lit("icb"), target_code="icb", target_name="icb_name",
        share=pl.col("pop") / pl.col("pop").sum().over("area_code"),
    )
    nhs = (
        reg.group_by("area_code", "nhs_region", "nhs_region_name", maintain_order=True).agg(pl.col("pop").sum())
        .select("area_code", level=pl.lit("nhs-region"), target_code="nhs_region", target_name="nhs_region_name",
                share=pl.col("pop") / pl.col("pop").sum().over("area_code"))
    )
    for code, (name, councils) in UPPER_TIER_COMBINED_AUTHORITIES.items():
        found = utla_l.filter(pl.col("target_code").is_in(list(councils))).unique("target_code")
        seen = dict(zip(found["target_code"].to_list(), found["target_name"].to_list()))
        if seen != councils:
            raise BuildError(f"combined authority {code} {name}: upper-tier members {councils} do not match the "
                             f"lookup ({seen})")
        districts = utla_l.filter(pl.col("target_code").is_in(list(councils)))["area_code"].sort().to_list()
        COMBINED_AUTHORITIES[code] = (name, districts)  # with the others, for the checks below and the report
    members = {m: (ca, name) for ca, (name, ms) in COMBINED_AUTHORITIES.items() for m in ms}
    if len(members) != sum(len(ms) for _, ms in COMBINED_AUTHORITIES.values()):
        raise BuildError("an authority is listed in two combined authorities")
    ca = areas.select(
        "area_code", level=pl.lit("ca"),
        target_code=pl.col("area_code").replace_strict({m: c for m, (c, _) in members.items()}, default=pl.col(
            "area_code")),
        target_name=pl.col("area_code").replace_strict({m: n for m, (_, n) in members.items()}, default=pl.col(
            "area_name")),
        share=pl.lit(1.0))
    out = (pl.concat([ltla, utla_l, region, icb, nhs, ca], how="vertical_relaxed")
           .with_columns(effective_from=pl.col("level").replace_strict(EFFECTIVE_FROM))
           .sort("level", "area_code", "target_code"))
    codes = set(areas["area_code"])
    for level in ["ltla", "utla", "region", "icb", "nhs-region", "ca"]:
        part = out.filter(pl.col("level") == level)
        require_all(f"area_lookup[{level}]", part.unique("area_code"), codes)
        if part["target_name"].null_count():
            raise BuildError(f"area_lookup[{level}]: target without a name")
    expected = {"ltla": 296, "utla": 153, "region": 9, "icb": 42, "nhs-region": 7,
                "ca": 296 - sum(len(ms) for _, ms in COMBINED_AUTHORITIES.values()) + len(COMBINED_AUTHORITIES)}
    for level, n in expected.items():
        got = out.filter(pl.col("level") == level)["target_code"].n_unique()
        if got != n:
            raise BuildError(f"area_lookup[{level}]: expected {n} areas, found {got}")
    return out


def build_baseline(src: Path, areas: pl.DataFrame, utla: pl.DataFrame, population: pl.DataFrame,
                   lookup: pl.DataFrame, population_by_year: pl.DataFrame, allocations: pl.DataFrame
                   ) -> tuple[pl.DataFrame, list[str]]:
    notes = []
    codes = set(areas["area_code"])
    # NHS: the latest published recurrent allocations (core NHS_CORE_ROUND, primary medical care NHS_PMC_ROUND),
    # attributed to the authorities whose residents they fund: each ICB's allocation shared among the authorities
    # it serves in proportion to residents x need per head, where residents are the authority's population in the
    # allocation year split between ICBs by where its patients are registered, and need per head is NHS England's
    # own weighted population per registered patient of the authority's practices (a rate, so list inflation and
    # practices that draw patients across a border no longer move money between authorities).
    # the same published rows as nhs_icb_allocations (one reading of NHS England's sheets, so a version that starts
    # a stream from the published round and one that starts from this baseline agree on its total)
    published = lambda rnd, stream: allocations.filter(
        (pl.col("allocation_round") == rnd) & (pl.col("stream") == stream)).select("icb_code", "recurrent_allocation")
    nhs = (published(NHS_CORE_ROUND, "core").select(icb="icb_code", core="recurrent_allocation")
           .join(published(NHS_PMC_ROUND, "primary_medical_care").select(icb="icb_code", pmc="recurrent_allocation"),
                 on="icb"))
    if nhs.height != 42:
        raise BuildError(f"baseline: expected 42 ICBs with core and primary medical care allocations, got {nhs.height}")
    long = pl.read_csv(src / "lookups/lad21_icb22_registered_population_long.csv")
    split = (long.select(area_code=to_2024_code("la_code"), icb="icb_code_ods", reg="registered_pop_2024_25_projection")
             .group_by("area_code", "icb", maintain_order=True).agg(pl.col("reg").sum())
             .with_columns(f=pl.col("reg") / pl.col("reg").sum().over("area_code")))
    residents = population_by_year.filter(pl.col("financial_year") == NHS_CORE_ROUND).group_by("area_code").agg(
        residents=pl.col("population").sum())
    practices = pl.read_csv(src / "nhs-weighted-populations/gp_practice_weighted_populations_2025_26.csv",
                            infer_schema_length=0)
    per_head = (practices.select(area_code=to_2024_code("LAD"), reg=pl.col("Population").cast(pl.Float64),
                                 core=pl.col("Final WP").cast(pl.Float64), pmc=pl.col("Final PMC WP").cast(pl.Float64))
                .group_by("area_code").agg(core_ph=pl.col("core").sum() / pl.col("reg").sum(),
                                           pmc_ph=pl.col("pmc").sum() / pl.col("reg").sum()))
    require_all("baseline need per head (2025/26 practices)", per_head, codes)
    w = (split.join(residents, on="area_code").join(per_head, on="area_code")
         .with_columns(w_core=pl.col("residents") * pl.col("f") * pl.col("core_ph"),
                       w_pmc=pl.col("residents") * pl.col("f") * pl.col("pmc_ph"))
         .with_columns(s_core=pl.col("w_core") / pl.col("w_core").sum().over("icb"),
                       s_pmc=pl.col("w_pmc") / pl.col("w_pmc").sum().over("icb")))
    nhs_la = (w.join(nhs, on="icb", how="left")
              .group_by("area_code", maintain_order=True)
              .agg(nhs_core=(pl.col("core") * pl.col("s_core")).sum(),
                   nhs_primary_medical=(pl.col("pmc") * pl.col("s_pmc")).sum()))
    for col, total in (("nhs_core", nhs["core"].sum()), ("nhs_primary_medical", nhs["pmc"].sum())):
        if abs(nhs_la[col].sum() / total - 1) > 1e-12:
            raise BuildError(f"baseline: {col} attributed to authorities does not add to the ICB total")
    notes.append(f"NHS core {NHS_CORE_ROUND} + primary medical care {NHS_PMC_ROUND} recurrent allocations: "
                 f"GBP {nhs['core'].sum() / 1e9:.3f}bn + {nhs['pmc'].sum() / 1e9:.3f}bn, attributed to authorities by "
                 f"residents (mid-{NHS_CORE_ROUND[:4]}) x NHS England's weighted population per registered patient")

    # Councils: net current expenditure on adult social care and public health, OUTTURN_YEAR, upper tier.
    ro = pl.read_csv(src / "la-finance/revenue-outturn/la_revenue_outturn_net_expenditure_2022_23_to_2024_25.csv",
                     infer_schema_length=0)
    ro = ro.with_columns(number("net_Adult Social Care"), number("net_Public Health"))
    utla_codes = utla["utla_code"].unique().sort()
    lines = {"adult_social_care": "net_Adult Social Care", "public_health": "net_Public Health"}
    ro_u = ro.filter(pl.col("ons_code").is_in(utla_codes.to_list()) & (pl.col("status") == "submitted"))
    years = ["2022-23", "2023-24", OUTTURN_YEAR]
    # national growth of each line between years, over authorities that submitted both years
    growth = {}
    for y in years[:-1]:
        both = ro_u.filter(pl.col("fiscal_year") == y).join(
            ro_u.filter(pl.col("fiscal_year") == OUTTURN_YEAR), on="ons_code", suffix="_t"
        )
        growth[y] = {k: both[f"{v}_t"].sum() / both[v].sum() for k, v in lines.items()}
    rows = []
    for code in sorted(utla_codes.to_list()):
        got = ro_u.filter(pl.col("ons_code") == code)
        latest = got.sort("fiscal_year", descending=True).head(1)
        if latest.height == 0:
            raise BuildError(f"revenue outturn: no submitted year for upper-tier authority {code}")
        y = latest["fiscal_year"].item()
        row = {"utla_code": code, "la_source_year": y}
        for k, v in lines.items():
            val = latest[v].item()
            if val is None:
                raise BuildError(f"revenue outturn: {v} missing for {code} in {y}")
            row[k] = val if y == OUTTURN_YEAR else val * growth[y][k]
        rows.append(row)
        if y != OUTTURN_YEAR:
            notes.append(f"{code}: no {OUTTURN_YEAR} outturn submitted; {y} values uprated by the national growth of "
                         f"each line to {OUTTURN_YEAR} (ASC x{growth[y]['adult_social_care']:.4f}, "
                         f"PH x{growth[y]['public_health']:.4f})")
    la = pl.DataFrame(rows)
    # apportion upper-tier spending to its districts by mid-2023 resident population
    pop_tot = population.group_by("area_code", maintain_order=True).agg(pl.col("population").sum())
    la_lt = (
        utla.join(pop_tot, on="area_code")
        .with_columns(utla_share=pl.col("population") / pl.col("population").sum().over("utla_code"))
        .join(la, on="utla_code", how="left")
        .select("area_code", "la_source_year",
                adult_social_care=pl.col("adult_social_care") * pl.col("utla_share"),
                public_health=pl.col("public_health") * pl.col("utla_share"))
    )
    out = (
        areas.select("area_code")
        .join(nhs_la, on="area_code", how="left")
        .join(la_lt, on="area_code", how="left")
        .with_columns(baseline_year=pl.lit(NHS_CORE_ROUND), nhs_core_source_year=pl.lit(NHS_CORE_ROUND),
                      nhs_primary_medical_source_year=pl.lit(NHS_PMC_ROUND))
        .sort("area_code")
    )
    for col in ["nhs_core", "nhs_primary_medical", "adult_social_care", "public_health"]:
        nulls = out.filter(pl.col(col).is_null())["area_code"].to_list()
        if nulls:
            raise BuildError(f"baseline: {col} missing for {nulls}")
    out = out.select("area_code", "baseline_year", "nhs_core", "nhs_primary_medical", "adult_social_care",
                     "public_health", pl.col("la_source_year").alias("council_spending_source_year"),
                     "nhs_core_source_year", "nhs_primary_medical_source_year")
    require_all("baseline", out, codes)
    totals = out.select(pl.col(["nhs_core", "nhs_primary_medical", "adult_social_care", "public_health"]).sum())
    notes.append("Baseline totals (GBP bn): " + ", ".join(f"{k} {v / 1e9:.3f}" for k, v in totals.row(0, named=True).items()))
    return out, notes


PRACTICE_COMPONENTS = {  # NHS England column -> fundform column
    "G&A WP": "wp_general_acute", "CS WP": "wp_community", "MH WP": "wp_mental_health", "Mat WP": "wp_maternity",
    "Health Ineq WP": "wp_health_inequalities", "Prescr WP": "wp_prescribing", "Final WP": "wp_core",
    "Primary Medical Care WP": "wp_primary_medical", "Final PMC WP": "wp_primary_medical_final",
}


PRACTICE_FILES = [  # weights year, file, ICB / region / district / list-size / core columns (NHS England's names change)
    ("2023/24", "gp_practice_weighted_populations_2023_24.csv", "ICS22", "R22", "LAD21", "pop 2022/23", "Final WP"),
    ("2024/25", "gp_practice_weighted_populations_2024_25.csv", "ICS22", "R22", "LAD21", "pop 2022/23", "Final WP"),
    ("2025/26", "gp_practice_weighted_populations_2025_26.csv", "ICB", "Rcode", "LAD", "Population", "Final WP"),
    ("2026/27", "2026-27_to_2028-29/gp_practice_weighted_populations_2026_2027.csv", "ICB", "RCode", "LAD",
     "Registered Patients", "Core WP"),
    ("2027/28", "2026-27_to_2028-29/gp_practice_weighted_populations_2027_2028.csv", "ICB", "RCode", "LAD",
     "Registered Patients", "Core WP"),
    ("2028/29", "2026-27_to_2028-29/gp_practice_weighted_populations_2028_2029.csv", "ICB", "RCode", "LAD",
     "Registered Patients", "Core WP"),
]
ICB_MERGER_YEAR = "2026/27"  # the 36 ICBs of the 2026 mergers hold from this weights year on


def build_practices(src: Path, codes: set[str]) -> pl.DataFrame:
    """Every practice file (2023/24 .. 2028/29 weights), one row per practice per weights year."""
    frames = []
    for year, fname, icb, region, lad, listsize, core in PRACTICE_FILES:
        gp = pl.read_csv(src / "nhs-weighted-populations" / fname, infer_schema_length=0)
        comps = {k: v for k, v in PRACTICE_COMPONENTS.items() if k != "Final WP"} | {core: "wp_core"}
        frames.append(gp.select(
            weights_year=pl.lit(year),
            practice_code="Practice_Code",
            practice_name="GP_Practice_Name",
            area_code=to_2024_code(lad),
            icb_code=icb,
            nhs_region_code=region,
            registered_population=pl.col(listsize).cast(pl.Float64),
            **{new: pl.col(old).cast(pl.Float64) for old, new in comps.items()},
        ).select("weights_year", "practice_code", "practice_name", "area_code", "icb_code", "nhs_region_code",
                 "registered_population", *PRACTICE_COMPONENTS.values()))
    out = pl.concat(frames).sort("weights_year", "practice_code")
    unknown = sorted(set(out["area_code"].to_list()) - codes)
    if unknown:
        raise BuildError(f"practices: authority codes not among the 296 after mapping forward: {unknown}")
    nulls = out.filter(pl.any_horizontal(pl.all().is_null()))
    if nulls.height:
        raise BuildError(f"practices: missing values in {nulls.height} rows, e.g. {nulls.head(3).rows()}")
    n = dict(out.group_by("weights_year").agg(pl.col("icb_code").n_unique()).sort("weights_year").rows())
    expected = {y: (36 if y >= ICB_MERGER_YEAR else 42) for y, *_ in PRACTICE_FILES}
    if n != expected:
        raise BuildError(f"practices: ICBs per weights year {n}, expected {expected}")
    return out


def build_icb_changes(src: Path) -> pl.DataFrame:
    """The 2026 ICB mergers as a change of vintage: the share of each 2025/26 ICB's weighted population (2025/26
    weights, over practices present in both years' files) that lies in each 2026/27 ICB. Most ICBs move whole;
    three are split (Suffolk and North East Essex, Hertfordshire and West Essex, Frimley)."""
    old = pl.read_csv(src / "nhs-weighted-populations/gp_practice_weighted_populations_2025_26.csv",
                      infer_schema_length=0).select("Practice_Code", old_code="ICB", old_name="ICBname",
                                                    w=pl.col("Final WP").cast(pl.Float64))
    new = pl.read_csv(src / "nhs-weighted-populations/2026-27_to_2028-29/gp_practice_weighted_populations_2026_2027"
                      ".csv", infer_schema_length=0).select("Practice_Code", new_code="ICB", new_name="ICBname")
    pairs = old.join(new, on="Practice_Code", how="inner").sort("old_code", "new_code", "Practice_Code")
    # each sum in one fixed order (numpy over sorted rows): a threaded group-by's float sums vary in the last bit
    # from build to build, and the bundled bytes must not
    keys = pairs.select("old_code", "old_name", "new_code", "new_name")
    starts = np.flatnonzero(np.r_[True, (keys[1:].to_numpy() != keys[:-1].to_numpy()).any(axis=1)])
    w = np.add.reduceat(pairs["w"].to_numpy(), starts)
    grouped = keys[starts].with_columns(w=pl.Series(w))
    old_total = dict(zip(*np.unique(grouped["old_code"].to_numpy(), return_index=True)))
    totals = np.add.reduceat(w, sorted(old_total.values()))
    grouped = grouped.with_columns(total=pl.col("old_code").replace_strict(dict(zip(sorted(old_total), totals))))
    out = (grouped.with_columns(share=pl.col("w") / pl.col("total"))
           .select(effective_year=pl.lit(ICB_MERGER_YEAR), old_code="old_code", old_name="old_name",
                   new_code="new_code", new_name="new_name", share="share")
           .sort("old_code", "new_code"))
    if out["old_code"].n_unique() != 42 or out["new_code"].n_unique() != 36:
        raise BuildError(f"icb_changes: {out['old_code'].n_unique()} old and {out['new_code'].n_unique()} new ICBs, "
                         "expected 42 and 36")
    return out


ALLOCATION_FILES = {  # (round, stream): the published sheet of that stream's allocations in that round
    ("2023/24", "core"): "ICB_Core_Allocations_2023_24.csv", ("2024/25", "core"): "ICB_Core_Allocations_2024_25.csv",
    ("2025/26", "core"): "ICB_Core_Allocations_2025_26.csv",
    ("2023/24", "primary_medical_care"): "PMC_Allocations_2023_24.csv",
    ("2024/25", "primary_medical_care"): "PMC_Allocations_2024_25.csv",
}
ALLOCATION_COLUMNS = {  # fundform column: NHS England's header after its year (the order changed in 2025/26)
    "adjusted_recurrent_baseline": "Adjusted recurrent baseline", "fair_shares_target": "Fair shares target",
    "distance_from_target": "Distance from target", "base_growth": "Base growth", "convergence": "Convergence",
    "recurrent_allocation": "Recurrent allocation (", "post_convergence_distance_from_target": "Post-convergence",
}


def build_icb_allocations(src: Path) -> tuple[pl.DataFrame, list[str]]:
    """The published ICB allocation rounds, one row per round, stream and ICB (core services; primary medical
    care): baseline, fair shares target, base growth, convergence, result. The sheets of both streams share their
    column headings (after the year), so one reader serves both."""
    frames = []
    for (rnd, stream), fname in ALLOCATION_FILES.items():
        d = pl.read_csv(src / "nhs-allocations" / fname, infer_schema_length=0)
        c = d.columns
        d = d.filter(pl.col(c[2]).str.contains(r"^Q[A-Z0-9]{2}$"))  # the ICB rows, not regions or England
        found = {}
        for new, head in ALLOCATION_COLUMNS.items():
            hits = [x for x in c if re.sub(r"\s+", " ", re.sub(r"^\d{4}/\d{2}\s+", "", x)).lower().startswith(
                head.lower())]
            if len(hits) != 1:
                raise BuildError(f"nhs_icb_allocations {fname}: {len(hits)} columns starting '{head}'")
            found[new] = hits[0]
        money = ("adjusted_recurrent_baseline", "fair_shares_target", "recurrent_allocation")
        frames.append(d.select(
            allocation_round=pl.lit(rnd), stream=pl.lit(stream), icb_code=pl.col(c[2]), icb_name=pl.col(c[3]),
            nhs_region_code=pl.col(c[0]),
            **{k: pl.col(v).cast(pl.Float64) * (1000 if k in money else 1) for k, v in found.items()}))
    spec_rows, notes = specialised(src)
    frames += [other_primary_care(src), running_costs(src), spec_rows, pharmacy_optometry_dental(src)]
    out = pl.concat(frames, how="diagonal_relaxed").select(frames[0].columns).sort(
        "allocation_round", "stream", "icb_code")
    counts = out.group_by("allocation_round", "stream").len()
    if counts["len"].to_list() != [42] * counts.height:
        raise BuildError("nhs_icb_allocations: expected 42 ICBs in each round of each stream")
    return out, notes


def sheet_2025(src: Path, fname: str) -> pl.DataFrame:
    """One sheet of NHS England's 2025/26 "all funding streams" workbook as converted (line 1 the sheet's title, the
    header on line 2, some headers holding newlines): its 42 ICB rows, headers with their whitespace collapsed."""
    d = pl.read_csv(src / "nhs-allocations" / fname, skip_rows=1, infer_schema_length=0)
    d = d.rename({c: re.sub(r"\s+", " ", c).strip() for c in d.columns})
    d = d.filter(pl.col("ICB23").str.contains(r"^Q[A-Z0-9]{2}$"))
    if d.height != 42:
        raise BuildError(f"{fname}: {d.height} ICB rows, expected 42")
    return d


def _num(c: str, scale: float = 1.0) -> pl.Expr:
    return pl.col(c).cast(pl.Float64) * scale


SPECIALISED = "nhse_specialised_allocations_2025_26.csv"


def specialised(src: Path) -> tuple[pl.DataFrame, list[str]]:
    """The "Specialised Allocations 2025-26" sheet: physical health services (PH) and high-cost drugs and devices
    (HCDD) as one line, as the sheet publishes its baseline, fair shares target, base growth, convergence and
    allocation. The per-ICB base growth is a mix of two uniform growths: the baseline sheet's PH and HCDD parts
    show HCDD growing by one figure for every ICB and PH by another, the combined growth being their weighted mean
    by each ICB's mix; convergence moves the PH part alone. Both identities are checked here (a sheet that breaks
    them fails the build) and stated in the build report."""
    d = sheet_2025(src, SPECIALISED)
    b = sheet_2025(src, "nhse_specialised_baseline_2025_26.csv")
    if d["ICB23"].to_list() != b["ICB23"].to_list():
        raise BuildError("specialised: the allocation and baseline sheets list different ICBs")
    col = {k: next(c for c in d.columns if c.startswith(k)) for k in (
        "2024/25 Physical health services + HCDD recurrent baseline", "2024/25 Fair shares target",
        "2024/25 Distance from target", "2025/26 Base growth", "2025/26 Convergence",
        "2025/26 Physical health services + HCDD recurrent allocation", "2025/26 Post-convergence",
        "2025/26 HCDD total", "2025/26 Physical health services recurrent allocation (")}
    v = lambda frame, c: frame[c].cast(pl.Float64).to_numpy()
    ph_base = v(b, "2024/25 Physical health services adjusted recurrent baseline (£k)")
    hcdd_base = v(b, "2024/25 High Cost Drugs (£k)") + v(b, "2024/25 High cost devices (£k)")
    base, growth = v(d, col["2024/25 Physical health services + HCDD recurrent baseline"]), v(d, col["2025/26 Base growth"])
    g_hcdd = v(d, col["2025/26 HCDD total"]) / hcdd_base - 1
    g_ph = (base * (1 + growth) - hcdd_base * (1 + g_hcdd)) / ph_base - 1
    if abs(ph_base + hcdd_base - base).max() > 0.01 or np.ptp(g_hcdd) > 1e-9 or np.ptp(g_ph) > 1e-6:
        raise BuildError(f"{SPECIALISED}: the base growth is no longer a mix of uniform PH and HCDD growths "
                         f"(HCDD {g_hcdd.min():.6f}..{g_hcdd.max():.6f}, PH {g_ph.min():.6f}..{g_ph.max():.6f})")
    conv_ph = v(d, col["2025/26 Physical health services recurrent allocation ("]) / (ph_base * (1 + g_ph)) - 1
    notes = [f"specialised 2025/26: base growth per ICB ({growth.min():.4%} to {growth.max():.4%}) is the mix of "
             f"two uniform growths, high-cost drugs and devices {g_hcdd[0]:.4%} and physical health {g_ph[0]:.4%} "
             "(the baseline sheet's parts, checked for all 42 ICBs); convergence moves the physical health part "
             f"alone, between {conv_ph.min():+.3%} and {conv_ph.max():+.3%} of it"]
    rows = d.select(
        allocation_round=pl.lit("2025/26"), stream=pl.lit("specialised"), icb_code="ICB23",
        icb_name="Integrated Care Board (ICB)", nhs_region_code="R23",
        adjusted_recurrent_baseline=_num(col["2024/25 Physical health services + HCDD recurrent baseline"], 1000),
        fair_shares_target=_num(col["2024/25 Fair shares target"], 1000),
        distance_from_target=_num(col["2024/25 Distance from target"]), base_growth=_num(col["2025/26 Base growth"]),
        convergence=_num(col["2025/26 Convergence"]),
        recurrent_allocation=_num(col["2025/26 Physical health services + HCDD recurrent allocation"], 1000),
        post_convergence_distance_from_target=_num(col["2025/26 Post-convergence"]))
    return rows, notes


def pharmacy_optometry_dental(src: Path) -> pl.DataFrame:
    """The "ICB POD" sheet (pharmacy, optometry and dental, 2025/26): each ICB's 2024/25 adjusted recurrent baseline,
    the base growth (3.47% for every ICB) and the recurrent allocation; no targets, no convergence. The sheet's NHS
    England regional rows (services NHS England commissions itself) are not ICBs and are left out; community LFD
    testing is a non-recurrent line, not part of the recurrent allocation."""
    d = sheet_2025(src, "nhse_pod_allocation_2025_26.csv")
    return d.select(
        allocation_round=pl.lit("2025/26"), stream=pl.lit("pharmacy_optometry_dental"), icb_code="ICB23",
        icb_name="Integrated Care Board (ICB)", nhs_region_code="R23",
        adjusted_recurrent_baseline=_num("2024/25 Adjusted recurrent baseline (£k)", 1000),
        base_growth=_num("2025/26 Base growth (%)"), recurrent_allocation=_num("2025/26 Recurrent allocation (£k)", 1000))


def other_primary_care(src: Path) -> pl.DataFrame:
    """The "Other Primary Care" sheet (rounds 2023/24 and 2024/25): each ICB's recurrent baseline, base growth and
    convergence (one figure per NHS region), added: allocation = baseline x (1 + base growth + convergence). The
    sheet publishes no fair shares targets; the 2024/25 round's baseline is the 2023/24 recurrent allocation (no
    restatement is published)."""
    d = pl.read_csv(src / "nhs-allocations" / "Other_Primary_Care.csv", infer_schema_length=0)
    d = d.filter(pl.col("ICB23").str.contains(r"^Q[A-Z0-9]{2}$"))
    f = lambda c: pl.col(c).cast(pl.Float64)
    rounds = {"2023/24": "2022/23 Recurrent baseline £k", "2024/25": "2023/24 Recurrent allocation £k"}
    return pl.concat([d.select(
        allocation_round=pl.lit(rnd), stream=pl.lit("other_primary_care"), icb_code="ICB23",
        icb_name="Integrated Care Board", nhs_region_code="R23", adjusted_recurrent_baseline=f(base) * 1000,
        base_growth=f(f"{rnd} Base growth %"), convergence=f(f"{rnd} Convergence %"),
        recurrent_allocation=f(f"{rnd} Recurrent allocation £k") * 1000) for rnd, base in rounds.items()])


def running_costs(src: Path) -> pl.DataFrame:
    """The "ICB running cost allowance" sheet: each ICB's allowance for 2023/24, 2024/25 and 2025/26 (GBP k; 2025/26
    from the sheet's version 1.4, GBP 874.0m, which supersedes the GBP 828.3m of version 1.2), as rounds 2024/25 and
    2025/26: the baseline is the year before's allowance, the recurrent allocation
    the year's. The sheet publishes allowances only, so base growth is England's change in the year (the same for
    every ICB: the 30% reduction, -18.04% then -8.85%); no convergence, no targets."""
    d = pl.read_csv(src / "nhs-allocations" / "ICB_running_cost_allowance.csv", infer_schema_length=0)
    d = d.filter(pl.col("ICB23").str.contains(r"^Q[A-Z0-9]{2}$"))
    v14 = sheet_2025(src, "nhse_running_cost_allowance_2025_26_v1_4.csv")
    if sorted(v14["ICB23"].to_list()) != sorted(d["ICB23"].to_list()):
        raise BuildError("running costs v1.4: the sheet lists other ICBs than the 2023/24-2025/26 allowance sheet")
    # 2025/26 as version 1.4 of the sheet (after employer National Insurance changes), superseding v1.2's figures
    d = d.drop("2025/26 £k").join(v14.select("ICB23", pl.col("2025/26 (£k)").alias("2025/26 £k")), on="ICB23")
    f = lambda c: pl.col(c).cast(pl.Float64) * 1000
    out = []
    for before, rnd in (("2023/24", "2024/25"), ("2024/25", "2025/26")):
        growth = d.select(f(f"{rnd} £k").sum() / f(f"{before} £k").sum() - 1).item()
        out.append(d.select(
            allocation_round=pl.lit(rnd), stream=pl.lit("running_costs"), icb_code="ICB23", icb_name="System Name",
            nhs_region_code="R23", adjusted_recurrent_baseline=f(f"{before} £k"), base_growth=pl.lit(growth),
            recurrent_allocation=f(f"{rnd} £k")))
    return pl.concat(out)


def build_code_changes(src: Path) -> pl.DataFrame:
    """Old district -> successor authority, with each old district's population (IoD2019 denominators, mid-2015)
    as the weight for averaging rates and scores; null where the old code predates the IoD2019 geography."""
    den = pl.read_csv(src / "deprivation/lsoa-2019/File_6_-_IoD2019_Population_Denominators.csv.gz",
                      infer_schema_length=0)
    c = den.columns
    pop = den.select(lad=pl.col(c[2]), name=pl.col(c[3]), p=pl.col(c[4]).str.replace_all(",", "").cast(pl.Float64)
                     ).group_by("lad", "name").agg(pl.col("p").sum())
    rows = [(y, old, new, name) for y, new, name, olds in CODE_CHANGES for old in olds]
    out = (pl.DataFrame(rows, schema=["change_year", "old_code", "new_code", "new_name"], orient="row")
           .with_columns(pl.col("change_year").cast(pl.Int32))
           .join(pop.rename({"lad": "old_code", "name": "old_name", "p": "population_weight"}), on="old_code",
                 how="left")
           .with_columns(weight_source=pl.when(pl.col("population_weight").is_null()).then(pl.lit("not available"))
                         .otherwise(pl.lit("IoD2019 population denominators, mid-2015")))
           .select("change_year", "old_code", "old_name", "new_code", "new_name", "population_weight",
                   "weight_source").sort("change_year", "old_code"))
    return out


def build_iod2019(src: Path) -> pl.DataFrame:
    """IoD2019 local authority summaries on 2019 codes (317 districts): an input on an older boundary vintage."""
    iod = pl.read_csv(src / "deprivation/IoD2019_lad.csv").filter(pl.col("index_domain") == "Index of Multiple Deprivation")
    return iod.select(area_code="lad19cd",
                      imd_average_score=pl.col("average_score").cast(pl.Float64),
                      imd_rank_average_score=pl.col("rank_average_score").cast(pl.Int32),
                      imd_proportion_bottom_decile=pl.col("proportion_bottom_decile").cast(pl.Float64),
                      imd_average_rank=pl.col("average_rank").cast(pl.Float64)).sort("area_code")


def write(df: pl.DataFrame, path: Path) -> None:
    """Parquet with page checksums (a corrupted page is refused on load, not read as other values)."""
    import pyarrow.parquet as pq

    tmp = path.with_suffix(".parquet.tmp")
    pq.write_table(df.to_arrow(), tmp, compression="zstd", compression_level=9, write_statistics=True,
                   write_page_checksum=True)
    tmp.replace(path)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--source", type=Path, default=DEFAULT_SOURCE, help="the shared/data folder")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = ap.parse_args(argv)
    src, out = args.source, args.out
    if not src.is_dir():
        print(f"build_dataset: source folder {src} not found", file=sys.stderr)
        return 1
    out.mkdir(parents=True, exist_ok=True)
    try:
        areas = build_areas(src)
        codes = set(areas["area_code"])
        utla = build_utla(src, areas)
        population = build_population(src, codes)
        deprivation = build_deprivation(src, codes)
        mortality, m_notes = build_mortality(src, codes)
        council_tax = build_council_tax(src, codes, utla)
        lookup = build_lookup(src, areas, utla)
        regions = lookup.filter(pl.col("level") == "region").select("area_code", region="target_code")
        population_by_year, p_notes, population_variants = build_population_by_year(src, codes, population, regions)
        icb_allocations, a_notes = build_icb_allocations(src)
        baseline, b_notes = build_baseline(src, areas, utla, population, lookup, population_by_year, icb_allocations)
        icb_changes = build_icb_changes(src)
        practices = build_practices(src, codes)
        bands = build_council_tax_bands(src, codes)
        changes = build_code_changes(src)
        iod2019 = build_iod2019(src)
    except BuildError as e:
        print(f"build_dataset: {e}", file=sys.stderr)
        return 1
    tables = {
        "areas": areas, "population": population_by_year, "population_variants": population_variants,
        "deprivation": deprivation,
        "preventable_mortality": mortality, "council_tax": council_tax, "area_lookup": lookup, "baseline": baseline,
        "practice_weighted_population": practices, "nhs_icb_allocations": icb_allocations,
        "council_tax_bands": bands, "code_changes": changes, "icb_changes": icb_changes,
    }
    for name, df in tables.items():
        write(df, out / f"{name}.parquet")
    vintages = out.parent / "vintages"
    vintages.mkdir(exist_ok=True)
    write(iod2019, vintages / "deprivation_iod2019_lad19.parquet")
    report = ["# Build report", "", "Written by `data/build_dataset.py`; regenerate with `make data`.", "",
              "| table | rows |", "|---|---|"]
    report += [f"| {k} | {v.height} |" for k, v in tables.items()]
    report += ["", "## Policies applied", ""] + [f"- {n}" for n in p_notes + m_notes + b_notes + a_notes]
    report += ["", "## Combined authorities (level ca; every other authority stands as itself)", ""]
    report += [f"- {c} {n}: {', '.join(ms)}" for c, (n, ms) in COMBINED_AUTHORITIES.items()]
    report += ["", "## 2023 reorganisations (2021 codes mapped forward)", ""]
    report += [f"- {new} {name}: from {', '.join(olds)}" for new, (name, olds) in REORGANISATIONS_2023.items()]
    (out / "BUILD_REPORT.md").write_text("\n".join(report) + "\n")
    from fundform.inputs.files import write_checksums

    write_checksums(out)  # every table file's SHA-256, checked at each load: a corrupted file is refused by name
    print("\n".join(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
