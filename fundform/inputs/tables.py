"""The input tables of a fundform dataset: one contract per table.

This module is the single source of the data dictionary (``data/DICTIONARY.md`` is generated from it by
``fundform docs``, and a test fails if the committed file drifts). A user dataset is a folder holding these
tables as ``<name>.parquet`` or ``<name>.csv``, and may add its own indicator tables under ``indicators/``.
"""

from __future__ import annotations

import re
from typing import Any

from fundform.inputs.contracts import Column, Plausible, TableContract

AREA = Column("area_code", "str", "GSS code", "lower-tier local authority code, 2024 boundaries (E06/E07/E08/E09)")
FY: dict[str, Any] = dict(pattern=r"^\d{4}/\d{2}$", pattern_text="a financial year like 2024/25")

# Hard limits that keep arithmetic exact (money in int64 pence, sums over every area) and plausibility bounds that
# catch unit slips and corrupted files. Each bound says where it comes from; the observed ranges are those of the
# bundled 2024/25 dataset (data/default) and its published sources.
MAX_GBP = 1e12  # one area's one component: GBP 1 trillion (England's whole health and care spend is ~GBP 0.25trn)
MAX_PERSONS = 1e9  # one row of population: more than any country's
BAND_D = Plausible(20, 10_000, "Band D in England 2024-25 ranged from GBP 115 (City of London, billing) to GBP 2,543 "
                   "(area incl. parishes), CTR Table 9; the bound allows four times the highest")

AREAS = TableContract(
    name="areas",
    description="The lower-tier local authorities every other table must cover: the engine's unit of account.",
    source="ONS mid-2023 population estimates (MYE2), the English rows of local-authority geography",
    vintage="2024 boundaries (296 authorities)",
    columns=(
        AREA,
        Column("area_name", "str", "text", "authority name as published by ONS"),
        Column("area_type", "str", "text", "ONS geography type: Unitary Authority, Non-metropolitan District, "
               "Metropolitan District or London Borough"),
    ),
    key=("area_code",),
)

POPULATION = TableContract(
    name="population",
    description="Resident population by single year of age (90 = 90 and over) and sex. May carry a `financial_year`: "
    "then every year a run needs must be present, and each settlement year's need and targets are computed from that "
    "year's population. May be given at a finer grain: with a `small_area_code` column, rows are small areas inside "
    "`area_code` and are summed in the plan.",
    source="ONS Mid-Year Population Estimates mid-2023 (MYE2 females and males) and mid-2024 (persons, split by sex "
    "with each authority's mid-2023 ratio at that age); from mid-2025, ONS 2018-based subnational projections' growth "
    "per authority and five-year age band, constrained to ONS 2022-based regional projections by sex and age band "
    "(data/README.md)",
    vintage="financial year Y/Y+1 = mid-Y: estimates 2023/24-2024/25, projections 2025/26-2035/36",
    columns=(
        AREA,
        Column("sex", "str", "F or M", "sex: F (female) or M (male)"),
        Column("age", "int", "years", "single year of age; 90 means 90 and over", min=0, max=90),
        Column("population", "float", "persons", "usual residents", min=0, max=MAX_PERSONS,
               plausible=Plausible(None, 1_000_000, "the largest single-age, single-sex cell of any authority in "
                                   "mid-2023 was 11,565 (ONS MYE2)")),
        Column("small_area_code", "str", "code", "optional small area (LSOA, practice) inside the authority",
               required=False),
        Column("financial_year", "str", "financial year", "optional: the year the population is for (mid-year of "
               "its first calendar year, e.g. 2026/27 = mid-2026); without it, one population serves every year",
               required=False, **FY),
    ),
    key=("area_code", "sex", "age"),
    finer_grain_key="small_area_code",
    period_key="financial_year",
)

