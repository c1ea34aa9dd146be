"""The pipeline stays columnar at small-area grain: over a million population rows give the same need and money as
the same population summed to authorities first."""

import numpy as np
import polars as pl

from fundform.inputs.dataset import load_dataset
from fundform.pipeline import RunParameters, compute
from tests.conftest import synthetic_dataset, write_dataset


def test_million_row_small_area_input_matches_authority_input(needs_formula, tmp_path):
    small = synthetic_dataset(n_areas=60, seed=7, small_areas_per_area=100)
    assert small["population"].height >= 1_000_000
    # through the real reader and contracts, as a user's folder would be
    loaded = load_dataset(write_dataset(small, tmp_path / "small"))
    whole = synthetic_dataset(n_areas=60, seed=7)
    params = RunParameters(level="icb")
    a = compute(loaded, needs_formula, params)
    b = compute(whole, needs_formula, params)
    np.testing.assert_allclose(a.need["target_share"].to_numpy(), b.need["target_share"].to_numpy(), rtol=1e-12)
    diff = (a.allocations["allocation"] - b.allocations["allocation"]).abs()
    assert diff.max() <= 1  # at most a penny where a remainder tie falls the other way
    assert a.reconciliation["holds"].all()
