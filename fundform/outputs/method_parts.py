"""Parts of the method document (method.py): what its sections share (Doc), the section on output columns (each column of allocations.parquet as
the engine computes it, outputs/registry.py building them, in the notation of the document's steps), and the words
for a rule's budget neutrality, a round's targets, an override's value and a dated section's keys."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from fundform.base.years import year_before
from fundform.formula.rules import Transition
from fundform.formula.spec import Baseline, FormulaSpec, Need, iter_needs
from fundform.outputs.text import exact


def pace(rule: str) -> str:
    """A rule's years to target as its registration states it (the docstring of its registered function)."""
    from fundform.formula.components import YEARS_TO_TARGET

    fn = YEARS_TO_TARGET.get(rule)
    if fn is None or not fn.__doc__:
        return "empty (the rule states no pace)"
    return " ".join(fn.__doc__.split())


def outputs_section(spec: FormulaSpec, n: int) -> list[str]:
    """Every output column of the version, as the engine computes it (outputs/registry.py builds them)."""
    lt, t = spec.local_tax, spec.transition
    practice = spec.need.method != "age_cost_curve"
    who = "registered patient" if practice else "resident"
    cohorts = spec.need.method == "age_cost_curve" and spec.cohorts
    rows = [
        ("population", f"`P_a`, the year's {who}s" + (" (the practices' registered populations)" if practice else "")),
        ("need_weighted_population, need_index, target_share", "`N_a`, `need_index_a`, `tau_a` of the year (step "
         "§areas§)" + ("; for a version with streams, the pooled figures (step §streams§)" if spec.streams else "")),
        ("control_total", "`CT_k` (each stream's summed, for a version with streams)"),
        ("todays_funding", "today's funding in cash, the same every year: "
         + ("`apportion(round(100 * sum of F_i), 100 * F_i)` pence for authority `i` (step §funding§), summed to "
            "the area" + (", each stream's summed" if spec.streams else "")
            if spec.baseline.source == "baseline_table" else
            "the first year's `RB_a` in pence, `apportion(round(100 * sum of RB), 100 * RB)` (step §funding§); null "
            "where the data holds no round for the first year")),
        ("target_allocation, baseline, previous_allocation, allocation", "`T_k,a`, `BU_k,a`, `A_k-1,a`, `A_k,a`"),
        ("distance_from_target", "`A_k,a / T_k,a - 1`"),
        ("transition_bound", "\"floor\" or \"ceiling\" where the area is held at that bound in year k, else "
         "\"none\""),
        ("years_to_target", "after the last year, further years at the rule's own pace (targets growing like "
         "allocations) until `|A / T - 1| <= 0.001`: " + pace(t.rule)),
        ("guarantee_payment", "the guarantee paid on top of the total (0 without one)"),
    ]
    if lt.rule != "none":
        rows += [
            ("notional_local_resources", "`NR_a,k` in pence (`apportion(round(100 * sum of NR), 100 * NR)`)"),
            ("notional_local_tax, equalisation", "`NT_k,a` and `-NT_k,a`"),
            ("council_tax_yield, precept_flex_yield, health_tax_yield, business_rates_discount",
             "each yield in pence, split as `NT` (step §rounding§)"),
            ("local_yield", "`council_tax_yield + health_tax_yield - business_rates_discount`"),
            ("negative_grant_adjustment", "the grant after the negative-grant rule less `A + guarantee - NT`"),
            ("spending_power", "`grant + local_yield`"),
        ]
    else:
        rows += [("notional_local_resources, notional_local_tax, equalisation, yields, local_yield, "
                  "negative_grant_adjustment", "0 (no local tax)"), ("spending_power", "`grant`")]
    rows += [
        ("grant", "`A_k,a + guarantee_k,a - NT_k,a`, after the negative-grant rule"),
        ("grant_real", "the grant at the price base year `pb` (default: the run's first year): "
         "`apportion(round(sum of grant_k / D_k), grant_k / D_k)`, `D_k = I_k / I_pb` (the version's index)"),
        ("grant_per_head", f"`round(grant_k,a / P_a)` pence per {who}"),
    ]
    out = [f"## {n}. Output columns", "",
           "Each column of allocations.parquet (one row per area and year `k`; docs/output-schema.md has the units):",
           "", "| column | value |", "|---|---|", *[f"| `{c.replace(', ', '`, `')}` | {v} |" for c, v in rows], "",
           "streams.parquet has the same transition columns per stream. need.parquet is the first settlement year's "
           "need columns. waterfall.parquet builds each area's grant step by step: an equal share per head "
           "`round(P_a / sum of P * sum of T)`"
           + ("" if practice or spec.streams else ", then age alone and each indicator in turn (`round(N_a(j) / sum "
              "of N(j) * sum of T)`, `N(j)` the need with the first j multipliers, summed to the level), the last "
              "need step exactly `T_a`")
           + ", then the transition `A - T`, the guarantee payment, `-NT` and the negative-grant adjustment: the "
           "steps add to the grant to the penny."]
    if cohorts:
        out += ["", "cohorts.parquet splits each grant by age cohort ("
                + ", ".join(f"{c.name} {c.age_from}-{c.age_to}" for c in spec.cohorts)
                + "): a cohort's share of area `a` in year `k` is its ages' part of the area's age-weighted "
                "population, `sum over i of s_ia * sum over its ages of P_k[i,age] * w(age)` over the same sum for "
                "every age (each year's own residents), the rest in `rest`; the parts are `apportion(grant_k,a, "
                "shares)`."]
    return out + [""]