DEPRIVATION = TableContract(
    name="deprivation",
    description="Index of Multiple Deprivation summary per authority.",
    source="MHCLG English Indices of Deprivation 2025, local authority district summaries (via Trafford Data Lab)",
    vintage="IoD2025 (2024 boundaries)",
    columns=(
        AREA,
        Column("imd_average_score", "float", "IMD score", "population-weighted average of LSOA IMD scores "
               "(higher is more deprived)", min=0, min_exclusive=True, max=100, combine="mean",
               plausible=Plausible(0.5, 90, "authority average IMD scores ran from 5.9 to 43.5 (IoD2025); LSOA "
                                   "scores lie within 0.5-95")),
        Column("imd_rank_average_score", "int", "rank", "rank of the average score, 1 = most deprived", min=1,
               combine="rank:imd_average_score"),
        Column("imd_proportion_bottom_decile", "float", "ratio", "share of LSOAs in the most deprived 10% "
               "nationally", min=0, max=1, combine="mean"),
        Column("imd_average_rank", "float", "rank", "population-weighted average of LSOA ranks (1 = most deprived)",
               min=1, required=False, combine="mean"),
    ),
    key=("area_code",),
)

PREVENTABLE_MORTALITY = TableContract(
    name="preventable_mortality",
    description="Under-75 mortality from causes considered preventable, directly age-standardised, persons.",
    source="OHID Fingertips indicator 93721 (2019 ONS/OHID definition)",
    vintage="calendar year 2022",
    columns=(
        AREA,
        Column("preventable_mortality_rate", "float", "deaths per 100,000 (age-standardised)",
               "preventable mortality rate, persons under 75", min=0, min_exclusive=True, max=100_000,
               combine="mean", plausible=Plausible(10, 2_000, "authority rates in 2022 ran from 79 to 295 per "
                                                   "100,000 (OHID Fingertips 93721)")),
        Column("preventable_mortality_year", "int", "calendar year", "year of the rate", min=2000, max=2100,
               combine="same"),
        Column("preventable_mortality_source", "str", "text", "'observed', or 'substituted from <code>' where the "
               "published value is suppressed (the policy is in data/README.md)", combine="converted"),
    ),
    key=("area_code",),
)

COUNCIL_TAX = TableContract(
    name="council_tax",
    description="Council tax base and Band D per billing authority.",
    source="DLUHC Council Tax levels set by local authorities in England 2024-25 (CTR Table 9 returns, lines 7, 9, "
    "16, 17, 11a; precepting return lines 3 and 5; Table 8 for district to county)",
    vintage="2024-25 (2023-24 tax base for growth)",
    columns=(
        AREA,
        Column("tax_base_band_d", "float", "Band D equivalent dwellings", "council tax base for tax setting, "
               "2024-25 (line 7); checked per head too", min=0, min_exclusive=True, max=MAX_PERSONS),
        Column("tax_base_band_d_2023_24", "float", "Band D equivalent dwellings", "the same for 2023-24 (the "
               "observed projection divides by it; checked against 2024-25 too)", min=0, min_exclusive=True,
               max=MAX_PERSONS),
        Column("band_d_billing", "float", "GBP per Band D dwelling", "billing authority's average Band D incl. "
               "adult social care precept, excl. parish precepts (line 9)", min=0, min_exclusive=True, max=MAX_GBP,
               plausible=BAND_D),
        Column("band_d_billing_2023_24", "float", "GBP per Band D dwelling", "the same for 2023-24 (line 9, "
               "previous year)", min=0, min_exclusive=True, max=MAX_GBP, plausible=BAND_D),
        Column("band_d_social_care_authority", "float", "GBP per Band D dwelling", "average Band D of the "
               "authority responsible for adult social care and public health: the county precept in two-tier "
               "areas, the authority's own elsewhere", min=0, min_exclusive=True, max=MAX_GBP, plausible=BAND_D),
        Column("band_d_area", "float", "GBP per Band D dwelling", "area Band D incl. parish and all major "
               "precepts (line 17)", min=0, min_exclusive=True, max=MAX_GBP, plausible=BAND_D),
        Column("asc_precept_increment_band_d", "float", "GBP per Band D dwelling", "the 2024-25 INCREMENT of the "
               "adult social care precept (not the cumulative precept since 2016-17)", min=0, max=MAX_GBP,
               plausible=Plausible(None, 500, "the 2024-25 increments were GBP 0-41 (2% of Band D plus the "
                                   "flexibility carried forward); GBP 500 would be a rise of about 25%")),
    ),
    key=("area_code",),
)

