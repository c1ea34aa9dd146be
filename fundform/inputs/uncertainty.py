"""An uncertainty file: where the inputs' uncertainty comes from, how many draws and the seed (docs/uncertainty.md).

    draws = 1000
    seed = 20261207

    [[sources]]                      # population: the spread between published projection vintages
    input = "population"
    method = "vintages"
    variant = "snpp2018"
    structure = "regional"           # shared by a region's authorities, plus each one's own (or "independent")
    spread_is = "sd"                 # the spread is one standard deviation (or "p90_half_width")

    [[sources]]                      # preventable mortality: the sampling error of each area's rate
    input = "preventable_mortality"
    column = "preventable_mortality_rate"
    method = "sampling"

    [[sources]]                      # any indicator column: a distribution of the user's, with its source
    input = "deprivation"
    column = "imd_average_score"
    method = "distribution"
    distribution = "normal"          # normal (sd), lognormal (sigma), triangular (low, high)
    sd = 0.02                        # a share of the value (relative = true, the default) or in the column's unit
    min = 0.5
    source = "assumption: 2% either way, no published error"

    [[sources]]                      # or a table of draws: draw, area_code, value (population: factor, by year)
    input = "indicators/area_cost"
    column = "value"
    method = "draws"
    file = "area_cost_draws.csv"

The file is checked as a whole before anything runs: unknown keys, a seed that is not a whole number, a
distribution without its numbers, a source on a table the version does not read; a draws file is checked like every
table (every draw, area and year present, finite values within the column's bounds), naming the file, column and
rows.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from fundform.base.errors import InternalError, SpecError
from fundform.base.toml import read_toml
from fundform.inputs.contracts import Column, TableContract

MAX_DRAWS = 100_000


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class Source(_Strict):
    """One input's uncertainty: which table and column, and how it is drawn."""

    input: str = Field(pattern=r"^(indicators/)?[a-z][a-z0-9_]*$")
    column: str | None = Field(None, pattern=r"^[a-z][a-z0-9_]*$")
    method: Literal["vintages", "sampling", "distribution", "draws"]
    variant: str | None = Field(None, pattern=r"^[a-z][a-z0-9_]*$")  # vintages: the other projection
    distribution: Literal["normal", "lognormal", "triangular"] | None = None
    sd: float | None = Field(None, gt=0, allow_inf_nan=False)  # normal
    sigma: float | None = Field(None, gt=0, le=2, allow_inf_nan=False)  # lognormal
    low: float | None = Field(None, allow_inf_nan=False)  # triangular: the lowest change (relative, or absolute)
    high: float | None = Field(None, allow_inf_nan=False)
    relative: bool = True
    min: float | None = Field(None, allow_inf_nan=False)
    max: float | None = Field(None, allow_inf_nan=False)
    file: str | None = None  # draws: a CSV or Parquet table of draws
    source: str | None = Field(None, min_length=1)  # where the uncertainty comes from (required for a user's)
    # vintages: how the spread between the vintages is shared. "regional" (the default): a component common to every
    # authority of an ONS region (the region's population-weighted spread, one z per draw and region) plus each
    # authority's own residual (one z per draw and authority); "independent": one z per draw and authority
    structure: Literal["regional", "independent"] | None = None
    # vintages: what the spread between the vintages is taken to be: one standard deviation ("sd", the default), or
    # the half-width of a 90% interval ("p90_half_width": the standard deviation is the spread / 1.645)
    spread_is: Literal["sd", "p90_half_width"] | None = None
    # a value borrowed from another area (declared in the data, "substituted from <code>"): the relative standard
    # deviation of the borrowing (how far the area's own value may lie from its donor's), with its source; without
    # it, estimated from the data as the spread of the value among the donor's region's other authorities
    borrowed_sd: float | None = Field(None, gt=0, le=2, allow_inf_nan=False)
    borrowed_source: str | None = Field(None, min_length=1)

    @property
    def label(self) -> str:
        return self.input if self.input == "population" else f"{self.input}.{self.column}"

    @model_validator(mode="after")
    def _method(self) -> Source:
        where = self.label
        if self.method == "vintages" and (self.input != "population" or self.variant is None):
            raise ValueError(f"{where}: method vintages is for input = \"population\", with the variant named "
                             "(variant = \"snpp2018\": a variant of the population_variants table)")
        if self.method == "sampling" and (self.input != "preventable_mortality" or self.column is None):
            raise ValueError(f"{where}: method sampling is the sampling error of a rate from its deaths: input = "
                             "\"preventable_mortality\", column = \"preventable_mortality_rate\"")
        if self.input != "population" and self.column is None:
            raise ValueError(f"{where}: name the column drawn (column = ...)")
        if self.method == "distribution":
            need = {"normal": ("sd",), "lognormal": ("sigma",), "triangular": ("low", "high")}
            if self.distribution is None:
                raise ValueError(f"{where}: method distribution needs distribution = normal, lognormal or triangular")
            missing = [k for k in need[self.distribution] if getattr(self, k) is None]
            extra = [k for k in ("sd", "sigma", "low", "high") if k not in need[self.distribution]
                     and getattr(self, k) is not None]
            if missing or extra:
                raise ValueError(f"{where}: a {self.distribution} distribution takes "
                                 f"{' and '.join(need[self.distribution])}" + (f" (missing {', '.join(missing)})"
                                                                               if missing else "")
                                 + (f" (not {', '.join(extra)})" if extra else ""))
            if self.distribution == "triangular" and not (self.low is not None and self.high is not None
                                                          and self.low < 0 < self.high):
                raise ValueError(f"{where}: a triangular distribution runs from low < 0 to high > 0 around the "
                                 f"value (got low = {self.low:g}, high = {self.high:g})")
            if self.distribution == "lognormal" and not self.relative:
                raise ValueError(f"{where}: a lognormal distribution is relative (a factor on the value)")
            if self.input == "population":
                raise ValueError(f"{where}: population is drawn from vintages or a draws file (a factor per area "
                                 "and year), not a distribution")
        if self.method == "draws" and self.file is None:
            raise ValueError(f"{where}: method draws needs file = \"...\" (columns draw, area_code, value; for "
                             "population draw, area_code, financial_year, factor)")
        if self.method in ("distribution", "draws") and self.source is None:
            raise ValueError(f"{where}: say where this uncertainty comes from (source = \"...\", or \"assumption: "
                             "...\")")
        if (self.structure is not None or self.spread_is is not None) and self.method != "vintages":
            raise ValueError(f"{where}: structure and spread_is say how the spread between projection vintages is "
                             "drawn: they go with method vintages")
        if (self.borrowed_sd is None) != (self.borrowed_source is None):
            raise ValueError(f"{where}: borrowed_sd and borrowed_source go together (the borrowing's spread and where "
                             "it comes from)")
        if self.borrowed_sd is not None and self.input == "population":
            raise ValueError(f"{where}: borrowed_sd is for an indicator value borrowed from another area")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"{where}: min {self.min:g} is above max {self.max:g}")
        return self


