"""Uncertainty (issue 31): the data axis. A draw is a run on its variant dataset to the penny; no uncertainty is the
run itself; every draw's money adds to the control total; the mortality bands narrow as population grows; the
same file gives the same bytes; bad uncertainty input is refused by name before anything runs."""

from __future__ import annotations

import dataclasses
import hashlib

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fundform.base.errors import FundformError, InvalidInput, SpecError
from fundform.engine.draws import make_draws, variant_tables
from fundform.engine.outcome import evaluate
from fundform.engine.scenarios import Scenarios
from fundform.formula.scenario import resolve_formula
from fundform.inputs.uncertainty import read_uncertainty
from fundform.studies.pipeline import RunParameters, compute
from fundform.studies.uncertainty import run_uncertainty

PARAMS = RunParameters(years=3)
YEARS = ["2026/27", "2027/28", "2028/29"]
VINTAGES = '[[sources]]\ninput = "population"\nmethod = "vintages"\nvariant = "snpp2018"\n'
SAMPLING = ('[[sources]]\ninput = "preventable_mortality"\ncolumn = "preventable_mortality_rate"\n'
            'method = "sampling"\n')


def unc_file(tmp_path, text: str, name: str = "u.toml"):
    path = tmp_path / name
    path.write_text(text)
    return read_uncertainty(path)


@pytest.fixture(scope="module")
def needs():
    return resolve_formula("fundform-needs")


@pytest.fixture(scope="module")
def central(bundled, needs):
    return compute(bundled, needs, PARAMS)


def by_year(frame: pl.DataFrame, col: str) -> np.ndarray:
    f = frame.sort("year_index", "area_code")
    return f[col].to_numpy().reshape(f["year_index"].n_unique(), -1)


def test_every_draw_is_a_run_on_its_variant_dataset_to_the_penny(bundled, needs, tmp_path):
    unc = unc_file(tmp_path, f"draws = 12\nseed = 5\n{VINTAGES}{SAMPLING}")
    draws = make_draws(bundled, unc, needs.spec, YEARS)
    oc = evaluate(bundled, needs.spec, PARAMS, Scenarios(size=draws.size, draws=draws, detail=False))
    for i in (0, 7, 11):
        variant = dataclasses.replace(bundled, tables={**bundled.tables, **variant_tables(bundled, draws, i)})
        run = compute(variant, needs, PARAMS).allocations
        for col, got in (("allocation", oc.allocation[i]), ("grant", oc.grant[i]),
                         ("grant_per_head", oc.grant_per_head[i])):
            assert (got == by_year(run, col)).all(), (i, col)
    # and the draws do move the money: the variant is not the bundled data
    assert np.abs(oc.allocation - oc.allocation[:1]).max() > 100_000


def test_no_uncertainty_collapses_every_band_to_the_run_to_the_penny(bundled, needs, central, tmp_path):
    codes = sorted(bundled["areas"]["area_code"].to_list())
    rate = bundled["preventable_mortality"].sort("area_code")["preventable_mortality_rate"].to_list()
    (tmp_path / "same.csv").write_text("draw,area_code,value\n" + "".join(
        f"{d},{c},{v!r}\n" for d in range(4) for c, v in zip(codes, rate)))
    for text in ("draws = 4\nseed = 1\n",  # no source at all
                 "draws = 4\nseed = 1\n[[sources]]\ninput = \"preventable_mortality\"\n"
                 "column = \"preventable_mortality_rate\"\nmethod = \"draws\"\nfile = \"same.csv\"\n"
                 "source = \"the published rates themselves\"\n"):  # every draw the data as it is
        u = run_uncertainty(bundled, needs, PARAMS, unc_file(tmp_path, text), central)
        b = u.bands
        for q in ("allocation", "grant"):
            for k in ("p5", "p50", "p95"):
                assert (b[f"{q}_{k}"] == b[f"{q}_central"]).all(), (q, k)
        assert (b["target_share_p50"] - b["target_share_central"]).abs().max() == 0
        assert (b["p_floor"].is_in([0.0, 1.0])).all() and (b["rank_p5"] == b["rank_p95"]).all()


