"""The benchmark's pandas and DuckDB implementations compute the same numbers as fundform (small scale)."""

import sys

import numpy as np
import polars as pl
import pytest

from fundform.base.paths import PROJECT_ROOT
from tests.conftest import synthetic_dataset, write_dataset

sys.path.insert(0, str(PROJECT_ROOT / "benchmarks"))
w2 = pytest.importorskip("w2_impls")
pytest.importorskip("pandas")


def test_fundform_pandas_and_duckdb_agree(tmp_path):
    folder = write_dataset(synthetic_dataset(n_areas=25, seed=11, small_areas_per_area=20), tmp_path / "small")
    f = w2.run_fundform(folder).sort("area_code", "year")
    p = pl.from_pandas(w2.run_pandas(folder)).sort("area_code", "year")
    d = w2.run_duckdb(folder).sort("area_code", "year")
    assert f.height == p.height == d.height == 25 * 5
    for other in (p, d):
        assert np.abs(f["target_share"].to_numpy() - other["target_share"].to_numpy()).max() < 1e-12
        assert np.abs(f["target_allocation"].to_numpy() - other["target_allocation"].to_numpy()).max() < 0.01
    # and fundform's lazy plan is the engine's own: its shares are the pipeline's target shares
    from fundform.formula.scenario import resolve_formula
    from fundform.inputs.dataset import load_dataset
    from fundform.studies.pipeline import RunParameters, compute

    need = compute(load_dataset(folder), resolve_formula("fundform-needs"), RunParameters(years=1)).need
    np.testing.assert_allclose(need.sort("area_code")["target_share"].to_numpy(),
                               f.filter(pl.col("year") == "2026/27")["target_share"].to_numpy(), rtol=1e-12)
