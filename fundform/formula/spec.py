"""A formula version as data: the pydantic model of a ``formulas/*.toml`` file.

Every number is a ``Quantity``: a value, its unit (machine-readable, declared by the field that holds it: GBP, share,
growth per year...), what it is in words, and its source. A source is either the id of an entry in the
version's ``[[sources]]`` list (optionally followed by a section, e.g. ``"ons-mye-2023, table MYE2"``) or the word
``assumption`` with a one-line reason (``"assumption: ..."``). Unknown keys, shares that do not sum to 1, impossible
values, missing units and unknown components are rejected before anything runs, with the file and key path.

The numbers' types are in quantities.py and the transition rules' models in rules.py. This module is over 600 lines
because it is one model: the version's sections (need, baseline, index series, control total, streams, local tax,
ledger) and the validator that reads them together (sources cited, dated sections, streams' links), which a reader
checks side by side.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Annotated, Any, Literal, get_args

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from fundform.base.years import FinancialYear as Year  # the value; FinancialYear below is the text a spec holds
from fundform.base.years import year_before
from fundform.formula.quantities import (
    UNITS,
    Bounded,
    Elasticity,
    FinancialYear,
    Growth,
    LedgerLimit,
    Multiplier,
    PerBandD,
    PerHead,
    Pounds,
    Quantity,
    Share,
    Source,
    Strict,
    UnitIs,
    Years,
)
from fundform.formula.rules import (
    Transition,
    loc_path,
)


class AgeBand(Strict):
    age_from: int = Field(ge=0, le=90, alias="from")
    age_to: int = Field(ge=0, le=90, alias="to")
    weight: float = Field(gt=0, le=1e6, strict=True)

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, allow_inf_nan=False)


class AgeCostCurve(Strict):
    """Relative cost per head by age band; bands must cover ages 0..90 exactly once."""

    unit: Literal["relative cost"]
    description: str | None = Field(default=None, min_length=1)
    source: str = Field(min_length=1)

    @model_validator(mode="before")
    @classmethod
    def _words(cls, v: Any) -> Any:  # words where the unit goes (the older form) are the curve's description
        if isinstance(v, dict) and isinstance(v.get("unit"), str) and v["unit"] not in UNITS \
                and "description" not in v:
            return {**v, "unit": "relative cost", "description": v["unit"]}
        return v
    bands: list[AgeBand] = Field(min_length=1)

    @model_validator(mode="after")
    def _covers_all_ages(self) -> AgeCostCurve:
        covered: list[int] = []
        for b in self.bands:
            if b.age_to < b.age_from:
                raise ValueError(f"band {b.age_from}-{b.age_to} ends before it starts")
            covered += range(b.age_from, b.age_to + 1)
        if sorted(covered) != list(range(91)):
            dup = sorted({a for a in covered if covered.count(a) > 1})
            gap = sorted(set(range(91)) - set(covered))
            raise ValueError(f"bands must cover ages 0..90 once each (overlaps at {dup}, gaps at {gap})")
        return self


class Indicator(Strict):
    """A need indicator: a column of an input table, transformed into a multiplier by a named component."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    table: str
    column: str
    transform: str
    national: Literal["population_weighted_mean"] = "population_weighted_mean"
    elasticity: Elasticity  # >= 0: a negative elasticity would give less to areas in more need
    min_multiplier: Multiplier | None = None
    max_multiplier: Multiplier | None = None

    @model_validator(mode="after")
    def _bounds(self) -> Indicator:
        lo = self.min_multiplier.value if self.min_multiplier else None
        hi = self.max_multiplier.value if self.max_multiplier else None
        if lo is not None and hi is not None and hi < lo:
            raise ValueError("max_multiplier must be >= min_multiplier")
        return self


