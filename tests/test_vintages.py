"""Inputs on older boundary vintages are converted to 2024 codes by documented rules, and the run lists them."""

from __future__ import annotations

import json
import shutil

import polars as pl
import pytest
from typer.testing import CliRunner

from cli import app
from fundform.base.errors import InvalidInput
from fundform.base.paths import PROJECT_ROOT
from fundform.inputs.dataset import load_dataset

runner = CliRunner()
IOD2019 = PROJECT_ROOT / "data" / "vintages" / "deprivation_iod2019_lad19.parquet"
BUCKS = ["E07000004", "E07000005", "E07000006", "E07000007"]


@pytest.fixture
def iod2019_data(data_copy):
    shutil.copy(IOD2019, data_copy / "deprivation.parquet")
    return data_copy


def test_a_run_on_imd_2019_inputs_converts_them_and_lists_the_conversions(iod2019_data, tmp_path):
    r = runner.invoke(app, ["run", "--data", str(iod2019_data), "--out", str(tmp_path / "run"), "--quiet",
                            "--no-record"])
    assert r.exit_code == 0, r.output
    conv = json.loads((tmp_path / "run" / "manifest.json").read_text())["policies"]["boundary_conversions"]
    by_new = {c["new_code"]: c for c in conv}
    assert set(by_new) == {"E06000060", "E06000061", "E06000062", "E06000063", "E06000064", "E06000065",
                           "E06000066"}
    assert by_new["E06000060"]["old_codes"] == BUCKS and by_new["E06000060"]["change_years"] == [2020]
    # Somerset comes through two reorganisations: Taunton Deane's successor (2019) merged again in 2023
    assert "E07000246" in by_new["E06000066"]["old_codes"]


def test_conversion_is_the_population_weighted_mean_and_ranks_are_recomputed(iod2019_data):
    ds = load_dataset(iod2019_data)
    dep = ds["deprivation"]
    assert dep.height == 296 and set(dep["area_code"]) == set(ds["areas"]["area_code"])
    old = pl.read_parquet(IOD2019).filter(pl.col("area_code").is_in(BUCKS))
    w = ds["code_changes"].filter(pl.col("old_code").is_in(BUCKS)).select(area_code="old_code",
                                                                           w="population_weight")
    j = old.join(w, on="area_code")
    expected = (j["imd_average_score"] * j["w"]).sum() / j["w"].sum()
    got = dep.filter(pl.col("area_code") == "E06000060")["imd_average_score"].item()
    assert got == pytest.approx(expected, rel=1e-12)
    assert sorted(dep["imd_rank_average_score"].to_list()) == list(range(1, 297)) or \
        dep["imd_rank_average_score"].max() <= 296  # ranks of the converted scores (ties share a rank)
    top = dep.sort("imd_average_score", descending=True)["imd_rank_average_score"][0]
    assert top == 1


def test_a_table_without_conversion_rules_is_refused_by_name(data_copy):
    f = data_copy / "council_tax.parquet"
    ct = pl.read_parquet(f)
    somerset = ct.filter(pl.col("area_code") == "E06000066")
    parts = pl.concat([somerset.with_columns(area_code=pl.lit(c)) for c in ["E07000187", "E07000188"]])
    pl.concat([ct.filter(pl.col("area_code") != "E06000066"), parts]).write_parquet(f)
    with pytest.raises(InvalidInput) as e:
        load_dataset(data_copy)
    assert "council_tax.parquet" in str(e.value) and "no rule to convert" in str(e.value)


def test_need_inputs_at_small_area_grain_roll_up_to_authorities(bundled, data_copy, needs_formula):
    """Deprivation given per LSOA (scores varying within each authority, population-weighted means equal to the
    authority's) gives the same need as the authority table, through the same contract's combine rules."""
    import numpy as np

    from fundform.studies.pipeline import RunParameters, compute

    dep = bundled["deprivation"]
    rng = np.random.default_rng(5)
    k = 4
    rows = dep.select(pl.all().repeat_by(k)).explode(pl.all()).with_columns(
        small_area_code=pl.format("{}-{}", "area_code", pl.int_range(pl.len()).over("area_code")),
        small_area_population=pl.Series(rng.integers(500, 3000, dep.height * k).astype(float)),
        noise=pl.Series(rng.uniform(0.6, 1.4, dep.height * k)))
    # scale the noise so each authority's population-weighted mean score is its published score
    rows = rows.with_columns(imd_average_score=pl.col("imd_average_score") * pl.col("noise") / (
        (pl.col("noise") * pl.col("small_area_population")).sum().over("area_code")
        / pl.col("small_area_population").sum().over("area_code"))).drop("noise")
    rows.write_parquet(data_copy / "deprivation.parquet")
    ds = load_dataset(data_copy)
    assert {"table": "deprivation", "aggregated_small_areas": dep.height * k, "to_areas": 296} in ds.conversions
    a = compute(ds, needs_formula, RunParameters(years=1)).need.sort("area_code")["target_share"].to_numpy()
    b = compute(bundled, needs_formula, RunParameters(years=1)).need.sort("area_code")["target_share"].to_numpy()
    np.testing.assert_allclose(a, b, rtol=1e-10)