AREA_LOOKUP = TableContract(
    name="area_lookup",
    description="How each lower-tier authority maps to the areas of every output level, with apportionment "
    "shares where an authority is split (shares of one authority within one level sum to 1).",
    source="ONS region from the CTR returns; county from CTR Table 8; ICB and NHS region by registered-patient "
    "share from NHS England's practice-level file (2024/25), 2021 codes mapped to 2024",
    vintage="2024 boundaries; ICBs as of July 2022",
    columns=(
        AREA,
        Column("level", "str", "text", "output level: ltla, utla, region, icb, nhs-region, ca (combined "
               "authorities, each other authority as itself)"),
        Column("target_code", "str", "code", "code of the area at that level (GSS; ODS Qxx for ICBs, Yxx for NHS "
               "regions)"),
        Column("target_name", "str", "text", "name of the area at that level"),
        Column("share", "float", "ratio", "share of the authority apportioned to the target area", min=0,
               max=1, min_exclusive=True),
        Column("effective_from", "str", "financial year", "first year the mapping holds (boundaries, ICBs from "
               "July 2022, combined authority membership)", required=False, **FY),
    ),
    key=("area_code", "level", "target_code"),
)

BASELINE = TableContract(
    name="baseline",
    description="Today's health and care funding per authority: the starting point of the transition.",
    source="NHS England ICB core recurrent allocations 2025/26 and primary medical care 2024/25, attributed to "
    "authorities by residents x NHS England's weighted population per registered patient (data/README.md); MHCLG "
    "revenue outturn 2024-25 net current expenditure on adult social care and public health for upper-tier "
    "authorities, apportioned to districts by mid-2023 population",
    vintage="2025/26 (NHS core); each component's own year in its *_source_year column",
    columns=(
        AREA,
        Column("baseline_year", "str", "financial year", "year of the baseline, e.g. 2024/25: one year for the "
               "whole table, the year the version's control total grows from (control_total.base_year)", **FY,
               uniform=True),
        Column("nhs_core", "float", "GBP", "ICB core recurrent allocation apportioned to the authority", min=0,
               max=MAX_GBP),
        Column("nhs_primary_medical", "float", "GBP", "ICB primary medical care recurrent allocation apportioned",
               min=0, max=MAX_GBP),
        Column("adult_social_care", "float", "GBP", "net current expenditure on adult social care", min=0,
               max=MAX_GBP),
        Column("public_health", "float", "GBP", "net current expenditure on public health", min=0, max=MAX_GBP),
        Column("council_spending_source_year", "str", "financial year", "outturn year used (latest submitted; "
               "earlier years uprated by the national growth of the line, see data/README.md)",
               pattern=r"^\d{4}-\d{2}$", pattern_text="a financial year like 2024-25"),
        Column("nhs_core_source_year", "str", "financial year", "optional: the NHS allocation round nhs_core comes "
               "from", required=False, **FY),
        Column("nhs_primary_medical_source_year", "str", "financial year", "optional: the NHS allocation round "
               "nhs_primary_medical comes from", required=False, **FY),
    ),
    key=("area_code",),
)

COUNCIL_TAX_BANDS = TableContract(
    name="council_tax_bands",
    description="Area council tax by valuation band A..H, for a dwelling of two adults, 2024-25. Optional: checks the "
    "band ratios (A = 6/9 .. H = 18/9 of Band D).",
    source="DLUHC Council Tax levels set by local authorities in England 2024-25, Table 8",
    vintage="2024-25",
    columns=(AREA, Column("band", "str", "A..H", "valuation band", pattern=r"^[A-H]$",
                          pattern_text="a valuation band A to H"),
             Column("area_council_tax", "float", "GBP per dwelling", "area council tax incl. parish and major precepts",
                    min=0, min_exclusive=True)),
    key=("area_code", "band"),
    required=False,
)

