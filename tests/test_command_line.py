"""The command line behaves as the README says, the same everywhere (issue: one command line)."""

from __future__ import annotations

from typer.testing import CliRunner

from cli import app
from fundform import __version__

runner = CliRunner()


def test_version_answers_without_a_command():
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output.strip() == f"fundform {__version__}"


def test_usage_errors_exit_2_as_the_readme_says(tmp_path):
    for args in (["run", "--level", "lsoa"], ["run", "--years", "0"], ["run", "--start-year", "2026"],
                 ["run", "--bogus"], ["explain", "Hartlepool", "--level", "parish"]):
        result = runner.invoke(app, [*args, "--out", str(tmp_path / "o")] if args[0] == "run" else args)
        assert result.exit_code == 2, (args, result.output)
    assert not (tmp_path / "o").exists()


def test_explain_prefers_an_exact_name_and_lists_real_ambiguities():
    exact = runner.invoke(app, ["explain", "Lincoln", "--years", "1", "--json"])
    assert exact.exit_code == 0, exact.output
    assert '"area_code": "E07000138"' in exact.output and "North Lincolnshire" not in exact.output
    several = runner.invoke(app, ["explain", "lincolnshire", "--years", "1"])
    assert several.exit_code == 1
    assert "North East Lincolnshire" in several.output and "North Lincolnshire" in several.output


def test_explain_points_to_the_level_where_a_name_is_an_area():
    result = runner.invoke(app, ["explain", "NHS Lincolnshire ICB", "--years", "1"])
    assert result.exit_code == 1
    assert "--level icb" in result.output and "QJM" in result.output


def test_ledger_takes_a_run_id_and_names_the_level_the_actuals_are_for(tmp_path, monkeypatch):
    import json

    from fundform.paths import PROJECT_ROOT

    monkeypatch.setenv("FUNDFORM_WAREHOUSE", str(tmp_path / "wh.duckdb"))
    monkeypatch.setenv("FUNDFORM_OUT_ROOT", str(tmp_path / "out"))
    actuals = str(PROJECT_ROOT / "docs" / "examples" / "actuals_example.csv")
    ltla = json.loads(runner.invoke(app, ["run", "--json"]).output)["run_id"]
    wrong = runner.invoke(app, ["ledger", actuals, "--run", ltla])
    assert wrong.exit_code == 1 and "look like codes of level region" in wrong.output, wrong.output
    region = json.loads(runner.invoke(app, ["run", "--level", "region", "--json"]).output)["run_id"]
    right = runner.invoke(app, ["ledger", actuals, "--run", region[:8], "--json"])
    assert '"areas": 9' in right.output, right.output
