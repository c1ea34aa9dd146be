"""The financial year as a value: parsed once where text meets the engine ("2026/27"), then compared, stepped and
counted as a value, printed as "2026/27" again. Files, tables and specs keep the text (it is what NHS England, the
ONS and the Treasury write); whatever computes with a year reads it through `FinancialYear`."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import total_ordering
from typing import overload

PATTERN = re.compile(r"^(\d{4})/(\d{2})$")


@total_ordering
@dataclass(frozen=True, slots=True)
class FinancialYear:
    """April to March: `start` is the calendar year it begins in (2026 for 2026/27).

    >>> y = FinancialYear.parse("2026/27")
    >>> str(y + 4), str(y.previous), (y + 4) - y, y < FinancialYear.parse("2030/31")
    ('2030/31', '2025/26', 4, True)
    >>> [str(x) for x in y.span(3)]
    ['2026/27', '2027/28', '2028/29']
    """

    start: int

    @classmethod
    def parse(cls, text: str | FinancialYear) -> FinancialYear:
        """'2026/27' -> FinancialYear(2026); refuses text that is not a year like 2026/27, or whose halves do not
        follow on (2026/28)."""
        if isinstance(text, FinancialYear):
            return text
        m = PATTERN.match(str(text))
        if not m or (int(m.group(1)) + 1) % 100 != int(m.group(2)):
            raise ValueError(f"'{text}' is not a financial year like 2026/27")
        return cls(int(m.group(1)))

    def __str__(self) -> str:
        return f"{self.start}/{(self.start + 1) % 100:02d}"

    def __add__(self, years: int) -> FinancialYear:
        return FinancialYear(self.start + int(years))

    @overload
    def __sub__(self, other: FinancialYear) -> int: ...

    @overload
    def __sub__(self, other: int) -> FinancialYear: ...

    def __sub__(self, other: int | FinancialYear) -> FinancialYear | int:
        """A year `other` years earlier, or (between two years) how many years apart they are."""
        if isinstance(other, FinancialYear):
            return self.start - other.start
        return FinancialYear(self.start - int(other))

    def __lt__(self, other: FinancialYear) -> bool:
        return self.start < FinancialYear.parse(other).start

    @property
    def previous(self) -> FinancialYear:
        return self - 1

    def span(self, n: int) -> list[FinancialYear]:
        """This year and the n - 1 after it."""
        return [self + k for k in range(n)]


def year_text(start: int) -> str:
    """The text of the financial year starting in calendar year `start`: 2026 -> '2026/27'."""
    return str(FinancialYear(start))


def years_from(start: str, n: int) -> list[str]:
    """The texts of `n` financial years from `start`: ('2026/27', 3) -> ['2026/27', '2027/28', '2028/29']."""
    return [str(y) for y in FinancialYear.parse(start).span(n)]


def year_before(year: str) -> str:
    """'2026/27' -> '2025/26'."""
    return str(FinancialYear.parse(year).previous)


def years_between(later: str, earlier: str) -> int:
    """How many years `later` is after `earlier` ('2030/31', '2026/27' -> 4)."""
    return FinancialYear.parse(later) - FinancialYear.parse(earlier)
