"""Formula versions are validated before anything runs: each fault named by file, key path and reason."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli import app
from fundform.base.errors import SpecError
from fundform.base.paths import PROJECT_ROOT
from fundform.formula.registry import load_formula_file

DEFAULT = (PROJECT_ROOT / "formulas" / "fundform-needs.toml").read_text()
runner = CliRunner()


def broken(tmp_path: Path, old: str, new: str) -> Path:
    assert old in DEFAULT, old
    p = tmp_path / "broken.toml"
    p.write_text(DEFAULT.replace(old, new, 1))
    return p


FAULTS = {
    "unknown key": ('rule = "convergence"', 'rule = "convergence"\npace = 3', "transition.pace", "unknown key"),
    "missing unit": ('real_growth = { value = 0.02, unit = "growth per year", ',
                     'real_growth = { value = 0.02, ', "control_total.real_growth.unit", "Field required"),
    "unknown component": ('transform = "ratio_power"', 'transform = "ratio_squared"', "need.indicators.deprivation.transform",
                          "unknown component 'ratio_squared'"),
    "unknown indicator column": ('column = "imd_average_score"', 'column = "imd_score"', "need.indicators.deprivation.column",
                                 "not a numeric column"),
    "age bands leave a gap": ("{ from = 5, to = 14, weight = 0.6 }", "{ from = 6, to = 14, weight = 0.6 }",
                              "need.age_cost_curve", "gaps at [5]"),
    "negative elasticity": ("elasticity = { value = 0.25,", "elasticity = { value = -0.25,", "need.indicators.0.elasticity",
                            "-0.25 is out of range: expected >= 0 and <= 10"),
    "share out of range": ("share_for_devolved_services = { value = 0.399,",
                           "share_for_devolved_services = { value = 1.399,", "local_tax.share_for_devolved_services",
                           "1.399 is out of range: expected >= 0 and <= 1 (a share)"),
    "source neither listed nor assumption": ('source = "ctr-2024-25, referendum', 'source = "somebody, referendum',
                                             "local_tax.core_increase.source", "names no source"),
    "assumption without a reason": ('real_growth = { value = 0.02, unit = "growth per year", description = "real '
                                    'growth per year", source = "assumption: below', 'real_growth = { value = 0.02, '
                                    'unit = "growth per year", source = "assumption", note = "x", old = "assumption: '
                                    'below',
                                    "control_total.real_growth", "assumption needs a one-line reason"),
}


@pytest.mark.parametrize("fault", FAULTS)
def test_invalid_spec_is_rejected_with_file_key_path_and_reason(fault, tmp_path):
    old, new, path, reason = FAULTS[fault]
    f = broken(tmp_path, old, new)
    with pytest.raises(SpecError) as e:
        load_formula_file(f)
    msg = str(e.value)
    assert str(f) in msg and path in msg and reason in msg, msg


def test_run_refuses_an_invalid_spec_and_writes_nothing(tmp_path):
    f = broken(tmp_path, 'transform = "ratio_power"', 'transform = "nope"')
    result = runner.invoke(app, ["run", "--formula", str(f), "--out", str(tmp_path / "out")])
    assert result.exit_code == 1 and "unknown component 'nope'" in result.output
    assert not (tmp_path / "out").exists()


def test_formulas_list_and_show():
    listed = runner.invoke(app, ["formulas", "list"])
    assert listed.exit_code == 0 and "fundform-needs" in listed.output
    shown = runner.invoke(app, ["formulas", "show", "fundform-needs"])
    assert shown.exit_code == 0
    assert "transition.gap_closed_per_year" in shown.output and "ohid-93721" in shown.output


def test_infeasible_policy_is_a_clear_error_not_a_traceback(tmp_path):
    f = broken(tmp_path, 'floor = { value = 0.0,', 'floor = { value = 0.5,')
    result = runner.invoke(app, ["run", "--formula", str(f), "--out", str(tmp_path / "out")])
    assert result.exit_code == 1
    assert re.search(r"2026/27: the floors cost more than the control total", " ".join(result.output.split()))
    assert "Traceback" not in result.output and not (tmp_path / "out").exists()


# --- the spec as the one typed source of parameter names, units and bounds ------------------------------------------

def _declared_units(model, prefix=""):
    """(path, declared unit, the number) for every number in a spec, the unit read from the field's own type."""
    from pydantic import BaseModel

    from fundform.formula.quantities import Quantity, unit_of

    for name, field in type(model).model_fields.items():
        value = getattr(model, name)
        if isinstance(value, Quantity):
            yield f"{prefix}{name}", unit_of(field), value
        elif isinstance(value, BaseModel):
            yield from _declared_units(value, f"{prefix}{name}.")
        elif isinstance(value, list):
            for item in value:
                if isinstance(item, BaseModel):
                    yield from _declared_units(item, f"{prefix}{name}.{getattr(item, 'name', '?')}.")


