"""Run parameters (level, years, price base, local files); what a run returns is in results.py, the scenario axis in
scenarios.py."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from fundform.base.errors import FundformError, UsageProblem
from fundform.base.years import FinancialYear
from fundform.engine.geography import deal_level_name
from fundform.inputs.tables import LEVELS


@dataclass(frozen=True, kw_only=True)
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
