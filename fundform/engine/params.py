"""Run parameters (level, years, price base, local files) and what a run returns; the scenario axis is in
scenarios.py."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from fundform.base.errors import FundformError, UsageProblem
from fundform.base.years import FinancialYear
from fundform.engine.geography import deal_level_name
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
