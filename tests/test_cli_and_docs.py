"""The CLI's contract (settings precedence, exit codes) and generated docs that cannot drift from the code."""

from __future__ import annotations

import json
import re
import subprocess
import sys

from typer.testing import CliRunner

from cli import app
from fundform.base.paths import PROJECT_ROOT

runner = CliRunner()


def test_generated_docs_are_current():
    result = runner.invoke(app, ["docs", "--check"])
    assert result.exit_code == 0, result.output


def test_settings_precedence_cli_over_env_over_file(tmp_path, monkeypatch):
    cfg = tmp_path / "fundform.toml"
    cfg.write_text('level = "region"\nyears = 2\n')
    r = runner.invoke(app, ["run", "--config", str(cfg), "--json", "--out", str(tmp_path / "a")])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["parameters"] == {"level": "region", "start_year": "2026/27", "years": 2,
                                                  "price_base_year": "2026/27"}
    monkeypatch.setenv("FUNDFORM_LEVEL", "nhs-region")
    r = runner.invoke(app, ["run", "--config", str(cfg), "--json", "--out", str(tmp_path / "b")])
    assert json.loads(r.output)["parameters"]["level"] == "nhs-region"
    r = runner.invoke(app, ["run", "--config", str(cfg), "--json", "--level", "icb", "--out", str(tmp_path / "c")])
    assert json.loads(r.output)["parameters"]["level"] == "icb"


def test_exit_codes_usage_and_invalid_input(tmp_path):
    assert runner.invoke(app, ["run", "--no-such-option"]).exit_code == 2
    bad_level = runner.invoke(app, ["run", "--level", "parish", "--out", str(tmp_path / "o")])
    assert bad_level.exit_code == 2 and "unknown level 'parish'" in bad_level.output  # a usage error
    bad_year = runner.invoke(app, ["run", "--start-year", "2026/28", "--out", str(tmp_path / "o")])
    assert bad_year.exit_code == 2 and "2026/28" in bad_year.output


def test_readme_commands_exist_in_the_cli():
    readme = (PROJECT_ROOT / "README.md").read_text()
    commands = set(re.findall(r"^\s*fundform ([a-z]+)", readme, flags=re.M))
    assert {"run", "validate", "formulas"} <= commands
    help_text = subprocess.run([sys.executable, str(PROJECT_ROOT / "cli.py"), "--help"], capture_output=True,
                               text=True, check=True).stdout
    for c in commands:
        assert c in help_text, c


def test_help_names_every_level_and_keeps_placeholders():
    # the option help is rendered as Markdown: a placeholder like <id> would vanish as an HTML tag
    from fundform.inputs.tables import LEVELS

    for command in (["run"], ["sweep"], ["explain"]):
        text = " ".join(runner.invoke(app, [*command, "--help"], env={"COLUMNS": "200"}).output.split())
        for level in (*LEVELS, "deal:FILE.csv"):
            assert level in text, (command, level)
    text = runner.invoke(app, ["run", "--help"], env={"COLUMNS": "200"}).output
    assert "formulas/ID.toml" in text and "out/RUN_ID/" in text