WP = lambda name, what: Column(name, "float", "weighted persons", f"{what} needs-weighted population", min=0,
                               max=MAX_PERSONS)

PRACTICE_WEIGHTED_POPULATION = TableContract(
    name="practice_weighted_population",
    description="NHS England's needs-weighted registered populations per GP practice, by formula component, for "
    "each allocation year's weights. Optional: needed by versions whose need method is practice_weighted_population.",
    source="NHS England ICB allocations, practice-level weighted populations as published with the ICB place-based "
    "allocation tools (nhsx/AIF_Allocation_Tool 2023/24 and 2024/25; nhsengland/ICB_Allocation_Tool_update 2025/26; "
    "nhsengland/ICB_Place_Based_Tool_2627-2829 2026/27 to 2028/29)",
    vintage="weights for 2023/24 to 2028/29 (42 ICBs to 2025/26, the 36 merged ICBs from 2026/27: wp_core is 'Core "
    "WP' there); 2021 districts mapped to 2024 codes",
    columns=(
        Column("weights_year", "str", "financial year", "allocation year the weights were published for", **FY),
        Column("practice_code", "str", "ODS code", "GP practice code"),
        Column("practice_name", "str", "text", "GP practice name"),
        AREA,
        Column("icb_code", "str", "ODS code", "ICB of the practice (Qxx)"),
        Column("nhs_region_code", "str", "ODS code", "NHS region of the practice (Yxx)"),
        Column("registered_population", "float", "persons", "registered patients (projection)", min=0,
               max=MAX_PERSONS, plausible=Plausible(None, 500_000, "the largest English practice lists are about "
                                                    "100,000 patients (NHS Digital, patients registered at a GP "
                                                    "practice)")),
        WP("wp_general_acute", "general and acute"), WP("wp_community", "community services"),
        WP("wp_mental_health", "mental health"), WP("wp_maternity", "maternity"),
        WP("wp_health_inequalities", "health inequalities (avoidable mortality)"), WP("wp_prescribing", "prescribing"),
        WP("wp_core", "overall core (the ICB core fair-shares basis)"),
        WP("wp_primary_medical", "primary medical care"), WP("wp_primary_medical_final", "final primary medical care"),
    ),
    key=("weights_year", "practice_code"),
    covers_every_area=False,
    required=False,
)

ICB_MONEY = Plausible(1e6, 5e10, "published ICB allocations 2023/24-2025/26 ran from GBP 73m (primary medical care, "
                      "smallest ICB) to GBP 8.6bn (core, largest); England's whole core allocation is GBP 112bn")
