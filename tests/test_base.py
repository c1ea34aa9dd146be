"""The small helpers of fundform.base that the typed layers read values through: they refuse, never fill."""

from __future__ import annotations

import polars as pl
import pytest

from fundform.base.errors import InternalError, present
from fundform.base.numeric import number


def test_present_gives_the_value_and_names_what_is_missing():
    assert present(0, "a floor") == 0  # a falsy value is a value, not a missing one
    assert present("", "a name") == ""
    with pytest.raises(InternalError, match="local_tax.precept is not set") as e:
        present(None, "local_tax.precept")
    assert e.value.exit_code == 3  # a fault of fundform's, told as one (the validated version guarantees it)


def test_number_reads_a_polars_scalar_and_refuses_an_empty_column():
    assert number(pl.Series([1, 2, 3]).sum()) == 6.0
    assert number(pl.Series([0.25, 0.5]).max()) == 0.5
    with pytest.raises(ValueError, match="empty or all-missing"):
        number(pl.Series([], dtype=pl.Float64).max())  # None, never read as 0
    with pytest.raises(ValueError):
        number(pl.Series([None, None], dtype=pl.Float64).min())