class Need(Strict):
    """How need is measured. `age_cost_curve`: resident population x an age cost curve x indicator multipliers,
    per lower-tier authority. `practice_weighted_population`: NHS England's needs-weighted registered populations
    per GP practice (one weights year, or "settlement_year": each year's own), summed to any area built from
    practices."""

    method: Literal["age_cost_curve", "practice_weighted_population"] = "age_cost_curve"
    age_cost_curve: AgeCostCurve | None = None
    indicators: list[Indicator] = Field(default_factory=list)
    weights_year: FinancialYear | Literal["settlement_year"] | None = None
    weighted_population_column: str = "wp_core"
    source: str | None = None

    @model_validator(mode="after")
    def _unique(self) -> Need:
        names = [i.name for i in self.indicators]
        if len(names) != len(set(names)):
            raise ValueError(f"indicator names must be unique, got {names}")
        if self.method == "age_cost_curve" and self.age_cost_curve is None:
            raise ValueError("method age_cost_curve needs [need.age_cost_curve]")
        if self.method == "practice_weighted_population":
            if self.weights_year is None or not self.source:
                raise ValueError("method practice_weighted_population needs weights_year and source")
            if self.indicators or self.age_cost_curve:
                raise ValueError("practice weighted populations already include age and need: give no age_cost_curve "
                                 "or indicators")
        return self

    @property
    def curve(self) -> AgeCostCurve:
        """The age cost curve of a need measured by one (method age_cost_curve, which validation requires it of)."""
        if self.age_cost_curve is None:
            raise ValueError(f"need method {self.method} has no age cost curve")
        return self.age_cost_curve


BaselineComponent = Literal["nhs_core", "nhs_primary_medical", "adult_social_care", "public_health"]
BASELINE_COMPONENTS: tuple[str, ...] = get_args(BaselineComponent)
StreamName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$")]


class Baseline(Strict):
    """Where today's funding, the start of the transition, comes from. `baseline_table`: the dataset's baseline
    table (its `components` summed, per lower-tier authority, rolled up; all four when none are named).
    `nhs_icb_allocations`: NHS England's published adjusted recurrent baselines for an allocation round of one
    stream (`round_stream`: core, primary_medical_care, ...), per ICB, with the round's base growth per ICB and its
    fair shares targets' total."""

    source: Literal["baseline_table", "nhs_icb_allocations"] = "baseline_table"
    components: list[BaselineComponent] | None = None
    allocation_round: FinancialYear | None = None
    # the stream of nhs_icb_allocations the version (or a stream of it) starts from; core when not named
    round_stream: StreamName | None = None
    base_growth: Literal["uniform", "published"] = "uniform"
    target_total: Literal["control_total", "published_fair_shares"] = "control_total"
    # where the weights behind a historic round are not in the data, its published targets can set the shares
    target_shares: Literal["need", "published_fair_shares"] = "need"
    # published fair shares targets grow into the allocation year by each ICB's own base growth (2024/25 round) or
    # by the national growth (the same for every ICB); the two agree when base growth is uniform (2025/26)
    target_growth: Literal["icb", "national"] = "icb"

    @property
    def columns(self) -> list[str]:
        """The baseline table's columns summed into today's funding."""
        return list(self.components or BASELINE_COMPONENTS)

    @property
    def stream(self) -> str:
        """The published round's stream this baseline starts from."""
        return self.round_stream or "core"

    @model_validator(mode="after")
    def _consistent(self) -> Baseline:
        if self.source == "nhs_icb_allocations" and self.allocation_round is None:
            raise ValueError("source nhs_icb_allocations needs allocation_round")
        if self.source == "baseline_table" and (self.base_growth != "uniform" or
                                                 self.target_total != "control_total" or
                                                 self.target_shares != "need"):
            raise ValueError("published base growth and fair-shares totals come with source nhs_icb_allocations")
        if self.source == "nhs_icb_allocations" and self.components is not None:
            raise ValueError("components name columns of the baseline table, which a version starting from NHS "
                             "England's published rounds does not read: name the round's stream instead "
                             "(round_stream = \"core\" or \"primary_medical_care\")")
        if self.source == "baseline_table" and self.round_stream is not None:
            raise ValueError("round_stream names a stream of nhs_icb_allocations: it goes with source "
                             "nhs_icb_allocations (the baseline table's columns are chosen by components)")
        if self.components is not None and not self.components:
            raise ValueError("components must name at least one baseline column")
        return self


class IndexComponent(Strict):
    index: str
    weight: Share