NHS_ICB_ALLOCATIONS = TableContract(
    name="nhs_icb_allocations",
    description="NHS England's published ICB allocation rounds, one row per round, stream and ICB: the base year's "
    "adjusted recurrent baseline and fair shares target, each ICB's base growth and convergence, and the recurrent "
    "allocation. A round that publishes targets but not yet its outcomes leaves the outcome columns empty. "
    "Optional: used by versions whose baseline source is nhs_icb_allocations (each stream of a version starts from "
    "its own `round_stream`), and by the reproduction tests.",
    source="NHS England, ICB allocations 2023/24 to 2024/25 (core, primary medical care and other primary care "
    "allocations sheets, the running cost allowance sheet) and 2025/26 (core, specialised services, pharmacy, "
    "optometry and dental, running cost allowance version 1.4), GBP thousands converted to GBP",
    vintage="allocation rounds 2023/24 (base 2022/23), 2024/25 (base 2023/24) and 2025/26 (base 2024/25 as restated; "
    "core, specialised, pharmacy, optometry and dental, running costs)",
    columns=(
        Column("allocation_round", "str", "financial year", "the year allocated", **FY),
        Column("stream", "str", "name", "the allocation stream, one name per published sheet: core (core "
               "services), primary_medical_care (GP services), other_primary_care, running_costs (the running cost "
               "allowance), specialised (physical health services with high-cost drugs and devices, one line as "
               "the sheet publishes it), pharmacy_optometry_dental; others as their sheets are added",
               pattern=r"^[a-z][a-z0-9_]*$", pattern_text="a stream name in lower case like primary_medical_care"),
        Column("icb_code", "str", "ODS code", "ICB (Qxx)"),
        Column("icb_name", "str", "text", "ICB name"),
        Column("nhs_region_code", "str", "ODS code", "NHS region (Yxx)"),
        Column("adjusted_recurrent_baseline", "float", "GBP", "the base year's adjusted recurrent baseline (the "
               "previous round's recurrent allocation as restated for this round)", min=0, min_exclusive=True,
               max=MAX_GBP, plausible=ICB_MONEY),
        Column("fair_shares_target", "float", "GBP", "the base year's fair shares target (core 2024/25 round: inc. "
               "COVID); empty for a stream whose sheet publishes none (other primary care, running costs), for every "
               "ICB of the round", min=0, min_exclusive=True, max=MAX_GBP, plausible=ICB_MONEY, nullable=True),
        Column("distance_from_target", "float", "ratio", "(baseline - target) / target, as published; empty where "
               "the round publishes none", nullable=True, min=-1, max=10),
        Column("base_growth", "float", "ratio", "the round's base growth for the ICB (running costs: England's "
               "change in the allowance, the sheet publishing allowances only)", min=-1, max=10,
               plausible=Plausible(-0.25, 0.25, "published base growth ran from 2.3% to 6.2% a year, 2023/24-2025/26, "
                                   "and the running cost allowances fell 18.0% in 2024/25 (the 30% reduction)")),
        Column("convergence", "float", "ratio", "the round's convergence adjustment, as published; empty until the "
               "round's outcomes are published", min=-1, max=10, nullable=True,
               plausible=Plausible(-0.1, 0.1, "published convergence ran from -1.4% to +1.0%, 2023/24-2025/26")),
        Column("recurrent_allocation", "float", "GBP", "the published recurrent allocation; empty until the round's "
               "outcomes are published", min=0, min_exclusive=True, max=MAX_GBP, nullable=True, plausible=ICB_MONEY),
        Column("post_convergence_distance_from_target", "float", "ratio", "distance from target after convergence; "
               "empty until the round's outcomes are published", nullable=True, min=-1, max=10),
    ),
    key=("allocation_round", "stream", "icb_code"),
    covers_every_area=False,
    required=False,
)

CODE_CHANGES = TableContract(
    name="code_changes",
    description="Local authority reorganisations since 2019: each old district and the authority it merged into, "
    "with its population as the weight for averaging rates and scores. Optional: lets inputs on older codes be "
    "converted (the run lists each conversion).",
    source="The Bournemouth, Dorset and Poole, East/West Suffolk, Somerset West and Taunton (2019), Buckinghamshire "
    "(2020), Northamptonshire (2021), Cumbria, North Yorkshire and Somerset (2023) structural change orders; weights "
    "from the IoD2019 population denominators (mid-2015)",
    vintage="changes 2019-2023",
    columns=(Column("change_year", "int", "year", "year the change took effect (April)", min=2000, max=2100),
             Column("old_code", "str", "GSS code", "the old district"),
             Column("old_name", "str", "text", "its name, where the IoD2019 geography has it", nullable=True),
             Column("new_code", "str", "GSS code", "the authority it merged into"),
             Column("new_name", "str", "text", "that authority's name"),
             Column("population_weight", "float", "persons", "the old district's population (null where it "
                    "predates the IoD2019 geography)", min=0, nullable=True, max=MAX_PERSONS),
             Column("weight_source", "str", "text", "where the weight comes from")),
    key=("old_code",),
    covers_every_area=False,
    required=False,
)

