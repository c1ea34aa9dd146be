"""The financial year as a value (base/years.py): parsed once, stepped, compared and counted, printed back."""

from __future__ import annotations

import doctest

import pytest
from hypothesis import given
from hypothesis import strategies as st

import fundform.base.years as years
from fundform.base.years import FinancialYear, year_before, years_between, years_from

starts = st.integers(1900, 2998)


@given(starts, st.integers(-50, 50))
def test_a_year_reads_back_steps_and_counts(start, k):
    y = FinancialYear(start)
    assert FinancialYear.parse(str(y)) == y
    assert (y + k) - y == k and ((y + k) > y) == (k > 0)
    assert str(y.previous) == year_before(str(y)) and years_between(str(y + k), str(y)) == k


@given(starts, st.integers(1, 12))
def test_a_span_runs_year_after_year(start, n):
    got = years_from(str(FinancialYear(start)), n)
    assert len(got) == n and all(years_between(b, a) == 1 for a, b in zip(got, got[1:]))


@pytest.mark.parametrize("text", ["2026/28", "2026-27", "26/27", "2026/2027", "", "2099/01"])
def test_text_that_is_not_a_financial_year_is_refused(text):
    with pytest.raises(ValueError, match="not a financial year like 2026/27"):
        FinancialYear.parse(text)


def test_the_docstring_examples_run():
    failed, tried = doctest.testmod(years)
    assert tried > 0 and failed == 0