class IndexSeries(Strict):
    """An inflation index as growth by financial year (growth into that year from the one before), either given
    directly or as a weighted composite of other indices (e.g. a health index from pay and non-pay inflation)."""

    description: str
    unit: Literal["growth per year"]
    source: str = Field(min_length=1)
    vintage: str = Field(min_length=1)
    growth: dict[FinancialYear, Annotated[float, Field(strict=True)]] | None = None
    composite: list[IndexComponent] | None = None

    @field_validator("growth")
    @classmethod
    def _plausible(cls, v: dict[str, float] | None) -> dict[str, float] | None:
        if v is None:
            return v
        if not v:
            raise ValueError("growth needs at least one year (e.g. \"2026/27\" = 0.02)")
        years = sorted(Year.parse(y).start for y in v)
        if years != list(range(years[0], years[-1] + 1)):
            raise ValueError("growth years must be consecutive")
        for y, g in v.items():
            if not -0.5 < g < 1.0:
                raise ValueError(f"growth {g} for {y} is outside (-0.5, 1.0)")
        return v

    @model_validator(mode="after")
    def _one_form(self) -> IndexSeries:
        if (self.growth is None) == (self.composite is None):
            raise ValueError("give exactly one of 'growth' (by year) or 'composite' (weighted indices)")
        if self.composite is not None:
            weights = [c.weight.value for c in self.composite]
            if any(w < 0 for w in weights):
                raise ValueError("composite weights must be >= 0")
            if abs(sum(weights) - 1.0) > 1e-9:
                raise ValueError(f"composite weights must sum to 1, got {sum(weights):.6g}")
        return self


class ControlTotal(Strict):
    base: Literal["baseline"] | Pounds = "baseline"
    base_year: FinancialYear
    inflation_index: str
    real_growth: Growth

    @field_validator("base_year")
    @classmethod
    def _year(cls, v: str) -> str:
        Year.parse(v)
        return v


class Stream(Strict):
    """A funding stream with its own need, today's funding and control total (Health Devolution Commission 2021:
    parity of esteem, each stream sized by need, none funding another). Omitted parts follow the version's.
    Today's funding is the baseline table's `baseline_components`, or, in a version starting from NHS England's
    published rounds, the round's stream `round_stream` (the version's [baseline] otherwise: its round, growth and
    targets). A dated section may set a stream's own need, baseline or transition:
    `[years."2024/25".streams.primary_medical_care.transition]`."""

    name: StreamName
    title: str
    baseline_components: list[BaselineComponent] | None = Field(None, min_length=1)
    round_stream: StreamName | None = None
    need: Need | None = None
    real_growth: Growth | None = None
    linked_to: str | None = None
    transition: Transition | None = None
    # a stream of NHS England's rounds may read its round differently from the version's [baseline] (unset: the
    # version's): its base growth, and where its targets come from (a sheet with no fair shares: "control_total")
    base_growth: Literal["uniform", "published"] | None = None
    target_total: Literal["control_total", "published_fair_shares"] | None = None
    target_shares: Literal["need", "published_fair_shares"] | None = None

    @model_validator(mode="after")
    def _growth(self) -> Stream:
        if self.linked_to and self.real_growth:
            raise ValueError(f"stream {self.name}: growth is either linked to another stream or its own real growth")
        if (self.baseline_components is None) == (self.round_stream is None):
            raise ValueError(f"stream {self.name}: today's funding is either baseline_components (columns of the "
                             "baseline table) or round_stream (a stream of NHS England's published rounds), one of "
                             "the two")
        reads = {k: getattr(self, k) for k in ("base_growth", "target_total", "target_shares") if getattr(self, k)}
        if reads and self.round_stream is None:
            raise ValueError(f"stream {self.name}: {', '.join(reads)} read(s) a published round: it goes with "
                             "round_stream")
        return self