ICB_CHANGES = TableContract(
    name="icb_changes",
    description="Changes of ICB boundaries (a vintage): from `effective_year` on, each old ICB's share of its "
    "weighted population lies in each new ICB. A run whose years cross a change rolls baselines and published "
    "figures up to the ICBs of its last year. Optional.",
    source="derived from NHS England's practice weighted populations 2025/26 and 2026/27: each practice's ICB "
    "before and after the 2026 mergers, shares of 2025/26 Final WP",
    vintage="the 2026 mergers: 42 ICBs to 36 from 2026/27",
    columns=(
        Column("effective_year", "str", "financial year", "first year of the new ICBs", **FY),
        Column("old_code", "str", "ODS code", "ICB before the change"),
        Column("old_name", "str", "text", "its name"),
        Column("new_code", "str", "ODS code", "ICB after the change (Txx for merged ICBs)"),
        Column("new_name", "str", "text", "its name"),
        Column("share", "float", "share", "share of the old ICB in the new one (shares of an old ICB sum to 1)",
               min=0, min_exclusive=True, max=1),
    ),
    key=("effective_year", "old_code", "new_code"),
    covers_every_area=False,
    required=False,
)

POPULATION_VARIANTS = TableContract(
    name="population_variants",
    description="Other published projections of each authority's population, as a ratio to the population table's "
    "(all ages, persons), by financial year: the spread between projection vintages that `--uncertainty` draws "
    "population from (docs/uncertainty.md). Optional: read only by uncertainty draws of population.",
    source="ONS 2018-based subnational population projections (Table 2, persons, by authority, old districts summed "
    "into their successors) against the population table's projection (2018-based authority growth constrained to "
    "ONS's 2022-based regional projections)",
    vintage="2018-based against 2022-based, mid-2025 to mid-2035 (2025/26 to 2035/36)",
    columns=(
        Column("area_code", "str", "GSS code", "lower-tier authority (2024 codes)"),
        Column("financial_year", "str", "financial year", "the year the population is for (mid-year of its first "
               "calendar year)", **FY),
        Column("variant", "str", "name", "the other projection: snpp2018 (ONS 2018-based, before the 2022-based "
               "regional constraint)", pattern=r"^[a-z][a-z0-9_]*$", pattern_text="a name in lower case like snpp2018"),
        Column("ratio", "float", "ratio", "the variant's population over the population table's, all ages", min=0,
               min_exclusive=True, max=10, plausible=Plausible(0.7, 1.3, "the bundled 2018-based projection is -4.3% to +1.6% "
                                                                "from the central by authority to 2035/36")),
    ),
    key=("area_code", "financial_year", "variant"),
    covers_every_area=False,
    required=False,
)

CONTRACTS: dict[str, TableContract] = {
    c.name: c for c in (AREAS, POPULATION, DEPRIVATION, PREVENTABLE_MORTALITY, COUNCIL_TAX, AREA_LOOKUP, BASELINE,
                        PRACTICE_WEIGHTED_POPULATION, NHS_ICB_ALLOCATIONS, COUNCIL_TAX_BANDS, CODE_CHANGES,
                        ICB_CHANGES, POPULATION_VARIANTS)
}
BASELINE_COMPONENTS = ("nhs_core", "nhs_primary_medical", "adult_social_care", "public_health")
LEVELS = ("ltla", "utla", "region", "icb", "nhs-region", "ca")
REQUIRED_LEVELS = ("ltla", "utla", "region", "icb", "nhs-region")  # ca (combined authorities) is optional


INDICATOR_PREFIX = "indicators/"
INDICATOR_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
TEXT_COLUMNS = ("source", "vintage", "note")  # an indicator file may document itself in these text columns


