"""The output contract: every table fundform writes, each column with its type, unit and meaning.

Later versions may add columns; they never rename, drop or retype one (bump SCHEMA_VERSION's minor for additions,
its major for anything else). Money columns are exact: decimal(20, 2) pounds, computed from integer pence.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

SCHEMA_VERSION = "1.10.0"  # 1.10 sensitivity: share_of_variance (adds to 1), share_se; uncertainty: most_sensitive_share, borrowed_inputs; 1.9 letter.parquet (NHS lines, published beside); 1.8 todays_funding (cash); 1.7.1 per-head columns say whom they count; 1.7 compare: share_a, share_b, grant_b_at_a_total, change_in_split; 1.1 guarantee, years_to_target; 1.2 need components; 1.3 streams; 1.4 local tax;
# 1.5 waterfall; 1.6 cohorts, level ca and deal areas
MONEY = pa.decimal128(20, 2)


@dataclass(frozen=True)
class OutputColumn:
    name: str
    type: pa.DataType
    unit: str
    description: str
    real_terms: bool = False  # priced at the run's price base year
    nullable: bool = False


def money(name: str, description: str, unit: str = "GBP", real: bool = False) -> OutputColumn:
    return OutputColumn(name, MONEY, unit, description, real)


# the keys of every per-area, per-year table after allocations
AREA_YEAR: tuple[OutputColumn, ...] = (
    OutputColumn("area_code", pa.string(), "code", "area code at the output level"),
    OutputColumn("area_name", pa.string(), "text", "area name"),
    OutputColumn("area_level", pa.string(), "text", "output level"),
    OutputColumn("financial_year", pa.string(), "financial year", "financial year"),
    OutputColumn("year_index", pa.int32(), "count", "year of the settlement, 1 to N"),
)

ALLOCATIONS: tuple[OutputColumn, ...] = (
    OutputColumn("area_code", pa.string(), "code", "area code at the output level (GSS; ODS for ICBs and NHS regions)"),
    OutputColumn("area_name", pa.string(), "text", "area name"),
    OutputColumn("area_level", pa.string(), "text", "output level: ltla, utla, region, icb, nhs-region, ca or "
                 "deal:FILE.csv"),
    OutputColumn("financial_year", pa.string(), "financial year", "financial year, e.g. 2026/27"),
    OutputColumn("year_index", pa.int32(), "count", "year of the settlement, 1 to N"),
    OutputColumn("population", pa.float64(), "persons", "residents in the year (mid-year of its first calendar year; registered patients for practice-based need), apportioned to the area"),
    OutputColumn("need_weighted_population", pa.float64(), "persons", "population weighted by age cost and need "
                 "multipliers"),
    OutputColumn("need_index", pa.float64(), "ratio", "need-weighted population per head relative to England (1 = "
                 "national average)"),
    OutputColumn("target_share", pa.float64(), "ratio", "the area's share of national need; sums to 1"),
    money("control_total", "the year's total shared by need, all areas (repeated on each row); on a grant-basis "
          "version, the grant total plus the equalised notional resources"),
    money("target_allocation", "target share x control total: where the formula would put the area"),
    OutputColumn("todays_funding", MONEY, "GBP", "today's funding in cash, the base year's (the same each year): "
                 "the version's baseline figures (NHS rounds: the round's published baseline) split to the penny "
                 "and summed to the area; null where the version's data holds none for every area", nullable=True),
    money("baseline", "today's funding uprated uniformly to the year: baseline share x control total"),
    money("previous_allocation", "the allocation the year started from: last year's; in the first year, today's "
          "funding uprated to the year before the settlement (that year's control total shared by baseline; floors "
          "are measured from it: docs/method/)"),
    money("allocation", "the allocation after the transition rule; sums to the control total to the penny"),
    OutputColumn("distance_from_target", pa.float64(), "ratio", "(allocation - target) / target"),
    OutputColumn("transition_bound", pa.string(), "text", "'floor' or 'ceiling' where the area is held at a bound "
                 "this year, else 'none'; 'streams' where its streams are held differently (see streams.parquet)"),
    OutputColumn("years_to_target", pa.float64(), "years", "after the settlement's last year, further years at the "
                 "rule's pace to come within 0.1% of target (same on every row of an area; null if never)",
                 nullable=True),
    money("guarantee_payment", "no-area-worse-off top-up paid as extra money, outside the control total (0 if none)"),
    money("notional_local_tax", "equalised notional resources deducted: e x notional_local_resources"),
    money("notional_local_resources", "tax base x notional Band D x the share of council tax funding the "
          "devolved services (before the equalisation degree)"),
    money("equalisation", "the equalisation adjustment to the grant: -notional_local_tax"),
    money("negative_grant_adjustment", "change made by the version's negative-grant rule (floor at zero, minimum "
          "grant); nets to 0 each year; 0 under a tariff"),
    money("council_tax_yield", "what the area actually raises in council tax for the devolved services"),
    money("precept_flex_yield", "the part of council_tax_yield due to the area's precept rate differing from the "
          "default"),
    money("health_tax_yield", "a devolved local health tax's yield (0 if none)"),
    money("business_rates_discount", "cost of business-rates discounts for qualifying employers (reduces local "
          "resources; 0 if none)"),
    money("local_yield", "council_tax_yield + health_tax_yield - business_rates_discount"),
    money("grant", "allocation + guarantee payment - notional local tax + negative-grant adjustment: what the "
          "centre pays (negative: a tariff the area pays in)"),
    money("spending_power", "grant + local_yield: what the area has to spend (it keeps what it raises above the "
          "notional level)"),
    money("grant_real", "grant at the run's price base year, deflated by the run's index", real=True),
    money("grant_per_head", "grant / population, rounded to the penny: per resident, or per registered patient "
          "where need is practice-based (as population)", unit="GBP per head"),
)

NEED: tuple[OutputColumn, ...] = (
    *AREA_YEAR[:3],
    OutputColumn("population", pa.float64(), "persons", "resident population"),
    OutputColumn("age_weighted_population", pa.float64(), "persons", "population weighted by the age cost curve "
                 "(null where need comes from practice weighted populations)", nullable=True),
    OutputColumn("need_weighted_population", pa.float64(), "persons", "age-weighted population x need multipliers "
                 "(multipliers apply per lower-tier authority before roll-up)"),
    OutputColumn("need_index", pa.float64(), "ratio", "need per head relative to England"),
    OutputColumn("target_share", pa.float64(), "ratio", "share of national need"),
    *(OutputColumn(f"wp_{c}", pa.float64(), "weighted persons", f"NHS {d} weighted population (practice-based need "
                   "only, else null)", nullable=True)
      for c, d in [("general_acute", "general and acute"), ("community", "community services"),
                   ("mental_health", "mental health"), ("maternity", "maternity"),
                   ("health_inequalities", "health inequalities"), ("prescribing", "prescribing")]),
)

RECONCILIATION: tuple[OutputColumn, ...] = (
    OutputColumn("financial_year", pa.string(), "financial year", "financial year"),
    OutputColumn("check", pa.string(), "text", "the identity checked"),
    money("expected", "the value the identity requires"),
    money("actual", "the value the run produced"),
    OutputColumn("holds", pa.bool_(), "boolean", "whether actual equals expected exactly"),
)

STREAMS: tuple[OutputColumn, ...] = (
    *AREA_YEAR,
    OutputColumn("stream", pa.string(), "text", "funding stream ('all' for a version without streams)"),
    money("control_total", "the stream's control total for the year"),
    money("target_allocation", "the stream's target: its need share x its control total"),
    money("baseline", "the stream's share of today's funding, uprated"),
    money("previous_allocation", "the stream's allocation the year started from"),
    money("allocation", "the stream's allocation; streams add to the pooled allocation to the penny"),
    OutputColumn("distance_from_target", pa.float64(), "ratio", "(allocation - target) / target, in the stream"),
    OutputColumn("transition_bound", pa.string(), "text", "'floor', 'ceiling' or 'none' in the stream"),
)

def _nullable_money(name: str, description: str) -> OutputColumn:
    return OutputColumn(name, MONEY, "GBP", description, nullable=True)


LETTER: tuple[OutputColumn, ...] = (
    *AREA_YEAR,
    OutputColumn("stream", pa.string(), "text", "the stream's name (streams.parquet)"),
    OutputColumn("line", pa.string(), "text", "the letter's line: the stream's title"),
    money("baseline", "the year's recurrent baseline: last year's allocation as the round restates it (in the "
          "first year the published adjusted recurrent baseline)"),
    _nullable_money("published_baseline", "NHS England's adjusted recurrent baseline for the round; null where the "
                    "data holds no round for the year"),
    OutputColumn("base_growth", pa.float64(), "share", "the base growth the line's allocation grew by: uprated "
                 "baseline / baseline - 1"),
    OutputColumn("published_base_growth", pa.float64(), "share", "NHS England's base growth for the round (an "
                 "area of several ICBs: baseline-weighted)", nullable=True),
    OutputColumn("convergence", pa.float64(), "share", "the line's convergence: allocation / (baseline x (1 + base "
                 "growth)) - 1, or (allocation - baseline x (1 + base growth)) / baseline where the rule adds it; "
                 "null for a line without convergence", nullable=True),
    OutputColumn("published_convergence", pa.float64(), "share", "NHS England's convergence for the round; null "
                 "where it publishes none", nullable=True),
    money("allocation", "fundform's recurrent allocation for the line (streams.parquet)"),
    _nullable_money("published_allocation", "NHS England's recurrent allocation for the line; null where the data "
                    "holds no round for the year (a projection)"),
    _nullable_money("difference", "allocation - published_allocation"),
    OutputColumn("difference_share", pa.float64(), "share", "difference / published_allocation", nullable=True),
    _nullable_money("target_allocation", "the line's target (fair shares); null for a line without one (its rule "
                    "converges toward none and its round publishes none)"),
    OutputColumn("distance_from_target", pa.float64(), "ratio", "(allocation - target) / target after "
                 "convergence; null for a line without a target", nullable=True),
)


WATERFALL: tuple[OutputColumn, ...] = (
    *AREA_YEAR,
    OutputColumn("step_order", pa.int32(), "count", "order of the step, from 1"),
    OutputColumn("step", pa.string(), "text", "equal share per head, age, each need indicator (or need weighting), "
                 "transition, guarantee payment, local tax deduction, negative-grant rule"),
    money("amount", "what the step adds to the area's money (negative: takes away)"),
    money("cumulative", "running total after the step; after the last step, the grant"),
)

COHORTS: tuple[OutputColumn, ...] = (
    *AREA_YEAR,
    OutputColumn("cohort", pa.string(), "text", "cohort name (e.g. prevention_40_55, care_85_plus), or 'rest'"),
    OutputColumn("ages", pa.string(), "years", "the cohort's ages, e.g. 40-55; 90 means 90 and over"),
    OutputColumn("share", pa.float64(), "ratio", "the cohort's share of the area's age-weighted population"),
    money("amount", "the cohort's part of the grant; an area's cohorts and 'rest' add to its grant to the penny"),
)

def _bands(name: str, what: str, unit: str, money_: bool) -> tuple[OutputColumn, ...]:
    col = (lambda n, d: money(n, d)) if money_ else (lambda n, d: OutputColumn(n, pa.float64(), unit, d))
    return (col(f"{name}_central", f"{what}, the run's own (no uncertainty)"),
            *(col(f"{name}_{k}", f"{what}: the {p} percentile over the draws") for k, p in
              (("p5", "5th"), ("p50", "50th"), ("p95", "95th"))))


UNCERTAINTY: tuple[OutputColumn, ...] = (
    *AREA_YEAR,
    *_bands("target_share", "target share (the area's target allocation over all areas')", "ratio", False),
    *_bands("allocation", "allocation (cash)", "GBP", True),
    *_bands("grant", "grant (cash)", "GBP", True),
    OutputColumn("p_floor", pa.float64(), "probability", "share of the draws in which the area is held at a floor"),
    OutputColumn("p_ceiling", pa.float64(), "probability", "share of the draws in which the area is held at a ceiling"),
    OutputColumn("rank_p5", pa.int32(), "rank", "5th percentile of the area's rank by grant per resident (1 = the most)"),
    OutputColumn("rank_p95", pa.int32(), "rank", "95th percentile of the area's rank by grant per resident"),
    OutputColumn("most_sensitive_input", pa.string(), "text", "the source with the largest share of the variance "
                 "of the area's allocation over the draws (sensitivity.parquet)", nullable=True),
    OutputColumn("most_sensitive_share", pa.float64(), "share", "that source's share of the variance (the shares of "
                 "every source and the remainder add to 1); null where the allocation does not vary", nullable=True),
    OutputColumn("borrowed_inputs", pa.string(), "text", "the drawn input values the area rests on that are "
                 "borrowed from another area, as the data declares (e.g. the Isles of Scilly's preventable mortality "
                 "is Cornwall's): drawn with the borrowing's own spread; null where none", nullable=True),
)

DRAWS: tuple[OutputColumn, ...] = (
    OutputColumn("draw", pa.int32(), "count", "the draw, 0 to draws - 1 (the uncertainty file's seed fixes them)"),
    OutputColumn("area_code", pa.string(), "code", "area code at the output level"),
    OutputColumn("financial_year", pa.string(), "financial year", "financial year"),
    OutputColumn("target_share", pa.float64(), "ratio", "the area's target share in the draw"),
    money("allocation", "the area's allocation in the draw (cash)"),
    money("grant", "the area's grant in the draw (cash)"),
    OutputColumn("held_at_floor", pa.bool_(), "flag", "held at a floor in the draw (any stream)"),
    OutputColumn("held_at_ceiling", pa.bool_(), "flag", "held at a ceiling in the draw (any stream)"),
)

SENSITIVITY: tuple[OutputColumn, ...] = (
    *AREA_YEAR,
    OutputColumn("input", pa.string(), "text", "an uncertainty source (population, or table.column), or "
                 "'interactions and nonlinearity': the variance no source's linear effect explains"),
    OutputColumn("share_of_variance", pa.float64(), "share", "the source's share of the variance of the area's "
                 "allocation over the draws: b . cov(x, y) / var(y) from the regression of the allocation on each "
                 "source's drawn change in the area and in England; an area's rows add to 1 (docs/uncertainty.md); null "
                 "where the allocation does not vary over the draws (held at a floor in every draw)", nullable=True),
    OutputColumn("share_se", pa.float64(), "share", "its Monte Carlo standard error (10 batches of draws)",
                 nullable=True),
)

COMPARE: tuple[OutputColumn, ...] = (
    OutputColumn("area_code", pa.string(), "code", "area code"),
    OutputColumn("financial_year", pa.string(), "financial year", "financial year"),
    OutputColumn("area_name", pa.string(), "text", "area name"),
    OutputColumn("area_level", pa.string(), "text", "output level"),
    OutputColumn("year_index", pa.int32(), "count", "year of the settlement"),
    OutputColumn("population", pa.float64(), "persons", "population (side A)"),
    money("grant_a", "grant in run A"),
    money("grant_b", "grant in run B"),
    OutputColumn("imd_decile", pa.int32(), "decile", "deprivation decile of the area (1 = most deprived; "
                 "population-weighted IMD score)", nullable=True),
    money("change", "grant_b - grant_a"),
    money("change_per_head", "change / population (run A's: residents, or registered patients where need is "
          "practice-based), to the penny", unit="GBP per head"),
    OutputColumn("change_pct", pa.float64(), "percent", "change / |grant_a| x 100"),
    OutputColumn("share_a", pa.float64(), "ratio", "the area's share of all grants in run A that year"),
    OutputColumn("share_b", pa.float64(), "ratio", "the area's share of all grants in run B that year"),
    money("grant_b_at_a_total", "run B's split applied to run A's total: A's total apportioned by B's grants "
          "(exact, largest remainder)"),
    money("change_in_split", "grant_b_at_a_total - grant_a: what the change in how the pot is split moves, apart "
          "from any change in its size; sums to 0 each year"),
)

def arrow_schema(columns: tuple[OutputColumn, ...], price_base_year: str | None) -> pa.Schema:
    fields = []
    for c in columns:
        meta = {"unit": c.unit, "description": c.description}
        if c.real_terms and price_base_year:
            meta["price_base_year"] = price_base_year
        fields.append(pa.field(c.name, c.type, nullable=c.nullable, metadata=meta))
    return pa.schema(fields)
