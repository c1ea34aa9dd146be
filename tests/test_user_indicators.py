"""A need indicator of the user's own (an area cost adjustment, a sparsity index) in the dataset's indicators/
folder: checked like every table, listed in the manifest, and used by a scenario that adds it."""

from __future__ import annotations

import json
import shutil

import numpy as np
import polars as pl
import pytest
from typer.testing import CliRunner

from cli import app
from fundform.base.errors import FundformError
from fundform.base.paths import PROJECT_ROOT
from fundform.formula.scenario import resolve_formula
from fundform.inputs.dataset import load_dataset
from fundform.studies.pipeline import RunParameters, compute

EXAMPLE = PROJECT_ROOT / "docs" / "examples"
SCENARIO = EXAMPLE / "area-cost-scenario.toml"
runner = CliRunner()


@pytest.fixture
def with_cost(data_copy):
    (data_copy / "indicators").mkdir()
    shutil.copy(EXAMPLE / "area_cost_example.csv", data_copy / "indicators" / "area_cost.csv")
    return data_copy


def shares(data_dir, formula) -> pl.DataFrame:
    r = compute(load_dataset(data_dir), resolve_formula(str(formula)) if str(formula).endswith(".toml")
                else resolve_formula(formula), RunParameters(years=1))
    return r.need.select("area_code", "target_share").sort("area_code")


def test_a_cost_index_scales_need_one_for_one(with_cost):
    # elasticity 1: an authority's need is multiplied by its index over the national one, so relative to the
    # version without it London's shares rise by exactly the 10% London weighting against everyone else's
    base = shares(with_cost, "fundform-needs")
    cost = shares(with_cost, SCENARIO)
    ratio = cost["target_share"].to_numpy() / base["target_share"].to_numpy()
    london = base["area_code"].str.starts_with("E09").to_numpy()
    assert london.sum() == 33
    np.testing.assert_allclose(ratio[london] / ratio[~london].mean(), 1.10, rtol=1e-12)
    np.testing.assert_allclose(ratio[~london], ratio[~london][0], rtol=1e-12)
    assert cost["target_share"].sum() == pytest.approx(1.0, abs=1e-12)


def test_doubling_the_index_changes_no_share(with_cost, tmp_path):
    f = with_cost / "indicators" / "area_cost.csv"
    before = shares(with_cost, SCENARIO)
    pl.read_csv(f).with_columns(pl.col("area_cost_index") * 2).write_csv(f)
    after = shares(with_cost, SCENARIO)
    np.testing.assert_allclose(before["target_share"].to_numpy(), after["target_share"].to_numpy(), rtol=1e-12)


def test_the_run_records_the_indicator_file_and_the_added_indicator(with_cost, tmp_path):
    r = runner.invoke(app, ["run", "--data", str(with_cost), "--formula", str(SCENARIO), "--quiet", "--no-record",
                            "--out", str(tmp_path / "r")])
    assert r.exit_code == 0, r.output
    m = json.loads((tmp_path / "r" / "manifest.json").read_text())
    files = {i["file"]: i for i in m["inputs"]}
    assert files["indicators/area_cost.csv"]["rows"] == 296 and len(files["indicators/area_cost.csv"]["sha256"]) == 64
    assert {"path": "need.indicators.area_cost.elasticity.value", "old": None, "new": 1.0,
            "origin": "scenario area-cost-scenario.toml"} in m["overrides"]
    steps = pl.read_parquet(tmp_path / "r" / "waterfall.parquet")["step"].unique().to_list()
    assert "area cost" in steps


def test_without_its_table_the_scenario_says_which_file_it_needs(data_copy):
    with pytest.raises(FundformError, match=r"need.indicators.area_cost reads table 'indicators/area_cost', which "
                                            r".* does not have \(expected indicators/area_cost.parquet"):
        shares(data_copy, SCENARIO)


def test_a_broken_indicator_file_is_named_with_column_and_rows(with_cost):
    f = with_cost / "indicators" / "area_cost.csv"
    frame = pl.read_csv(f)
    frame = frame.with_columns(area_cost_index=pl.when(pl.col("area_code") == "E06000001").then(-1.0)
                               .otherwise(pl.col("area_cost_index")))
    frame.filter(pl.col("area_code") != "E09000033").write_csv(f)
    (with_cost / "indicators" / "Bad-Name.csv").write_text("area_code,x\n")
    r = runner.invoke(app, ["validate", "--data", str(with_cost)])
    assert r.exit_code == 1
    out = " ".join(r.output.split())
    assert "indicators/area_cost.csv" in out and "area_cost_index" in out and "E06000001" in out
    assert "E09000033" in out  # the missing authority
    assert "indicators/Bad-Name.csv" in out and "not a usable table name" in out


def test_a_scenario_cannot_add_an_indicator_by_a_typo(tmp_path):
    f = tmp_path / "typo.toml"
    f.write_text('extends = "fundform-needs"\ntitle = "t"\ndescription = "d"\n[[need.indicators]]\n'
                 'name = "deprivaton"\nelasticity = 0.3\n')
    with pytest.raises(Exception, match="no item named 'deprivaton' .*a new indicator gives its table"):
        resolve_formula(str(f))