@pytest.mark.parametrize("formula_id", ["fundform-needs", "hdc-2021", "localis-2016", "reform-2017", "nhs-icb-2024",
                                        "nhs-icb-2025", "nhs-icb-2026"])
def test_every_number_carries_the_unit_its_field_declares(formula_id):
    from fundform.formula.quantities import UNITS
    from fundform.formula.scenario import resolve_formula
    from fundform.formula.spec import HEALTH_TAX_UNITS

    spec = resolve_formula(formula_id).spec
    seen = 0
    for s in [spec] + [spec.at(y) for y in spec.years]:
        for path, declared, q in _declared_units(s):
            assert q.unit in UNITS, (path, q.unit)
            if path.endswith("health_tax.rate"):
                declared = HEALTH_TAX_UNITS[s.local_tax.health_tax.basis]
            assert declared is not None and q.unit == declared, (path, q.unit, declared)
            assert q.description is None or q.description != q.unit
            seen += 1
    assert seen >= 5


def test_each_rule_is_its_own_model_and_its_numbers_come_from_it():
    from pydantic import ValidationError

    from fundform.formula.rules import TRANSITION_NUMBERS, make_rule, rule_numbers

    share = {"value": 0.2, "unit": "share", "source": "assumption: a test value"}
    assert rule_numbers("convergence") == ("gap_closed_per_year",)
    assert rule_numbers("nhs_convergence") == ("gain_gap_closed", "max_gain", "reduction_gap_closed", "max_reduction")
    assert rule_numbers("phasing") == ("phasing_years",)
    assert set(TRANSITION_NUMBERS) == {"floor", "ceiling", *rule_numbers("convergence"),
                                       *rule_numbers("nhs_convergence"), *rule_numbers("phasing")}
    assert type(make_rule(rule="convergence", gap_closed_per_year=share)).__name__ == "Convergence"
    with pytest.raises(ValidationError, match="max_gain"):  # another rule's number is not this rule's
        make_rule(rule="convergence", gap_closed_per_year=share, max_gain=share)
    with pytest.raises(ValidationError, match="phasing_years"):  # a rule's own number is required
        make_rule(rule="phasing")
    with pytest.raises(ValidationError, match="budget_neutral"):  # only NHS England's convergence releases money
        make_rule(rule="convergence", gap_closed_per_year=share, budget_neutral=False)
    with pytest.raises(ValidationError, match="not a whole number"):  # the bound and its kind are the field's
        make_rule(rule="phasing", phasing_years={"value": 2.5, "unit": "years", "source": "assumption: a test"})
    plugin = make_rule(rule="my_rule", parameters={"pace": share})  # any other name is a plugin's, numbers in parameters
    assert plugin.parameters["pace"].value == 0.2


def test_a_number_written_with_words_for_its_unit_keeps_them_as_its_description(tmp_path):
    """A version or scenario file from before units were machine-readable still loads: the words become the
    number's description and the unit is the field's. A machine unit that is not the field's is refused."""
    old = DEFAULT.replace('unit = "growth per year", description = "real growth per year"',
                          'unit = "real growth per year"', 1)
    assert old != DEFAULT
    p = tmp_path / "old.toml"
    p.write_text(old)
    q = load_formula_file(p).spec.control_total.real_growth
    assert (q.unit, q.description) == ("growth per year", "real growth per year")
    p.write_text(DEFAULT.replace('unit = "growth per year", description = "real growth per year"',
                                 'unit = "share", description = "real growth per year"', 1))
    with pytest.raises(SpecError, match="control_total.real_growth: .*unit 'share': this number is in growth per year"):
        load_formula_file(p)


def test_a_scenario_that_changes_the_rule_replaces_the_old_rules_numbers(tmp_path):
    from fundform.formula.scenario import resolve_formula

    p = tmp_path / "phased.toml"
    p.write_text('extends = "fundform-needs"\ntitle = "phased"\n[transition]\nrule = "phasing"\n'
                 'phasing_years = { value = 3, unit = "years", source = "assumption: the Fair Funding Review thirds" }\n')
    rule = resolve_formula(str(p)).spec.transition
    assert rule.rule == "phasing" and rule.phasing_years.value == 3 and not hasattr(rule, "gap_closed_per_year")
    assert rule.floor is not None  # what every rule has stays


def test_official_sources_carry_their_url():
    from fundform.formula.scenario import resolve_formula

    official = ("Office for National Statistics", "NHS England", "Ministry of Housing", "Department for Levelling Up",
                "Office for Health Improvement")
    for f in ["fundform-needs", "hdc-2021", "localis-2016", "reform-2017", "nhs-icb-2024", "nhs-icb-2025",
              "nhs-icb-2026"]:
        for src in resolve_formula(f).spec.sources:
            if src.publisher.startswith(official):
                assert src.url and src.url.startswith("https://"), (f, src.id)