def indicator_contract(name: str, columns: list[str]) -> TableContract:
    """The contract of a user's own indicator table, `indicators/<name>.parquet|csv` in a dataset folder: one row
    per authority, every other column a positive number (a cost adjustment, a sparsity or rurality index, another
    need measure) that a formula version uses through `table = "indicators/<name>"`."""
    numeric = [c for c in columns if c != "area_code" and c not in TEXT_COLUMNS]
    text = [c for c in columns if c in TEXT_COLUMNS]
    return TableContract(
        name=f"{INDICATOR_PREFIX}{name}",
        description="A need indicator of your own (for example an area cost adjustment or a sparsity index).",
        source="the file's own source column, if given", vintage="the file's own vintage column, if given",
        columns=(AREA, *(Column(c, "float", "as supplied", "indicator value; a formula uses its ratio to the "
                                "population-weighted national value", min=0, min_exclusive=True, max=1e12,
                                combine="mean")
                         for c in numeric),
                 *(Column(c, "str", "text", "documentation of the indicator", nullable=True, required=False)
                   for c in text)),
        key=("area_code",),
    )


def dictionary_markdown() -> str:
    """The data dictionary, generated from the contracts above."""
    out = ["# Data dictionary", "",
           "Generated from `fundform/inputs/tables.py` by `fundform docs`; do not edit by hand. "
           "A dataset folder holds each table as `<name>.parquet` or `<name>.csv`.", ""]
    for c in CONTRACTS.values():
        out += [f"## {c.name}", "", c.description, "",
                f"- Source: {c.source}", f"- Vintage: {c.vintage}", f"- Key: {', '.join(c.key)}",
                f"- Covers every area: {'yes' if c.covers_every_area else 'no'}",
                f"- Required: {'yes' if c.required else 'no (used by the versions that need it)'}", "",
                "| column | type | unit | required | allowed | description |", "|---|---|---|---|---|---|"]
        for col in c.columns:
            allowed = col.expectation() + ("; one value for the whole table" if col.uniform else "")
            if col.plausible:
                allowed += f"; plausible {col.plausible.text().split(' (')[0]} ({col.plausible.why})"
            out.append(f"| `{col.name}` | {col.dtype} | {col.unit} | {'yes' if col.required else 'no'} | "
                       f"{allowed} | {col.description} |")
        out.append("")
    out += ["## indicators/<name> (your own indicators)", "",
            "Any further need indicator, one file per table in the dataset's `indicators/` folder "
            "(`indicators/<name>.parquet` or `.csv`; name in lower case, digits and underscores), used by a formula "
            "version as `table = \"indicators/<name>\"` with one of its columns. Checked like every other table: ",
            "",
            "- Key: area_code; covers every area: yes (on current codes; no boundary conversion)",
            "- Every column but `area_code` is a number > 0, not missing, except the optional text columns "
            + ", ".join(f"`{c}`" for c in TEXT_COLUMNS) + ".",
            "- Its file and SHA-256 are listed in each run's manifest like the other inputs.", "",
            "## Checks across tables", "",
            "- Keys are unique after boundary conversion: an authority given on an old and its current code is "
            "refused, naming both rows.",
            "- Exactly one file per table; a CSV's header names each column once and every row has as many fields.",
            "- Types are exact: a boolean is not a number, a fractional number is not a whole number, nothing is "
            "coerced.",
            "- A dataset folder holding `CHECKSUMS.sha256` (the bundled one does) must match it file for file.",
            "- Hard: every authority has residents; today's funding is not zero everywhere.",
            "- Plausibility, per authority (refused unless `--allow-implausible`, which the manifest records): "
            "population 1,000 to 3,000,000 and 80m in all; today's funding GBP 200 to GBP 20,000 per resident, and "
            "each component within its own range per resident (NHS core GBP 300-10,000, primary medical care GBP "
            "30-1,500, adult social care GBP 20-5,000, public health GBP 3-1,000); tax base 0.05 to 2 Band D "
            "equivalents per resident, and within half to double its 2023-24 value. Reasons in "
            "`docs/reliability.md`.", ""]
    return "\n".join(out)