def test_every_draws_money_adds_to_its_control_total(bundled, needs, central, tmp_path):
    u = run_uncertainty(bundled, needs, PARAMS, unc_file(tmp_path, f"draws = 40\nseed = 9\n{VINTAGES}{SAMPLING}"),
                        central)
    totals = by_year(central.allocations, "allocation").sum(axis=1)  # the control total, to the penny
    assert (u.arrays.allocation.sum(axis=-1) == totals[None, :]).all()
    # the bands order as percentiles must, and the central grant lies within a range the draws span
    b = u.bands
    assert ((b["grant_p5"] <= b["grant_p50"]) & (b["grant_p50"] <= b["grant_p95"])).all()
    assert (b["most_sensitive_share"].drop_nulls().is_between(-0.05, 1.05)).all()
    s = u.sensitivity
    assert set(s["input"]) == {"population", "preventable_mortality.preventable_mortality_rate",
                               "interactions and nonlinearity"}


@settings(max_examples=8, deadline=None)
@given(st.floats(1.5, 20.0))
def test_mortality_sampling_bands_narrow_as_population_grows(bundled, needs, k):
    """The rate of an area k times as populous rests on k times the deaths: its drawn range is narrower (the
    standard deviation goes as 1 / sqrt(deaths)), for every area."""
    unc = read_uncertainty_text(f"draws = 400\nseed = 3\n{SAMPLING}")
    one = make_draws(bundled, unc, needs.spec, YEARS).values[("preventable_mortality", "preventable_mortality_rate")]
    pop = bundled.tables["population"]
    bigger = dataclasses.replace(bundled, tables={**bundled.tables, "population": pop.with_columns(
        pl.col("population") * k)})
    more = make_draws(bigger, unc, needs.spec, YEARS).values[("preventable_mortality", "preventable_mortality_rate")]
    width = lambda d: np.quantile(d, 0.95, axis=0) - np.quantile(d, 0.05, axis=0)
    own = np.array([c not in ("E06000053", "E09000001") for c in make_draws(bundled, unc, needs.spec, YEARS).codes])
    # (the two borrowed rates carry the borrowing's spread, not their own deaths': they do not narrow)
    assert (width(more)[own] < width(one)[own]).all()
    assert np.allclose(width(more)[own] / width(one)[own], 1 / np.sqrt(k), rtol=0.35)


def read_uncertainty_text(text: str):
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as d:
        (Path(d) / "u.toml").write_text(text)
        return read_uncertainty(Path(d) / "u.toml")


def test_the_same_file_gives_the_same_bytes_and_id_and_another_seed_another(tmp_path):
    from fundform.studies.runs import run
    from tests.conftest import DATA

    text = f"draws = 30\nseed = 11\n{VINTAGES}{SAMPLING}"
    out = {}
    for name, t in (("a", text), ("b", text), ("c", text.replace("seed = 11", "seed = 12"))):
        (tmp_path / f"in-{name}").mkdir()
        unc = unc_file(tmp_path / f"in-{name}", t)  # the same file, in another folder
        r = run("fundform-needs", DATA, PARAMS, tmp_path / name, tmp_path, uncertainty=unc)
        out[name] = (r.manifest["run_id"], hashlib.sha256((tmp_path / name / "uncertainty.parquet").read_bytes())
                     .hexdigest())
    assert out["a"] == out["b"]
    assert out["c"][0] != out["a"][0] and out["c"][1] != out["a"][1]
    import json

    m = json.loads((tmp_path / "a" / "manifest.json").read_text())
    assert m["parameters"]["uncertainty"]["seed"] == 11
    assert [s["method"] for s in m["uncertainty"]["sources"]] == ["vintages", "sampling"]
    assert all(s["cited"] for s in m["uncertainty"]["sources"])


# -- bad input, named before anything runs ---------------------------------------------------------------------

@pytest.mark.parametrize("text, words", [
    ("draws = 10\nseed = 1.5\n", "seed must be a whole number"),
    ("draws = 10\nseed = \"x\"\n", "seed must be a whole number"),
    ("draws = 0\nseed = 1\n", "draws"),
    ("draws = 10\nseed = 1\n[[sources]]\ninput = \"deprivation\"\ncolumn = \"imd_average_score\"\n"
     "method = \"distribution\"\ndistribution = \"normal\"\nsource = \"x\"\n", "takes sd"),
    ("draws = 10\nseed = 1\n[[sources]]\ninput = \"deprivation\"\ncolumn = \"imd_average_score\"\n"
     "method = \"distribution\"\ndistribution = \"normal\"\nsd = 0.1\n", "say where this uncertainty comes from"),
    ("draws = 10\nseed = 1\n[[sources]]\ninput = \"population\"\nmethod = \"distribution\"\n"
     "distribution = \"normal\"\nsd = 0.1\nsource = \"x\"\n", "not a distribution"),
    ("draws = 10\nseed = 1\nwobble = 2\n", "wobble"),
])
def test_a_bad_uncertainty_file_is_refused_naming_the_key(tmp_path, text, words):
    with pytest.raises(SpecError, match="u.toml") as e:
        unc_file(tmp_path, text)
    assert words in str(e.value)


