"""Scenarios are small overrides: they change exactly what they name, are recorded, and never freeze an index."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest
from typer.testing import CliRunner

from cli import app
from fundform.base.errors import SpecError
from fundform.base.paths import PROJECT_ROOT
from fundform.formula.scenario import diff_specs, resolve_formula
from fundform.studies.pipeline import RunParameters, compute

SCENARIO = PROJECT_ROOT / "formulas" / "scenarios" / "deprivation-weight-0.35.toml"
runner = CliRunner()


def test_a_set_override_changes_exactly_what_it_names():
    base = resolve_formula("fundform-needs")
    changed = resolve_formula("fundform-needs", ["transition.gap_closed_per_year=0.3"])
    paths = [p for p, _, _ in diff_specs(base.spec, changed.spec)]
    assert paths == ["transition.gap_closed_per_year.source", "transition.gap_closed_per_year.value"]
    assert changed.spec.transition.gap_closed_per_year.source.startswith("assumption: value set by --set")
    assert [o.as_dict() for o in changed.overrides] == [
        {"path": "transition.gap_closed_per_year", "old": 0.2, "new": 0.3, "origin": "--set"}]


def test_scenario_with_one_changed_weight(bundled, tmp_path):
    r = runner.invoke(app, ["run", "--formula", str(SCENARIO), "--json", "--out", str(tmp_path / "s")])
    assert r.exit_code == 0, r.output
    manifest = json.loads((tmp_path / "s" / "manifest.json").read_text())
    assert manifest["formula"]["scenario"] == SCENARIO.name
    assert [(o["path"], o["old"], o["new"]) for o in manifest["overrides"]] == [
        ("need.indicators.deprivation.elasticity.value", 0.25, 0.35)]
    # the only cause of the change in outputs is that weight: everything upstream of it is identical
    base = compute(bundled, resolve_formula("fundform-needs"), RunParameters()).need
    scen = compute(bundled, resolve_formula(str(SCENARIO)), RunParameters()).need
    assert base["age_weighted_population"].equals(scen["age_weighted_population"])
    assert not base["target_share"].equals(scen["target_share"])
    # exactly as the weight implies: where neither run's multiplier is at its 0.7-1.4 bound, the share ratio is
    # constant x (IMD score)^(0.35 - 0.25)
    dep = bundled["deprivation"].sort("area_code")["imd_average_score"].to_numpy()
    pop = bundled.for_year("2026/27")["population"].group_by("area_code").agg(pl.col("population").sum()).sort("area_code")["population"]
    rel = dep / np.average(dep, weights=pop.to_numpy())
    free = (rel**0.25 > 0.7) & (rel**0.25 < 1.4) & (rel**0.35 > 0.7) & (rel**0.35 < 1.4)
    assert free.sum() > 200
    ratio = scen["target_share"].to_numpy() / base["target_share"].to_numpy()
    residual = np.log(ratio[free]) - 0.10 * np.log(dep[free])
    assert residual.std() < 1e-9


def test_overriding_one_years_index_growth_does_not_freeze_later_years(bundled):
    base = compute(bundled, resolve_formula("fundform-needs"), RunParameters()).control_totals
    high = compute(bundled, resolve_formula("fundform-needs", ["indices.gdp_deflator.growth.2028/29=0.05"]),
                   RunParameters()).control_totals
    b, h = base["control_total"].to_numpy().astype(float), high["control_total"].to_numpy().astype(float)
    years = base["financial_year"].to_list()
    i = years.index("2028/29")
    assert (b[:i] == h[:i]).all()  # years before the change are untouched
    assert h[i] / b[i] == pytest.approx(1.05 / 1.02, rel=1e-12)
    # later years keep growing at their own rates from the new level
    np.testing.assert_allclose(h[i + 1:] / h[i:-1], b[i + 1:] / b[i:-1], rtol=1e-12)


@pytest.mark.parametrize("expr, message", [
    ("transition.flor=0.1", r"transition.flor: unknown key"),
    ("transitio.floor=0.1", "no key 'transitio'"),
    ("need.indicators.poverty.elasticity=0.1", "no item 'poverty' here"),
    ("need.age_cost_curve.bands.85-89.weight=5", r"no item '85-89' here \(known: 0-4, 5-14,"),
    ("need.age_cost_curve.bands.85-90.weight=0", "greater than 0"),
    ("transition.gap_closed_per_year=1.5", "transition.gap_closed_per_year: 1.5 is out of range: expected >= 0 and <= 1"),
    ("transition.floor", "expected key.path=value"),
])
def test_bad_overrides_are_rejected_with_the_path(expr, message):
    with pytest.raises(SpecError, match=message):
        resolve_formula("fundform-needs", [expr])


def test_an_age_band_weight_is_addressed_by_its_ages_in_set_and_in_scenario_files(bundled, tmp_path):
    by_set = resolve_formula("fundform-needs", ["need.age_cost_curve.bands.85-90.weight=9.5"])
    f = tmp_path / "older.toml"
    f.write_text('extends = "fundform-needs"\ntitle = "t"\ndescription = "d"\n'
                 '[need.age_cost_curve.bands."85-90"]\nweight = 9.5\n')
    by_file = resolve_formula(str(f))
    base = resolve_formula("fundform-needs")
    for changed in (by_set, by_file):
        assert [(p, b) for p, _, b in diff_specs(base.spec, changed.spec)] == [
            ("need.age_cost_curve.bands.85-90.weight", 9.5)]
        assert changed.spec.need.age_cost_curve.bands[-1].weight == 9.5
    assert [o.path for o in by_file.overrides] == ["need.age_cost_curve.bands.85-90.weight"]
    # need is linear in the curve: scaling every band by the same factor changes no share
    doubled = [f"need.age_cost_curve.bands.{b.age_from}-{b.age_to}.weight={2 * b.weight}"
               for b in base.spec.need.age_cost_curve.bands]
    a = compute(bundled, base, RunParameters()).need["target_share"].to_numpy()
    b = compute(bundled, resolve_formula("fundform-needs", doubled), RunParameters()).need["target_share"].to_numpy()
    np.testing.assert_allclose(a, b, rtol=1e-12)


def test_scenario_extending_an_unknown_formula(tmp_path):
    f = tmp_path / "s.toml"
    f.write_text('extends = "no-such-formula"\n')
    with pytest.raises(SpecError, match="extends unknown formula 'no-such-formula'"):
        resolve_formula(str(f))


def test_formulas_diff_and_validate_commands():
    r = runner.invoke(app, ["formulas", "diff", "fundform-needs", str(SCENARIO), "--json"])
    assert r.exit_code == 0
    rows = json.loads(r.output)
    assert {"path": "need.indicators.deprivation.elasticity.value", "kind": "number", "a": 0.25, "b": 0.35} in rows
    v = runner.invoke(app, ["formulas", "validate", str(SCENARIO)])
    assert v.exit_code == 0 and "1 override" in v.output


def test_a_missing_formula_folder_says_how_to_fix_it(monkeypatch, tmp_path):
    # e.g. a non-editable install, which leaves formulas/ behind in the checkout
    monkeypatch.setenv("FUNDFORM_FORMULAS_DIR", str(tmp_path / "nowhere"))
    with pytest.raises(SpecError, match=r"formula folder not found: .*nowhere.*pip install -e \."):
        resolve_formula("fundform-needs")


def test_assumed_numbers_are_listed_and_follow_overrides_and_index_files(tmp_path):
    # every listed number says it is an assumption; a published number is not listed until a --set replaces it;
    # a user's index file is cited as a source of its own, so the placeholder deflator leaves the list
    shown = runner.invoke(app, ["formulas", "show", "fundform-needs", "--assumptions", "--json"])
    assert shown.exit_code == 0, shown.output
    listed = json.loads(shown.output)
    assert listed["assumed"] and all("assumption" in r["source"].lower() for r in listed["assumed"])
    paths = {r["path"] for r in listed["assumed"]}
    assert "local_tax.tax_base_growth" not in paths  # sourced: CTR 2024-25
    assert {"need.indicators.deprivation.elasticity", "need.age_cost_curve.bands.85-90.weight",
            "indices.gdp_deflator.growth.2027/28"} <= paths
    assert len(paths) < listed["numbers"]

    index = PROJECT_ROOT / "docs" / "examples" / "gdp_deflator_example.csv"
    r = runner.invoke(app, ["run", "--quiet", "--no-record", "--out", str(tmp_path / "r"),
                            "--set", "local_tax.tax_base_growth=0.01", "--index", f"gdp_deflator={index}"])
    assert r.exit_code == 0, r.output
    manifest = json.loads((tmp_path / "r" / "manifest.json").read_text())
    in_run = {a["path"]: a["value"] for a in manifest["assumptions"]}
    assert in_run["local_tax.tax_base_growth"] == 0.01
    assert not any(p.startswith("indices.gdp_deflator.") for p in in_run)
    assert in_run["need.indicators.deprivation.elasticity"] == 0.25
