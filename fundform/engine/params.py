"""Run parameters (level, years, price base, local files) and what a run returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from fundform.base.errors import FundformError, UsageProblem
from fundform.base.years import FinancialYear
from fundform.engine.geography import deal_level_name
from fundform.formula.spec import DATED_SECTIONS, FormulaSpec
from fundform.inputs.tables import LEVELS


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
            FinancialYear.parse(self.start_year)
            if self.price_base_year:
                FinancialYear.parse(self.price_base_year)
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
    """A computed run: its output tables (money columns in int64 pence), one per entry of
    `fundform.outputs.registry.OUTPUTS` and read by name (`result.allocations`), the control totals, the policies
    the manifest records, and once written its manifest and folder."""

    tables: dict[str, pl.DataFrame]
    control_totals: pl.DataFrame
    policies: dict = field(default_factory=dict)
    manifest: dict = field(default_factory=dict)
    out_dir: Path | None = None
    uncertainty: object = None  # a run with --uncertainty: its draws' result (studies.uncertainty)

    def __getattr__(self, name: str) -> pl.DataFrame:
        tables = self.__dict__.get("tables", {})
        if name in tables:
            return tables[name]
        raise AttributeError(f"a run has no table '{name}' (its tables: {', '.join(tables)})")


def stream_path(stream, path: str) -> str:
    """Where a stream's parameter lives: its own need, transition or real growth where it has one, else the
    version's (so `need.indicators.deprivation.elasticity` moves every stream that shares the version's need)."""
    if stream is None:
        return path
    own = {"need": stream.need is not None, "transition": stream.transition is not None,
           "control_total": stream.real_growth is not None}
    if not own.get(path.split(".")[0], False):
        return path
    if path == "control_total.real_growth":
        return f"streams.{stream.name}.real_growth"
    return f"streams.{stream.name}.{path}"


def dates_number(node: Any, keys: list[str]) -> bool:
    """Whether a dated section's raw table sets the number at `keys` (named list items by their name, age bands
    by "from-to", as --set addresses them)."""
    for k in keys:
        if isinstance(node, dict) and "value" in node and k == "value":
            return True
        if isinstance(node, dict):
            if k not in node:
                return False
            node = node[k]
        elif isinstance(node, list):
            node = next((i for i in node if isinstance(i, dict) and (
                i.get("name") == k or f"{i.get('age_from')}-{i.get('age_to')}" == k)), None)
            if node is None:
                return False
        else:
            return False
    return True


def dated_path(spec: FormulaSpec, path: str, year: str | None) -> str:
    """The path a number is read from in `year`: the latest dated section of the version up to that year that sets
    it (`years."2025/26".transition.max_gain`), else the undated one. A `--set` or a sweep of the undated number
    leaves the dated values standing, as the version states them."""
    section, _, rest = path.partition(".")
    if year is None or section not in DATED_SECTIONS or not spec.years:
        return path
    for y in sorted(spec.years, key=FinancialYear.parse, reverse=True):
        if FinancialYear.parse(y) <= FinancialYear.parse(year) and dates_number(spec.years[y].get(section), rest.split(".")):
            return f"years.{y}.{path}"
    return path


@dataclass(frozen=True)
class Scenarios:
    """The scenario axis every stage takes: `size` scenarios, each giving its own values to some of the version's
    numbers, named by their paths as `--set` names them (`need.indicators.deprivation.elasticity`,
    `streams.nhs_core.real_growth`, `years.2025/26.transition.max_gain`). A run is one scenario that sets nothing,
    so every stage reads the version's own numbers: a run and a sweep are the same code."""

    size: int = 1
    values: dict[str, np.ndarray] = field(default_factory=dict)
    # keep what a run reports beyond the money (each year's uprated baselines, when no rule needs them): a sweep
    # of thousands of scenarios asks only for the grants
    detail: bool = True
    # a design's candidates: a scenario whose floors or ceilings cannot meet a year's total is marked (in each
    # settlement's `infeasible`) and settled without them, instead of stopping every scenario with it
    mark_infeasible: bool = False
    # the data axis: each scenario a draw of the inputs (engine.draws.DataDraws), or None: every scenario reads the
    # dataset as it is
    draws: object = None
    # what one settlement derives from these scenarios and may reuse (streams sharing the version's need share
    # its scenario shares): filled by the stages, never compared; each settlement takes a copy with its own
    # (outcome.settle), so the cache lives exactly as long as the settlement that fills it
    derived: dict = field(default_factory=dict, compare=False, repr=False)

    def path(self, spec: FormulaSpec, stream, path: str, year: str | None = None) -> str:
        """Where `path` (as the version names it) is read from for `stream` in `year`."""
        return dated_path(spec, stream_path(stream, path), year)

    def sets(self, spec: FormulaSpec, stream, path: str, year: str | None = None) -> bool:
        return self.path(spec, stream, path, year) in self.values

    def get(self, spec: FormulaSpec, stream, path: str, default: float, year: str | None = None) -> np.ndarray:
        """(size,) values of `path` for `stream` in `year`: the scenarios' own, or the version's `default`."""
        own = self.values.get(self.path(spec, stream, path, year))
        return np.full(self.size, default, dtype=np.float64) if own is None else own


ONE = Scenarios()