def test_a_drawn_value_outside_its_columns_bounds_is_refused_by_row(bundled, needs, tmp_path):
    unc = unc_file(tmp_path, "draws = 50\nseed = 2\n[[sources]]\ninput = \"deprivation\"\ncolumn = "
                             "\"imd_average_score\"\nmethod = \"distribution\"\ndistribution = \"normal\"\n"
                             "sd = 40\nrelative = false\nsource = \"assumption: a test of bounds\"\n")
    with pytest.raises(InvalidInput) as e:
        make_draws(bundled, unc, needs.spec, YEARS)
    text = str(e.value)
    assert "uncertainty source deprivation.imd_average_score" in text and "> 0" in text and "draw " in text


def test_a_draws_table_missing_an_area_or_year_or_not_finite_is_refused(bundled, needs, tmp_path):
    codes = sorted(bundled["areas"]["area_code"].to_list())
    rows = [f"{d},{c},{y},1.01" for d in range(2) for c in codes for y in YEARS]
    (tmp_path / "short.csv").write_text("draw,area_code,financial_year,factor\n" + "\n".join(rows[1:]) + "\n")
    (tmp_path / "nan.csv").write_text("draw,area_code,financial_year,factor\n" + "\n".join(
        [rows[0].replace("1.01", "nan"), *rows[1:]]) + "\n")
    (tmp_path / "zero.csv").write_text("draw,area_code,financial_year,factor\n" + "\n".join(
        [rows[0].replace("1.01", "0"), *rows[1:]]) + "\n")
    base = ("draws = 2\nseed = 1\n[[sources]]\ninput = \"population\"\nmethod = \"draws\"\nsource = \"x\"\n"
            "file = \"{}\"\n")
    with pytest.raises(InvalidInput) as e:
        make_draws(bundled, unc_file(tmp_path, base.format("short.csv"), "s.toml"), needs.spec, YEARS)
    assert "short.csv" in str(e.value) and f"0/{codes[0]}/{YEARS[0]}" in str(e.value)
    for name in ("nan.csv", "zero.csv"):
        with pytest.raises(InvalidInput) as e:
            make_draws(bundled, unc_file(tmp_path, base.format(name), "n.toml"), needs.spec, YEARS)
        assert name in str(e.value) and "factor" in str(e.value)


def test_a_source_the_version_does_not_read_and_an_nhs_version_are_refused(bundled, needs, tmp_path):
    unc = unc_file(tmp_path, "draws = 5\nseed = 1\n[[sources]]\ninput = \"deprivation\"\ncolumn = "
                             "\"imd_average_rank\"\nmethod = \"distribution\"\ndistribution = \"normal\"\nsd = 0.1\n"
                             "source = \"x\"\n")
    with pytest.raises(FundformError, match="reads no such indicator .*deprivation.imd_average_score"):
        make_draws(bundled, unc, needs.spec, YEARS)
    with pytest.raises(FundformError, match="published without an error"):
        make_draws(bundled, unc_file(tmp_path, f"draws = 5\nseed = 1\n{VINTAGES}"), resolve_formula(
            "nhs-icb-2025").spec, ["2025/26"])


def test_run_and_python_api_write_and_return_the_bands(tmp_path, monkeypatch):
    import fundform

    monkeypatch.setenv("FUNDFORM_OUT_ROOT", str(tmp_path / "root"))
    path = tmp_path / "u.toml"
    path.write_text(f"draws = 20\nseed = 4\n{VINTAGES}{SAMPLING}")
    r = fundform.run("fundform-needs", years=2, level="region", uncertainty=path, out=tmp_path / "o")
    assert r.uncertainty.height == 9 * 2 and r.sensitivity.height == 9 * 2 * 3  # two sources and the remainder
    from fundform.api import Run

    again = Run.load(tmp_path / "o")
    assert again.uncertainty.equals(r.uncertainty)
    # at a level above lower tier the bands are its areas', each central figure the run's own
    j = r.uncertainty.join(r.allocations.select("area_code", "financial_year", "grant"), on=["area_code",
                                                                                           "financial_year"])
    assert (j["grant_central"] == j["grant"]).all()