class UncertaintySpec(_Strict):
    """The uncertainty file: draws, seed and sources."""

    draws: int = Field(ge=1, le=MAX_DRAWS)
    seed: int = Field(ge=0, lt=2**63)
    sources: list[Source] = Field(default_factory=list)
    # write every draw's figures beside the bands (draws.parquet: one row per draw, area and year, written chunk by
    # chunk), so every probability the run states can be recomputed from its files
    write_draws: bool = False
    path: Path | None = Field(None, exclude=True)
    sha256: str = Field("", exclude=True)

    @model_validator(mode="after")
    def _unique(self) -> UncertaintySpec:
        labels = [s.label for s in self.sources]
        twice = sorted({x for x in labels if labels.count(x) > 1})
        if twice:
            raise ValueError(f"each input is drawn by one source; named twice: {', '.join(twice)}")
        return self

    def file_of(self, source: Source) -> Path:
        base = self.path.parent if self.path else Path(".")
        if source.file is None:
            raise InternalError(f"internal error: source {source.label} names no file of draws (file = ...)")
        return (base / source.file).resolve()

    def as_manifest(self) -> dict:
        return {"file": str(self.path) if self.path else None, "sha256": self.sha256, "draws": self.draws,
                "seed": self.seed, "write_draws": self.write_draws,
                "sources": [s.model_dump(exclude_none=True) for s in self.sources]}


def read_uncertainty(path: Path | str) -> UncertaintySpec:
    """The uncertainty file, validated; every problem names the file and the key."""
    path = Path(path)
    data = read_toml(path, "TOML uncertainty file")
    raw = path.read_bytes()
    try:
        spec = UncertaintySpec.model_validate({**data, "path": None})
    except ValidationError as e:
        lines = []
        for err in e.errors():
            loc = ".".join(str(p) for p in err["loc"])
            msg = err["msg"].removeprefix("Value error, ")
            if err["type"] in ("int_type", "int_parsing", "int_from_float") and "seed" in loc:
                msg = f"the seed must be a whole number (got {err.get('input')!r})"
            lines.append(f"  - {loc or '(top level)'}: {msg}")
        raise SpecError(f"{path}: invalid uncertainty file ({len(lines)} problem(s))\n" + "\n".join(lines)) from None
    return spec.model_copy(update={"path": path.resolve(), "sha256": hashlib.sha256(raw).hexdigest()})


def draws_contract(source: Source) -> TableContract:
    """The table of draws a user gives for one input: one row per draw and area (and year, for population)."""
    value = (Column("factor", "float", "ratio", "the draw's population over the population table's, all ages", min=0,
                    min_exclusive=True, max=10) if source.input == "population" else
             Column("value", "float", "as the column", f"the draw's value of {source.label}",
                    min=source.min, max=source.max))
    year = (Column("financial_year", "str", "financial year", "the year the factor is for",
                   pattern=r"^\d{4}/\d{2}$", pattern_text="a financial year like 2026/27"),)
    return TableContract(
        name=f"draws of {source.label}", description="a user's draws of one input", source="the user", vintage="-",
        columns=(Column("draw", "int", "count", "the draw, 0 to draws - 1", min=0),
                 Column("area_code", "str", "GSS code", "lower-tier authority"),
                 *(year if source.input == "population" else ()), value),
        key=("draw", "area_code", *(("financial_year",) if source.input == "population" else ())),
        covers_every_area=False)
