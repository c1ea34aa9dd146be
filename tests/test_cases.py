"""Policy cases written as data (cases/*.toml, docs/cases.md): each must hold, and a case whose expected figure
is wrong must fail, naming the figure."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from cli import app
from fundform.base.errors import SpecError
from fundform.base.paths import PROJECT_ROOT
from fundform.studies.cases import case_files, check_case, load_case

CASES = case_files(PROJECT_ROOT / "cases")


def test_there_are_a_dozen_cases_of_both_kinds():
    kinds = [load_case(f).kind for f in CASES]
    assert len(CASES) >= 12 and {"transition", "run"} <= set(kinds)


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_each_policy_case_holds(path):
    case = load_case(path)
    assert check_case(case) == [], f"{path.name}: {case.title}"


def _mutated(tmp_path, name: str, old: str, new: str):
    text = (PROJECT_ROOT / "cases" / name).read_text()
    assert old in text
    path = tmp_path / name
    path.write_text(text.replace(old, new, 1))
    return path


def test_a_transition_case_with_a_wrong_figure_fails_naming_it(tmp_path):
    path = _mutated(tmp_path, "floor-paid-by-scaling-back-gains.toml", "expect_allocation = [90, 105, 105]",
                    "expect_allocation = [90, 106, 104]")
    problems = check_case(load_case(path))
    assert len(problems) == 2 and "B: allocation GBP 105.00, expected GBP 106.00" in problems[0]
    r = CliRunner().invoke(app, ["cases", str(path)])
    assert r.exit_code == 1 and "no" in r.output


def test_a_run_case_with_a_wrong_published_figure_fails_naming_it(tmp_path):
    path = _mutated(tmp_path, "nhs-2025-26-core-humber.toml", "value = 3_413_852_000", "value = 3_450_000_000")
    problems = check_case(load_case(path))
    assert len(problems) == 1 and "allocations.allocation of QOQ 2025/26" in problems[0] and "3450000000" in \
        problems[0].replace("_", "")


def test_a_malformed_case_is_refused_naming_the_file_and_key(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text('title = "x"\nkind = "run"\nversion = "fundform-needs"\n[[expect]]\narea = "E06000001"\n'
                    'column = "grant"\nvalue = 1\nsource = "hand"\n')
    with pytest.raises(SpecError) as e:
        load_case(path)
    assert "bad.toml" in str(e.value) and "tolerance" in str(e.value)
    path.write_text('title = "x"\nkind = "transition"\nareas = ["A"]\nprevious = [1, 2]\n[rule]\n'
                    'rule = "convergence"\n[[years]]\ntotal = 3\ntarget = [1]\nexpect_allocation = [1]\n')
    with pytest.raises(SpecError) as e:
        load_case(path)
    assert "one value per area" in str(e.value)