def test_a_robust_design_holds_with_its_probability_verified_over_every_draw(bundled, tmp_path):
    """A design whose constraint must hold in 90% of 20 draws of the inputs: the search's value for each candidate is
    the order statistic (it holds in at least 90% of the draws exactly when that value is within the limit), and the
    chosen design, run exactly over every draw, holds in the share the search said."""
    from fundform.studies.designer import load_design, run_design, verify

    (tmp_path / "u.toml").write_text(f"draws = 20\nseed = 8\n{VINTAGES}{SAMPLING}")
    (tmp_path / "d.toml").write_text(
        'version = "fundform-needs"\ndraws = 16\nrefine = 0\nyears = 3\n[uncertainty]\nfile = "u.toml"\n'
        'probability = 0.9\n[free]\n"transition.gap_closed_per_year" = [0.05, 1.0]\n"transition.floor" = [-0.05, 0.05]\n'
        '[[constraints]]\nkind = "within_target"\nlimit = 0.15\nyear = "2028/29"\n[[objectives]]\nkind = "maximise"\n'
        'parameter = "transition.floor"\n')
    ds = load_design(tmp_path / "d.toml")
    f = resolve_formula("fundform-needs")
    params = RunParameters(years=3)
    result = run_design(ds, bundled, f, params)
    v = verify(result, bundled, params)
    across = v["across_draws"]["constraints"][0]
    searched = result.chosen["constraints"][0]
    assert across["holds"] == searched["holds"]
    assert (across["share_of_draws_holding"] >= 0.9) == (searched["value"] <= 0.15)
    # the candidate's value is the 90% order statistic of its per-draw values, which the exact draws reproduce
    from fundform.engine.outcome import evaluate
    from fundform.engine.scenarios import Scenarios
    from fundform.studies.design_measures import constraint_values
    from fundform.studies.designer import robust_draws

    draws, probs = robust_draws(ds, bundled, resolve_formula("fundform-needs", result.sets()).spec, params)
    oc = evaluate(bundled, resolve_formula("fundform-needs", result.sets()).spec, params,
                  Scenarios(size=draws.size, detail=False, draws=draws))
    per_draw = constraint_values(ds.constraints[0], oc)
    assert np.quantile(per_draw, 0.9, method="inverted_cdf") == pytest.approx(searched["value"], rel=1e-12)


def test_every_probability_recomputes_from_the_per_draw_file(tmp_path):
    """`write_draws = true`: draws.parquet holds every draw's figures (written a chunk at a time), and the bands'
    floor probabilities and percentiles recompute from it exactly (percentiles of pence, to the penny)."""
    from typer.testing import CliRunner

    from cli import app

    f = tmp_path / "u.toml"
    f.write_text(f"draws = 30\nseed = 3\nwrite_draws = true\n{VINTAGES}{SAMPLING}")
    out = tmp_path / "run"
    r = CliRunner().invoke(app, ["run", "--uncertainty", str(f), "--years", "2", "--out", str(out), "--quiet",
                                 "--no-record"])
    assert r.exit_code == 0, r.output
    d = pl.read_parquet(out / "draws.parquet")
    u = pl.read_parquet(out / "uncertainty.parquet")
    assert d.height == 30 * u.height and d["draw"].n_unique() == 30
    pence = lambda c: (pl.col(c).cast(pl.Float64) * 100).round(0)
    again = d.group_by("area_code", "financial_year").agg(
        p_floor_again=pl.col("held_at_floor").mean(),
        p5_again=(pence("allocation").quantile(0.05, "linear") + 0.5).floor(),
        p95_again=(pence("grant").quantile(0.95, "linear") + 0.5).floor())
    j = u.with_columns(p5=pence("allocation_p5"), p95=pence("grant_p95")).join(again, on=["area_code",
                                                                                         "financial_year"])
    assert j.height == u.height
    assert (j["p_floor"] == j["p_floor_again"]).all()
    assert (j["p5"] == j["p5_again"]).all() and (j["p95"] == j["p95_again"]).all()
