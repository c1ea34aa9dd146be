"""The numbers of a formula version: a `Quantity` is a value with its unit, bounds and source; the measured types
(Share, Growth, Change, ...) declare each field's unit and bounds; financial years as text and numbers."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, get_args

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
)

# a financial year as a version writes it ("2026/27"); computed with as a value: base.years.FinancialYear
FinancialYear = Annotated[str, Field(pattern=r"^\d{4}/\d{2}$")]


class Strict(BaseModel):
    # NaN and infinity are refused everywhere: no run can compute with them, and JSON cannot hold them
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


QUANTITY_LIMIT = 1e13  # no number of a formula is larger in magnitude (GBP 10 trillion; rates are far smaller)


# the units a number may carry, machine-readable; each field that holds a number declares its own
Unit = Literal["GBP", "GBP per head", "GBP per Band D", "share", "ratio", "elasticity", "growth per year",
               "change per year", "years", "relative cost"]
UNITS: tuple[str, ...] = get_args(Unit)


class Quantity(Strict):
    """A number with its unit, what it is, and where it comes from. The unit is one of UNITS, declared by the field
    that holds the number (`Measured`); `description` says in words what the number is. Finite and within +/-1e13
    always; each field declares its own range too, checked before anything runs."""

    value: float = Field(ge=-QUANTITY_LIMIT, le=QUANTITY_LIMIT, strict=True)  # strict: true/false is not a number
    unit: Unit
    description: str | None = Field(default=None, min_length=1)
    source: str = Field(min_length=1)

    @field_validator("source")
    @classmethod
    def _source_form(cls, v: str) -> str:
        if v.lower().startswith("assumption") and not re.match(r"(?i)^assumption:\s*\S.{4,}", v):
            reason = re.sub(r"(?i)^assumption\s*:?\s*", "", v).strip()
            raise ValueError("an assumption needs a one-line reason: 'assumption: <why this value>'; "
                             + (f"the reason given ('{reason}') is too short: {len(reason)} character(s), at least 5"
                                if reason else "no reason is given after 'assumption:'"))
        return v


class UnitIs:
    """A field's declared unit (metadata of `Measured`). A number given with words where its unit goes (the form
    before units were machine-readable) keeps the words as its description and takes the field's unit; a number
    given in another unit is refused."""

    def __init__(self, unit: str) -> None:
        assert unit in UNITS, unit
        self.unit = unit

    def __call__(self, v: Any) -> Any:
        if isinstance(v, Quantity):
            v = v.model_dump(exclude_none=True)
        if not isinstance(v, dict) or "unit" not in v or v["unit"] == self.unit:  # a missing unit is refused
            return v
        u = v["unit"]
        if u in UNITS:
            raise ValueError(f"unit '{u}': this number is in {self.unit}")
        if "description" in v:
            raise ValueError(f"unit '{u}' is not a unit: this number is in {self.unit} (units: {', '.join(UNITS)})")
        return {**v, "unit": self.unit, "description": u}



def _bounded(lo: float | None, hi: float | None, lo_open: bool = False, what: str = "", whole: bool = False
             ) -> AfterValidator:
    def check(q: Any) -> Any:  # pydantic's validator: a Quantity, a bare number or None, given back as it came
        if q is None:
            return q
        v = q.value if isinstance(q, Quantity) else q
        below = lo is not None and (v <= lo if lo_open else v < lo)
        above = hi is not None and v > hi
        if below or above:
            rng = (f"{'>' if lo_open else '>='} {lo:g}" if lo is not None else "") + \
                  (" and " if lo is not None and hi is not None else "") + (f"<= {hi:g}" if hi is not None else "")
            raise ValueError(f"{v:g} is out of range: expected {rng}{' (' + what + ')' if what else ''}")
        if whole and v != int(v):
            raise ValueError(f"{v:g} is not a whole number{' of ' + what if what else ''}")
        return q
    return AfterValidator(check)


def Bounded(lo: float | None, hi: float | None, lo_open: bool = False, what: str = "", whole: bool = False
            ) -> AfterValidator:
    """A number's declared range: `Annotated[float, Bounded(0, 1)]`."""
    return _bounded(lo, hi, lo_open, what, whole)


def Measured(unit: str, lo: float | None, hi: float | None, lo_open: bool = False, what: str = "",
             whole: bool = False) -> Any:
    """A field holding one number: its unit and its range, declared with the field."""
    return Annotated[Quantity, BeforeValidator(UnitIs(unit)), _bounded(lo, hi, lo_open, what, whole)]


def unit_of(field: Any) -> str | None:
    """The unit a model field (or a type) declares; None for a field that holds no number."""
    for meta in [*(getattr(field, "metadata", None) or ()), *(getattr(field, "__metadata__", None) or ())]:
        if isinstance(meta, BeforeValidator) and isinstance(meta.func, UnitIs):
            return meta.func.unit
    for arg in get_args(getattr(field, "annotation", field)) or ():
        found = unit_of(arg)
        if found:
            return found
    return None


Share = Measured("share", 0, 1, what="a share")
Growth = Measured("growth per year", -0.5, 1.0, what="growth per year, as index series")
Change = Measured("change per year", -1, 10, lo_open=True, what="a year-on-year change: above -100%, at most +1000%")
Years = Measured("years", 1, 50, what="a number of years")
WholeYears = Measured("years", 1, 50, what="years", whole=True)
Multiplier = Measured("ratio", 0, 100, lo_open=True, what="a need multiplier")
PerHead = Measured("GBP per head", 0, 100_000, what="GBP per head")
Elasticity = Measured("elasticity", 0, 10, what="an elasticity: 1 is proportional, 10 already extreme")
PerBandD = Measured("GBP per Band D", 0, 100_000, lo_open=True, what="GBP per Band D")
Pounds = Measured("GBP", 0, QUANTITY_LIMIT, lo_open=True, what="GBP")
LedgerLimit = Measured("ratio", 0, 10, what="a multiple of the year's allocation")


class Source(Strict):
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]*$")
    title: str
    publisher: str
    url: str | None = None
    note: str | None = None
