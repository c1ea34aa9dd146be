"""Formula versions are validated before anything runs: each fault named by file, key path and reason."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli import app
from fundform.errors import SpecError
from fundform.formula.registry import load_formula_file
from fundform.paths import PROJECT_ROOT

DEFAULT = (PROJECT_ROOT / "formulas" / "fundform-needs.toml").read_text()
runner = CliRunner()


def broken(tmp_path: Path, old: str, new: str) -> Path:
    assert old in DEFAULT, old
    p = tmp_path / "broken.toml"
    p.write_text(DEFAULT.replace(old, new, 1))
    return p


FAULTS = {
    "unknown key": ('rule = "convergence"', 'rule = "convergence"\npace = 3', "transition.pace", "unknown key"),
    "missing unit": ('real_growth = { value = 0.02, unit = "real growth per year", ',
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
    "assumption without a reason": ('real_growth = { value = 0.02, unit = "real growth per year", source = '
                                    '"assumption: below', 'real_growth = { value = 0.02, unit = "real growth per '
                                    'year", source = "assumption", note = "x", old = "assumption: below',
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