class Cohort(Strict):
    """An age cohort's pooled budget (Localis 'Unblocking', 2015): its share of each area's grant is its share of
    the area's age-weighted population."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    title: str
    age_from: int = Field(ge=0, le=90, alias="from")
    age_to: int = Field(ge=0, le=90, alias="to")

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, allow_inf_nan=False)


DEFAULT_COHORTS = [Cohort(name="prevention_40_55", title="Prevention budget, ages 40-55", age_from=40, age_to=55),
                   Cohort(name="care_85_plus", title="Care budget, ages 85 and over", age_from=85, age_to=90)]


class Ledger(Strict):
    """Medium-term budgets (Localis 2016): each area's five-year budget is balanced over the settlement, not each
    year; an underspend is carried forward and an overspend borrowed against later years, within these limits (as
    a share of the year's allocation). No limit means none applies."""

    carry_forward_limit: LedgerLimit | None = None
    borrowing_limit: LedgerLimit | None = None


class Precept(Strict):
    """The adult social care precept each area adds to Band D each year (Localis 2016: freedom to set it in line
    with local need). `uniform`: every area at default_rate; `tied_to_need`: default_rate x the area's need index;
    a user file (`--precept-rates`) sets rates per area. Rates above the cap are an error, or are capped and
    reported, as `above_cap` says; 0 opts out."""

    default_rate: Share
    cap: Share
    rule: Literal["uniform", "tied_to_need"] = "uniform"
    above_cap: Literal["error", "cap_with_warning"] = "error"

    @model_validator(mode="after")
    def _ranges(self) -> Precept:
        if not 0 <= self.default_rate.value <= self.cap.value <= 1:
            raise ValueError("precept rates must satisfy 0 <= default_rate <= cap <= 1 (100%)")
        return self


HEALTH_TAX_UNITS = {"per_head": "GBP per head", "per_band_d": "GBP per Band D", "income_rate": "share"}


class HealthTax(Strict):
    """A devolved local health tax (Localis 2016): per resident, per Band D equivalent, or a rate on a
    user-supplied income base (`--local-bases`, column income_base)."""

    basis: Literal["per_head", "per_band_d", "income_rate"]
    rate: Annotated[Quantity, Bounded(0, 100_000, what="GBP per head or per Band D, or a rate on income")]

    @model_validator(mode="before")
    @classmethod
    def _unit(cls, v: Any) -> Any:  # the rate's unit follows the basis
        if isinstance(v, dict) and v.get("basis") in HEALTH_TAX_UNITS and "rate" in v:
            return {**v, "rate": UnitIs(HEALTH_TAX_UNITS[v["basis"]])(v["rate"])}
        return v

    @model_validator(mode="after")
    def _ranges(self) -> HealthTax:
        if self.rate.value < 0 or (self.basis == "income_rate" and self.rate.value > 1):
            raise ValueError("health tax rate must be >= 0 (and <= 1 as a rate on income)")
        return self


class LocalTax(Strict):
    """What places raise themselves, and how much of it the grant assumes (equalisation).

    Notional resources N = tax base x notional Band D x the share of council tax funding the devolved services.
    `basis = "spending"`: the control total is the spending envelope and grant = allocation - e x N.
    `basis = "grant"`: the control total T is the grant total; the envelope shared by need is T + e x sum(N), and
    grant = allocation - e x N, so grants sum to T. Band D grows each year by the core increase plus the adult
    social care precept, added not compounded, rounded down to the penny."""

    rule: Literal["notional_council_tax", "none"]
    basis: Literal["spending", "grant"] = "spending"
    notional_band_d: Literal["national_average"] | PerBandD = "national_average"
    band_d_column: str = "band_d_social_care_authority"
    share_for_devolved_services: Share | None = None
    equalisation: Share | None = None
    equalisation_phasing_years: Years | None = None
    tax_base_projection: Literal["fixed", "observed"] = "fixed"
    tax_base_growth: Growth | None = None
    core_increase: Growth | None = None
    precept: Precept | None = None
    negative_grants: Literal["tariff", "floor_at_zero", "minimum_grant"] = "tariff"
    minimum_grant_per_head: PerHead | None = None
    health_tax: HealthTax | None = None
    business_rates_discount_per_head: PerHead | None = None
    price_year: FinancialYear = "2024/25"

    @model_validator(mode="after")
    def _complete(self) -> LocalTax:
        if self.rule == "notional_council_tax":
            for f in ("share_for_devolved_services", "equalisation", "core_increase", "precept"):
                if getattr(self, f) is None:
                    raise ValueError(f"rule notional_council_tax needs '{f}'")
            if self.tax_base_projection == "fixed" and self.tax_base_growth is None:
                raise ValueError("tax_base_projection fixed needs 'tax_base_growth'")
        if self.negative_grants == "minimum_grant" and self.minimum_grant_per_head is None:
            raise ValueError("negative_grants minimum_grant needs 'minimum_grant_per_head'")
        if self.rule == "none" and self.basis == "grant":
            raise ValueError("basis grant needs a local tax rule")
        return self


DATED_SECTIONS = {"need", "baseline", "transition", "streams"}
STREAM_DATED_SECTIONS = DATED_SECTIONS - {"streams"}  # what a dated section may set of one stream


def _quantities_keep_sources(node: Any, path: str) -> None:
    """A dated number states where it comes from: a section that sets a value sets its source too."""
    if isinstance(node, dict):
        if "value" in node and "source" not in node:
            raise ValueError(f"{path}: a dated value needs its own source (value, unit and source)")
        for k, v in node.items():
            _quantities_keep_sources(v, f"{path}.{k}")


def _merge(base: dict, over: dict) -> dict:
    """A dated section over the version: tables merge key by key; a number is replaced whole (its own value, unit,
    words and source)."""
    out = dict(base)
    for k, v in over.items():
        merge = isinstance(v, dict) and isinstance(out.get(k), dict) and "value" not in v
        out[k] = _merge(out[k], v) if merge else v
    return out


def stream_years(years: dict[str, dict], name: str, own_rule: bool = False,
                 own_baseline: frozenset[str] = frozenset()) -> dict[str, dict]:
    """A version's dated sections as one stream sees them: the version's own need, baseline and transition, with
    the stream's own dated sections (`years.Y.streams.NAME`) over them. What the stream states itself is not
    overridden by the version's dated sections: its own rule (`own_rule`: the version's dated transition is for
    streams without one) and its own ways of reading the round (`own_baseline`: base_growth, target_total,
    target_shares)."""
    out = {}
    for y, section in years.items():
        own = {k: v for k, v in section.items() if k != "streams" and not (own_rule and k == "transition")}
        if own_baseline and isinstance(own.get("baseline"), dict):
            own["baseline"] = {k: v for k, v in own["baseline"].items() if k not in own_baseline}
        mine = (section.get("streams") or {}).get(name)
        out[y] = _merge(own, mine) if mine else own
    return out


_AT: dict[tuple[int, tuple[str, ...]], tuple[Any, Any]] = {}  # (id(spec), years) -> (spec, the spec in that year)


def _at_cached(spec: FormulaSpec, keys: tuple[str, ...]) -> FormulaSpec:
    hit = _AT.get((id(spec), keys))
    if hit is not None and hit[0] is spec:
        return hit[1]
    data = spec.model_dump(mode="python", by_alias=True, exclude={"years"}, exclude_none=True)
    for y in keys:  # a stream's own dated sections apply to the stream's view (stream_view), not here
        data = _merge(data, {k: v for k, v in spec.years[y].items() if k != "streams"})
    out = FormulaSpec.model_validate(data)
    if len(_AT) > 512:
        _AT.clear()
    _AT[(id(spec), keys)] = (spec, out)
    return out


_KEYS: dict[int, tuple[Any, str]] = {}  # id(model) -> (model, its JSON): models are frozen, so the JSON stays true


def model_key(model: BaseModel) -> str:
    """A frozen model's JSON, computed once per object: the key a memo of what the model derives is filed under."""
    hit = _KEYS.get(id(model))
    if hit is not None and hit[0] is model:
        return hit[1]
    if len(_KEYS) > 1024:
        _KEYS.clear()
    key = model.model_dump_json()
    _KEYS[id(model)] = (model, key)
    return key


def run_defaults(spec: FormulaSpec) -> tuple[str, str, int]:
    """(level, start year, years) of a run of `spec` that names none: its default level, its first effective year,
    and its effective years (at most 20)."""
    return spec.default_level, spec.effective_years[0], min(len(spec.effective_years), 20)


class FormulaSpec(Strict):
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")
    version: str = Field(pattern=r"^\d+\.\d+\.\d+$")
    title: str
    summary: str
    effective_years: list[FinancialYear] = Field(min_length=1)
    # the level a run of this version takes when none is given (the NHS versions start from ICB baselines); a run
    # also starts in the version's first effective year and runs through its last unless told otherwise
    default_level: Literal["ltla", "utla", "region", "icb", "nhs-region", "ca"] = "ltla"
    # the words its outputs speak: an NHS allocation (allocation, baseline, base growth, convergence, the letter's
    # lines) or a needs-based grant (grant, today's funding, transition, local tax); unset, an NHS allocation where
    # the version starts from NHS England's published rounds
    vocabulary: Literal["nhs_allocation", "grant"] | None = None
    sources: list[Source] = Field(default_factory=list)
    need: Need
    baseline: Baseline = Field(default_factory=Baseline)
    indices: dict[str, IndexSeries]
    control_total: ControlTotal
    transition: Transition
    local_tax: LocalTax
    ledger: Ledger = Field(default_factory=Ledger)
    streams: list[Stream] = Field(default_factory=list)
    cohorts: list[Cohort] = Field(default_factory=lambda: list(DEFAULT_COHORTS))
    # dated values: `[years."2025/26".transition]` sets, from that year on, the keys it names (each number with its
    # own unit and source); a later year's section applies on top of an earlier one's
    years: dict[FinancialYear, dict[str, Any]] = Field(default_factory=dict)

    @property
    def words(self) -> str:
        """The vocabulary its outputs speak: "nhs_allocation" or "grant" (`vocabulary`, or by its baseline)."""
        return self.vocabulary or ("nhs_allocation" if self.baseline.source == "nhs_icb_allocations" else "grant")

    def stream_view(self, stream: Stream) -> FormulaSpec:
        """The version as one stream sees it: the stream's need, today's funding, growth and rule, and its dated
        sections; local tax applies to the pool, not to a stream."""
        ct = self.control_total if stream.real_growth is None else self.control_total.model_copy(
            update={"real_growth": stream.real_growth})
        reads = {k: getattr(stream, k) for k in ("base_growth", "target_total", "target_shares")
                 if getattr(stream, k) is not None}
        baseline = (Baseline(components=stream.baseline_components) if stream.round_stream is None
                    else self.baseline.model_copy(update={"round_stream": stream.round_stream, **reads}))
        return self.model_copy(update={
            "need": stream.need or self.need, "baseline": baseline, "control_total": ct,
            "transition": stream.transition or self.transition, "streams": [],
            "local_tax": LocalTax(rule="none"), "years": stream_years(self.years, stream.name, stream.transition is not None, frozenset(reads))})

    def at(self, year: str) -> FormulaSpec:
        """The version as it stands in `year`: every dated section from that year or before applied in order."""
        keys = sorted((y for y in self.years if Year.parse(y) <= Year.parse(year)),
                      key=Year.parse)
        if not keys:
            return self
        return _at_cached(self, tuple(keys))

    @model_validator(mode="after")
    def _dated(self) -> FormulaSpec:
        for y, section in self.years.items():
            Year.parse(y)
            odd = sorted(set(section) - DATED_SECTIONS)
            if odd:
                raise ValueError(f"years.{y}: only {', '.join(sorted(DATED_SECTIONS))} may vary by year (got "
                                 f"{', '.join(odd)})")
            named = section.get("streams")
            if named is not None:
                names = [st.name for st in self.streams]
                if not isinstance(named, dict) or set(named) - set(names):
                    raise ValueError(f"years.{y}.streams: names no stream of the version ({', '.join(names) or 'none'}"
                                     f"): {', '.join(sorted(set(named) - set(names))) if isinstance(named, dict) else named}")
                for n, part in named.items():
                    bad = sorted(set(part) - STREAM_DATED_SECTIONS) if isinstance(part, dict) else [str(part)]
                    if bad:
                        raise ValueError(f"years.{y}.streams.{n}: only {', '.join(sorted(STREAM_DATED_SECTIONS))} of "
                                         f"a stream may vary by year (got {', '.join(bad)})")
            _quantities_keep_sources(section, f"years.{y}")
        for y in self.years:
            try:
                self.at(y)
            except ValidationError as e:
                first = e.errors()[0]
                where = loc_path(first["loc"])
                raise ValueError(f"years.{y}: {where}: {first['msg']}") from None
            for st in self.streams:  # each stream as it stands that year (the version's sections and its own)
                try:
                    self.stream_view(st).at(y)
                except ValidationError as e:
                    first = e.errors()[0]
                    raise ValueError(f"years.{y} (stream {st.name}): {loc_path(first['loc'])}: {first['msg']}"
                                     ) from None
        return self

    @model_validator(mode="after")
    def _references(self) -> FormulaSpec:
        for y in self.effective_years:
            Year.parse(y)
        ids = [s.id for s in self.sources]
        if len(ids) != len(set(ids)):
            raise ValueError(f"source ids must be unique (a number's source would be ambiguous): "
                             f"{sorted({i for i in ids if ids.count(i) > 1})} given more than once")
        if self.streams:
            names = [st.name for st in self.streams]
            if len(set(names)) != len(names):
                raise ValueError(f"stream names must be unique, got {names}")
            owners: dict[str | None, list[str]] = {}
            for st in self.streams:
                owned_parts: list[str | None] = ([*st.baseline_components] if st.baseline_components
                                                 else [st.round_stream])
                for owned in owned_parts:
                    owners.setdefault(owned, []).append(st.name)
            twice = {c: names for c, names in owners.items() if len(names) > 1}
            if twice:
                raise ValueError("a baseline component (or a published round's stream) belongs to more than one "
                                 "stream (it would be counted twice): " + "; ".join(
                                     f"{c} in {' and '.join(names)}" for c, names in twice.items())
                                 + " (a scenario's [[streams]] extend the version's: change the version's stream "
                                 "by name, remove it with remove = true, or say replace_streams = true)")
            for st in self.streams:
                if st.linked_to and st.linked_to not in names:
                    raise ValueError(f"stream {st.name}: linked_to '{st.linked_to}' is not a stream")
                if st.linked_to == st.name or (st.linked_to and next(
                        x for x in self.streams if x.name == st.linked_to).linked_to):
                    raise ValueError(f"stream {st.name}: link to a stream whose growth is its own, not another link")
            published = self.baseline.source == "nhs_icb_allocations"
            for st in self.streams:
                if published and st.round_stream is None:
                    raise ValueError(f"stream {st.name}: the version starts from NHS England's published rounds "
                                     "([baseline] source nhs_icb_allocations), so each stream names its round's "
                                     "stream (round_stream), not baseline table columns")
                if published and (st.linked_to or st.real_growth is not None):
                    what = f"linked_to = '{st.linked_to}'" if st.linked_to else "real_growth"
                    raise ValueError(f"stream {st.name}: {what} sets a control total's growth, but the version "
                                     "starts from NHS England's published rounds, where each stream grows by its "
                                     "own round's base growth (baseline.base_growth) and its total is the round's: "
                                     f"remove {what.split(' ')[0]}, or start from the baseline table")
                if not published and st.round_stream is not None:
                    raise ValueError(f"stream {st.name}: round_stream needs the version's [baseline] source "
                                     "nhs_icb_allocations (its round, base growth and targets)")
            if self.local_tax.basis == "grant":
                raise ValueError("local_tax basis grant is not available with streams (which stream would carry "
                                 "the equalised resources?); use basis spending")
        names = [c.name for c in self.cohorts]
        if len(names) != len(set(names)) or "rest" in names:
            raise ValueError("cohort names must be unique and not 'rest'")
        ages = [a for c in self.cohorts for a in range(c.age_from, c.age_to + 1)]
        if len(ages) != len(set(ages)) or any(c.age_to < c.age_from for c in self.cohorts):
            raise ValueError("cohorts must not overlap, and each must end at or after its start")
        if self.baseline.allocation_round is not None:
            if self.control_total.base_year != year_before(self.baseline.allocation_round):
                raise ValueError(f"control_total.base_year must be the year before baseline.allocation_round "
                                 f"({year_before(self.baseline.allocation_round)})")
        if self.control_total.inflation_index not in self.indices:
            raise ValueError(f"control_total.inflation_index '{self.control_total.inflation_index}' is not one of "
                             f"the indices defined: {sorted(self.indices)}")
        known = {s.id for s in self.sources}
        for path, q in iter_quantities(self):
            head = re.split(r"[,;:\s]", q.source.strip(), maxsplit=1)[0]
            if not q.source.lower().startswith("assumption") and head not in known:
                raise ValueError(f"{path}.source '{q.source}' names no source listed in [[sources]] "
                                 f"({sorted(known)}) and is not 'assumption: <reason>'")
        for name, idx in self.indices.items():
            head = re.split(r"[,;:\s]", idx.source.strip(), maxsplit=1)[0]
            if not idx.source.lower().startswith("assumption") and head not in known:
                raise ValueError(f"indices.{name}.source names no listed source")
            for comp in idx.composite or []:
                part = self.indices.get(comp.index)
                if part is None:
                    raise ValueError(f"indices.{name}.composite: unknown index '{comp.index}'")
                if part.composite is not None:
                    raise ValueError(f"indices.{name}.composite: '{comp.index}' is itself a composite")
        return self


def iter_quantities(model: BaseModel, prefix: str = "") -> Iterator[tuple[str, Quantity]]:
    """Every Quantity in a spec with its dotted key path: what `formulas show` and the manifest list."""
    for name in type(model).model_fields:
        value = getattr(model, name)
        path = f"{prefix}{name}"
        if isinstance(value, Quantity):
            yield path, value
        elif isinstance(value, BaseModel):
            yield from iter_quantities(value, path + ".")
        elif isinstance(value, list):
            for i, item in enumerate(value):
                if isinstance(item, BaseModel):
                    key = getattr(item, "name", None) or str(i)
                    yield from iter_quantities(item, f"{path}.{key}.")
        elif isinstance(value, dict):
            for k, item in value.items():
                if isinstance(item, BaseModel):
                    yield from iter_quantities(item, f"{path}.{k}.")


def iter_needs(spec: FormulaSpec) -> Iterator[tuple[str, Need]]:
    """The version's need and each stream's own, with their dotted key paths."""
    yield "need", spec.need
    for stream in spec.streams:
        if stream.need is not None:
            yield f"streams.{stream.name}.need", stream.need


def iter_age_curves(spec: FormulaSpec) -> Iterator[tuple[str, AgeCostCurve]]:
    """Every age cost curve in a spec (the pooled need's and each stream's) with its dotted key path; a band's
    weight is addressed as `<path>.bands.<from>-<to>.weight` by --set, scenarios, diffs and sweeps."""
    for path, need in iter_needs(spec):
        if need.age_cost_curve is not None:
            yield f"{path}.age_cost_curve", need.age_cost_curve


def assumed_numbers(spec: FormulaSpec) -> list[dict]:
    """Every number whose source is, wholly or in part, the project's assumption (its source says so), with its
    path, value, unit and source; an age curve's bands share the curve's source."""
    rows = [{"path": path, "value": q.value, "unit": q.unit, **({"description": q.description} if q.description
                                                                 else {}), "source": q.source}
            for path, q in iter_quantities(spec) if "assumption" in q.source.lower()]
    for path, curve in iter_age_curves(spec):
        if "assumption" in curve.source.lower():
            rows += [{"path": f"{path}.bands.{b.age_from}-{b.age_to}.weight", "value": b.weight, "unit": curve.unit,
                      "source": curve.source} for b in curve.bands]
    for name, index in (getattr(spec, "indices", None) or {}).items():
        if index.growth is not None and "assumption" in index.source.lower():
            rows += [{"path": f"indices.{name}.growth.{y}", "value": g, "unit": index.unit,
                      "source": f"{index.source} (vintage {index.vintage})"} for y, g in index.growth.items()]
    return rows


def count_numbers(spec: FormulaSpec) -> int:
    """How many numbers a spec states: quantities, age band weights and index growth rates."""
    return (sum(1 for _ in iter_quantities(spec)) + sum(len(c.bands) for _, c in iter_age_curves(spec))
            + sum(len(i.growth or {}) for i in (getattr(spec, "indices", None) or {}).values()))