def neutrality(rule: Transition) -> str:
    """Whether a rule's allocations add to its control total, in words."""
    if rule.budget_neutral:
        return "budget neutral (its allocations add to its control total to the penny)"
    return ("not budget neutral (what the rule gives is allocated: more than the control total added, less "
            "released)" if getattr(rule, "over_total", "refused") == "added" else
            "not budget neutral (what the rule does not allocate is released; more than the total is refused)")


def targets_read(spec: FormulaSpec) -> str:
    """Which of step §start§'s target equations the version (and each of its streams) uses, in words."""
    def words(b: Baseline) -> str:
        if b.target_total != "published_fair_shares":
            return "targets from the control total"
        return ("targets from the published fair shares total, grown by " + (
            "each ICB's own growth (`G' = G`)" if b.target_growth == "icb" else "the national growth (`G'_k`)"))
    if not spec.streams:
        return f"This {'version'} reads {words(spec.baseline)}."
    return "Its streams read: " + "; ".join(f"{s.name}, {words(spec.stream_view(s).baseline)}"
                                            for s in spec.streams) + "."


def setting(x: Any) -> str:
    """An override's value in a table cell: numbers exact, text as written, nothing as "not set"."""
    if isinstance(x, bool):
        return str(x).lower()
    if x is None:
        return "not set"
    if isinstance(x, list):
        return ", ".join(setting(v) for v in x)
    return exact(x).replace("|", "\\|")


def flat_section(node: dict[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    """(dotted key, value) of a dated section; a {value, unit, source} number is one value."""
    for k, v in node.items():
        if isinstance(v, dict) and "value" not in v:
            yield from flat_section(v, f"{prefix}{k}.")
        else:
            yield f"{prefix}{k}", v


@dataclass(kw_only=True)
class Doc:
    """What the method document's sections share: the version and its parts, the lines written so far and each
    section's number (the cross-references §key§ resolve from it)."""

    spec: FormulaSpec
    out: list[str]
    n: int = 0  # the last section's number
    num: dict[str, int] = field(default_factory=dict)  # a section's key -> its number

    @property
    def first(self) -> str:
        """The version's first effective year."""
        return self.spec.effective_years[0]

    @property
    def year0(self) -> str:
        """The year before the first: today's funding."""
        return year_before(self.first)

    @property
    def years(self) -> list[str]:
        return [self.year0, *self.spec.effective_years]

    @property
    def needs(self) -> list[tuple[str, Need]]:
        """The version's need and each stream's own, with their paths (formula.spec.iter_needs)."""
        return list(iter_needs(self.spec))

    def step(self, key: str | None = None) -> int:
        """The next section's number, recorded under `key` for the cross-references (§key§)."""
        self.n += 1
        if key:
            self.num[key] = self.n
        return self.n
