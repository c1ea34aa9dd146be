"""Each shipped formula version's output is pinned: any unintended change to need, transition, local tax or
rounding fails here. Intended changes: run tests/golden/regenerate.py and commit the new fixtures with a reason."""

import polars as pl
import pytest

from fundform.formula.registry import available_formulas
from tests.golden.regenerate import golden_frame, path_for


@pytest.mark.parametrize("formula_id", list(available_formulas()))
def test_golden_output(formula_id):
    expected = path_for(formula_id)
    assert expected.exists(), f"no golden output for {formula_id}: run tests/golden/regenerate.py"
    got = golden_frame(formula_id)
    want = pl.read_csv(expected, schema=got.schema)
    diff = got.join(want, on=["area_code", "financial_year"], suffix="_golden").filter(
        pl.any_horizontal([pl.col(c) != pl.col(f"{c}_golden") for c in got.columns
                           if c not in ("area_code", "financial_year")]))
    assert got.height == want.height and diff.height == 0, f"{formula_id} changed:\n{diff}"
