"""The pipeline stays columnar at small-area grain: over a million population rows give the same need and money as
the same population summed to authorities first."""

import numpy as np
import polars as pl

from fundform.base.errors import InvalidInput
from fundform.inputs.dataset import load_dataset
from fundform.studies.pipeline import RunParameters, compute
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


def test_person_level_chunks_give_the_authority_level_results(needs_formula, tmp_path):
    """One row per person, in Parquet chunks under population/: counted in the plan, same numbers."""
    whole = synthetic_dataset(n_areas=12, seed=3, population_scale=0.05)
    counts = whole["population"].with_columns(pl.col("population").round(0))
    whole = type(whole)(whole.directory, {**whole.tables, "population": counts}, ())
    folder = write_dataset(whole, tmp_path / "persons")
    (folder / "population.parquet").unlink()
    persons = counts.filter(pl.col("population") > 0).select(
        pl.all().repeat_by(pl.col("population").cast(pl.UInt32))).explode(pl.all()).drop("population")
    assert persons.height > 10_000
    (folder / "population").mkdir()
    half = persons.height // 2
    persons.head(half).write_parquet(folder / "population" / "part-0.parquet")
    persons.tail(persons.height - half).write_parquet(folder / "population" / "part-1.parquet")
    loaded = load_dataset(folder)
    a = compute(loaded, needs_formula, RunParameters(level="icb"))
    b = compute(whole, needs_formula, RunParameters(level="icb"))
    assert (a.allocations["grant"] - b.allocations["grant"]).abs().max() <= 1
    assert a.allocations["population"].sum() == b.allocations["population"].sum()


def test_person_level_faults_are_named(tmp_path):
    folder = write_dataset(synthetic_dataset(n_areas=3, seed=1), tmp_path / "p")
    (folder / "population.parquet").unlink()
    (folder / "population").mkdir()
    pl.DataFrame({"area_code": ["E06000000", "E06000001"], "sex": ["F", "X"], "age": [40, 120]}).write_parquet(
        folder / "population" / "part-0.parquet")
    try:
        load_dataset(folder)
        raise AssertionError("expected InvalidInput")
    except InvalidInput as e:
        text = str(e)
    assert "population/, column 'sex'" in text and "population/, column 'age'" in text and "E06000001" in text


def test_a_person_in_two_chunks_is_refused_naming_both(tmp_path):
    """Person rows carry person_id: one person twice (a chunk written twice, overlapping extracts) would be counted
    twice. Each chunk is checked alone and chunks whose id ranges overlap together."""
    import pytest

    folder = write_dataset(synthetic_dataset(n_areas=3, seed=1), tmp_path / "p")
    (folder / "population.parquet").unlink()
    (folder / "population").mkdir()
    rows = lambda ids: pl.DataFrame({"person_id": ids, "area_code": ["E06000000"] * len(ids),
                                     "sex": ["F"] * len(ids), "age": [40] * len(ids)})
    rows([1, 2, 3]).write_parquet(folder / "population" / "a.parquet")
    rows([10, 11, 3]).write_parquet(folder / "population" / "b.parquet")
    with pytest.raises(InvalidInput, match=r"1 person_id\(s\) in both a.parquet and b.parquet"):
        load_dataset(folder)
    rows([10, 11, 11]).write_parquet(folder / "population" / "b.parquet")
    with pytest.raises(InvalidInput, match="repeated within chunk b.parquet"):
        load_dataset(folder)
