"""The command line behaves as the README says, the same everywhere (issue: one command line)."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys

import numpy as np
import polars as pl
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

    from fundform.base.paths import PROJECT_ROOT

    monkeypatch.setenv("FUNDFORM_WAREHOUSE", str(tmp_path / "wh.duckdb"))
    monkeypatch.setenv("FUNDFORM_OUT_ROOT", str(tmp_path / "out"))
    actuals = str(PROJECT_ROOT / "docs" / "examples" / "actuals_example.csv")
    ltla = json.loads(runner.invoke(app, ["run", "--json"]).output)["run_id"]
    wrong = runner.invoke(app, ["ledger", actuals, "--run", ltla])
    assert wrong.exit_code == 1 and "look like codes of level region" in wrong.output, wrong.output
    region = json.loads(runner.invoke(app, ["run", "--level", "region", "--json"]).output)["run_id"]
    right = runner.invoke(app, ["ledger", actuals, "--run", region[:8], "--json"])
    assert '"areas": 9' in right.output, right.output


def test_excel_export_writes_booleans_readable_manifest_and_no_empty_columns(tmp_path, monkeypatch):
    import re
    import zipfile

    monkeypatch.setenv("FUNDFORM_WAREHOUSE", str(tmp_path / "wh.duckdb"))
    run_dir = tmp_path / "run"
    assert runner.invoke(app, ["run", "--out", str(run_dir), "--years", "1", "-q"]).exit_code == 0
    result = runner.invoke(app, ["export", str(run_dir), "--format", "xlsx", "--out", str(tmp_path / "x")])
    assert result.exit_code == 0, result.output
    with zipfile.ZipFile(tmp_path / "x" / "fundform.xlsx") as z:
        strings = z.read("xl/sharedStrings.xml").decode()
        sheets = {n: z.read(n).decode() for n in z.namelist() if n.startswith("xl/worksheets/sheet")}
    assert "wp_general_acute" not in strings  # a version without NHS components: no empty columns
    assert "[{" not in strings and '{"' not in strings  # the manifest is rows, not raw JSON
    assert "inputs.0.file" in strings and "inputs.0.sha256" in strings
    # headings say whom per head counts (this version: residents), and carry the data dictionary's words as notes
    assert "grant_per_head\n(GBP per resident)" in strings and "population\n(residents)" in strings
    assert "GBP per head" not in strings
    with zipfile.ZipFile(tmp_path / "x" / "fundform.xlsx") as z:
        notes = "".join(z.read(n).decode() for n in z.namelist() if "comments" in n)
    assert "today&apos;s funding uprated uniformly to the year" in notes or \
        "today's funding uprated uniformly to the year" in notes
    # reconciliation's `holds` column: Excel booleans (t="b"), not the number 1
    assert any(re.search(r't="b"><v>1</v>', x) for x in sheets.values())


def test_a_version_supplies_its_own_level_and_years(tmp_path, monkeypatch):
    import json

    import polars as pl

    monkeypatch.setenv("FUNDFORM_WAREHOUSE", str(tmp_path / "wh.duckdb"))
    result = runner.invoke(app, ["run", "--formula", "nhs-icb-2024", "--out", str(tmp_path / "nhs"), "--json"])
    assert result.exit_code == 0, result.output
    params = json.loads(result.output)["parameters"]
    assert (params["level"], params["start_year"], params["years"]) == ("icb", "2024/25", 1)
    assert pl.read_parquet(tmp_path / "nhs" / "allocations.parquet").height == 42
    # the policy versions keep theirs: lower tier, 2026/27, five years
    result = runner.invoke(app, ["run", "--out", str(tmp_path / "needs"), "--json"])
    params = json.loads(result.output)["parameters"]
    assert (params["level"], params["start_year"], params["years"]) == ("ltla", "2026/27", 5)
    # a batch run that names no level or years takes the version's too
    (tmp_path / "b.toml").write_text('output = "b"\n[[runs]]\nformula = "nhs-icb-2024"\n')
    batch = runner.invoke(app, ["batch", str(tmp_path / "b.toml"), "--json"])
    assert batch.exit_code == 0, batch.output
    assert json.loads(batch.output)["runs"][0]["run"] == "nhs-icb-2024 [icb]"


def test_batch_runs_are_seen_by_runs_and_report(tmp_path, monkeypatch):
    import json

    monkeypatch.setenv("FUNDFORM_WAREHOUSE", str(tmp_path / "wh.duckdb"))
    monkeypatch.setenv("FUNDFORM_OUT_ROOT", str(tmp_path / "out"))
    (tmp_path / "b.toml").write_text('output = "batch"\n[[runs]]\nformula = "fundform-needs"\nyears = 1\n')
    batch = runner.invoke(app, ["batch", str(tmp_path / "b.toml"), "--json"])
    assert batch.exit_code == 0, batch.output
    run_id = json.loads(batch.output)["runs"][0]["run_id"]
    listed = runner.invoke(app, ["runs", "--json"])
    assert run_id in listed.output
    report = runner.invoke(app, ["report", run_id, "--out", str(tmp_path / "r.html")])
    assert report.exit_code == 0, report.output
    assert (tmp_path / "r.html").exists()


def test_formulas_diff_shows_numbers_first_and_prose_on_request():
    import json

    rows = json.loads(runner.invoke(app, ["formulas", "diff", "fundform-needs", "reform-2017", "--json"]).output)
    kinds = [r["kind"] for r in rows]
    assert kinds == sorted(kinds, key=["number", "setting", "text"].index)  # numbers, then settings, then text
    assert {"path": "need.indicators.deprivation.elasticity.value", "kind": "number", "a": 0.25, "b": 0.35} in rows
    short = runner.invoke(app, ["formulas", "diff", "fundform-needs", "reform-2017"], env={"COLUMNS": "200"}).output
    full = runner.invoke(app, ["formulas", "diff", "fundform-needs", "reform-2017", "--prose"],
                         env={"COLUMNS": "200"}).output
    assert "text difference(s) not shown (--prose)" in short
    assert ".source" not in short and ".source" in full
    assert short.count("\n") < full.count("\n")


def test_computing_commands_share_the_run_options_and_the_versions_defaults(tmp_path, monkeypatch):
    """--set, --index, --config, --level, --start-year and --years mean the same on explain, compare, sweep and
    levels as on run: explain with --set gives the run's own numbers for the same --set."""
    import json

    import polars as pl

    monkeypatch.setenv("FUNDFORM_WAREHOUSE", str(tmp_path / "wh.duckdb"))
    monkeypatch.setenv("FUNDFORM_OUT_ROOT", str(tmp_path / "out"))
    ran = runner.invoke(app, ["run", "--set", "transition.floor=-0.01", "--years", "1", "--out", str(tmp_path / "r"),
                              "-q"])
    assert ran.exit_code == 0, ran.output
    grant = pl.read_parquet(tmp_path / "r" / "allocations.parquet").filter(pl.col("area_code") == "E06000001")["grant"]
    explained = json.loads(runner.invoke(app, ["explain", "E06000001", "--set", "transition.floor=-0.01", "--years",
                                               "1", "--json"]).output)
    assert explained[-1]["cumulative_gbp"] == float(grant[0])
    cfg = tmp_path / "c.toml"
    cfg.write_text('years = 2\nlevel = "region"\n')
    compared = runner.invoke(app, ["compare", "fundform-needs", "reform-2017", "--config", str(cfg), "--json"])
    assert compared.exit_code == 0, compared.output
    table = pl.read_parquet(json.loads(compared.output)["out"])
    assert table["financial_year"].n_unique() == 2 and table["area_code"].n_unique() == 9
    levels = runner.invoke(app, ["levels", "E47000001", "--years", "2", "--json"])
    assert levels.exit_code == 0 and len(json.loads(levels.output)["years"]) == 2
    swept = runner.invoke(app, ["sweep", "--param", "transition.floor=-0.01,0", "--years", "1", "--set",
                                "control_total.real_growth=0.01", "--json"])
    assert swept.exit_code == 0, swept.output
    for cmd in (["report", str(tmp_path / "r"), "--json"], ["export", str(tmp_path / "r"), "--format", "csv",
                                                           "--json", "--out", str(tmp_path / "e")]):
        result = runner.invoke(app, cmd)
        assert result.exit_code == 0 and json.loads(result.output), result.output
    quiet = runner.invoke(app, ["export", str(tmp_path / "r"), "--format", "parquet", "-q", "--out",
                                str(tmp_path / "e2")])
    assert quiet.exit_code == 0 and quiet.output == ""


def test_long_work_prints_no_progress_when_piped(tmp_path, monkeypatch):
    """CliRunner's output is not a terminal: a batch prints its result table and nothing of a progress bar."""
    monkeypatch.setenv("FUNDFORM_WAREHOUSE", str(tmp_path / "wh.duckdb"))
    (tmp_path / "b.toml").write_text('output = "b"\n[[runs]]\nformula = "fundform-needs"\nyears = 1\n')
    result = runner.invoke(app, ["batch", str(tmp_path / "b.toml")])
    assert result.exit_code == 0, result.output
    assert "1 done" in result.output and "━" not in result.output.split("batch")[0]
    assert "running fundform-needs" not in result.output


def test_progress_bar_draws_on_a_terminal(capsys):
    """On a terminal (forced here) the bar is shown while work runs, and cleared afterwards."""
    import io

    from rich.console import Console

    import fundform.interfaces.cli.common as cli

    buf = io.StringIO()
    saved = cli.err
    cli.err = Console(file=buf, force_terminal=True, width=100)
    try:
        with cli.progress_bar("batch", silent=False) as bar:
            bar("running one", 1, 3)
            cli.err.file.flush()
            drawn = buf.getvalue()
    finally:
        cli.err = saved
    assert "running one" in drawn and "1/3" in drawn


def test_sweep_prints_the_range_of_grants_as_its_file_holds_it(tmp_path, monkeypatch):
    monkeypatch.setenv("FUNDFORM_OUT_ROOT", str(tmp_path / "out"))
    r = runner.invoke(app, ["sweep", "--param", "transition.floor=-0.03,0", "--years", "1", "--level", "region",
                            "--out", str(tmp_path / "s")])
    assert r.exit_code == 0, r.output
    assert "Range of grants across the scenarios, 2026/27 (cash)" in r.output
    stats = pl.read_parquet(tmp_path / "s" / "sweep.parquet")
    widest = stats.with_columns(spread=(pl.col("grant_p95") - pl.col("grant_p5")) / pl.col("grant_median").abs()
                                ).sort("spread", descending=True).row(0, named=True)
    # the first row printed is the area whose grant varies most, with its lowest and highest grant (GBP m)
    line = next(ln for ln in r.output.splitlines() if widest["area_code"] in ln)
    assert f"£{widest['grant_min'] / 1e6:,.1f}m" in line and f"£{widest['grant_max'] / 1e6:,.1f}m" in line


def _fundform(*args: str, env=None, stdin_pipe_to: str | None = None) -> subprocess.CompletedProcess:
    """The installed command, in a process of its own (what a person types), optionally piped into another."""
    cmd = " ".join(shlex.quote(a) for a in [sys.executable, "-m", "fundform.interfaces.cli", *args])
    if stdin_pipe_to:
        cmd = f"set -o pipefail; {cmd} | {stdin_pipe_to}"
    return subprocess.run(["bash", "-c", cmd], capture_output=True, text=True, env={**os.environ, **(env or {})})


def test_debug_is_taken_after_the_command_too(tmp_path):
    r = _fundform("run", "--years", "1", "--level", "region", "--no-record", "-q", "--debug", "--out",
                  str(tmp_path / "r"))
    assert r.returncode == 0, r.stderr
    bad = _fundform("explain", "Nowhere-at-all", "--years", "1", "--debug")
    assert bad.returncode == 1 and "No such option" not in bad.stderr and "no area" in bad.stderr


def test_a_closed_pipe_ends_quietly_with_exit_0(tmp_path):
    r = _fundform("formulas", "show", "fundform-needs", stdin_pipe_to="head -1")
    assert r.returncode == 0 and r.stderr == "", r.stderr
    assert r.stdout.startswith("fundform-needs")


def test_names_match_without_punctuation_and_a_misspelling_gets_did_you_mean():
    ok = runner.invoke(app, ["explain", "St Helens", "--years", "1", "--json"])
    assert ok.exit_code == 0 and json.loads(ok.output)[0]["area_name"] == "St. Helens"
    miss = runner.invoke(app, ["explain", "Hartlpool", "--years", "1"])
    assert miss.exit_code == 1 and "did you mean Hartlepool (E06000001)" in miss.output


def test_help_shows_no_type_for_a_flag():
    for cmd in (["--help"], ["run", "--help"], ["compare", "--help"], ["formulas", "show", "--help"]):
        r = runner.invoke(app, cmd)
        assert r.exit_code == 0 and "<bool>" not in r.output, cmd


def test_formulas_show_year_gives_the_values_in_force_and_keys_are_never_broken(tmp_path):
    early = runner.invoke(app, ["formulas", "show", "nhs-icb-2025", "--year", "2023/24"], env={"COLUMNS": "80"})
    late = runner.invoke(app, ["formulas", "show", "nhs-icb-2025", "--year", "2025/26"], env={"COLUMNS": "80"})
    assert early.exit_code == late.exit_code == 0
    gain = lambda out: next(ln for ln in out.splitlines() if "transition.max_gain " in ln)
    assert "0.002" in gain(early.output) and "0.005" in gain(late.output)
    assert "dated sections of 2024/25, 2025/26 applied" in late.output
    # every key printed whole on one line (a key is never broken mid-word)
    from fundform.formula.registry import load_formula
    from fundform.formula.spec import iter_quantities

    for path, _ in iter_quantities(load_formula("nhs-icb-2025").spec):
        assert path in late.output, path
    bad = runner.invoke(app, ["formulas", "show", "nhs-icb-2025", "--year", "2030/31"])
    assert bad.exit_code == 2 and "effective for" in bad.output
    scenario = tmp_path / "s.toml"
    scenario.write_text('extends = "fundform-needs"\ntitle = "Deprivation counts more"\n'
                        'need.indicators.deprivation.elasticity = 0.35\n')
    shown = runner.invoke(app, ["formulas", "show", str(scenario)])
    assert "Deprivation counts more" in shown.output and "0.25 -> 0.35" in shown.output


def test_formulas_diff_prints_numbers_not_dicts_and_names_what_a_version_lacks():
    r = runner.invoke(app, ["formulas", "diff", "fundform-needs", "hdc-2021"])
    assert r.exit_code == 0 and "{'" not in r.output and "[{" not in r.output
    assert "(not in this version)" in r.output
    line = next(ln for ln in r.output.splitlines() if "streams.adult_social_care.need.age_cost_curve.bands.85-90" in ln)
    assert "(not in this version)" in line and "35" in line


def test_compare_shares_separates_the_split_from_the_size_of_the_pot(tmp_path):
    """fundform-needs deducts local tax and reform-2017 does not: in cash every area gains; split alone, gains
    equal losses to the penny and both sides are counted."""
    out = tmp_path / "c.parquet"
    cash = runner.invoke(app, ["compare", "fundform-needs", "reform-2017", "--years", "1", "--json", "--out",
                               str(out)])
    split = runner.invoke(app, ["compare", "fundform-needs", "reform-2017", "--years", "1", "--shares", "--json",
                                "--out", str(tmp_path / "s.parquet")])
    c, s = json.loads(cash.output)["summary"][0], json.loads(split.output)["summary"][0]
    assert c["losers"] == 0 and c["winners"] == 296
    assert s["winners"] > 50 and s["losers"] > 50 and s["gains"] == s["losses"] and s["change_in_total"] == 0
    t = pl.read_parquet(out)
    assert t["grant_b_at_a_total"].sum() == t["grant_a"].sum() and t["change_in_split"].sum() == 0
    np.testing.assert_allclose(t["share_b"].sum(), 1.0, rtol=1e-12)
    # B's split at A's total keeps B's shares to within a penny per area
    assert ((t["grant_b_at_a_total"].cast(pl.Float64) - t["share_b"] * float(t["grant_a"].sum())).abs() <= 0.01).all()


def test_compare_on_merged_icbs_puts_every_icb_in_a_decile_and_counts_registered_patients(tmp_path):
    """NHS England's 2026 round is on ICBs the boundary lookup predates (mergers): each gets its deprivation score
    through the dataset's ICB changes, so the decile table holds all 36 (it left 6 out, unsaid); per head is per
    registered patient; an area's change is in millions, signed (no '£0.000bn')."""
    scenario = tmp_path / "s.toml"
    scenario.write_text('extends = "nhs-icb-2026"\ntransition.max_gain = 0.02\n')
    r = runner.invoke(app, ["compare", "nhs-icb-2026", str(scenario), "--json", "--out", str(tmp_path / "c.pq")])
    assert r.exit_code == 0, r.output
    j = json.loads(r.output)
    last = [d for d in j["deciles"] if d["financial_year"] == "2028/29"]
    assert j["per"] == "per registered patient"
    assert sum(d["areas"] for d in last) == 36 and sorted(d["imd_decile"] for d in last) == list(range(1, 11))
    text = runner.invoke(app, ["compare", "nhs-icb-2026", str(scenario), "--out", str(tmp_path / "c2.pq")]).output
    assert "change per registered patient" in text and "per head" not in text
    movers = [ln for ln in text.splitlines() if " ICB (" in ln]
    assert len(movers) == 10 and all(re.search(r"│ +-?£\d+\.\dm │", ln) for ln in movers), movers


def test_explain_bridges_from_todays_funding_names_growth_and_skips_steps_that_move_nothing():
    r = runner.invoke(app, ["explain", "Lincoln", "--years", "2"])
    assert r.exit_code == 0, r.output
    assert "today's funding, uprated" in r.output and "population growth since" in r.output
    # the bridge starts from today's funding in cash: its first two rows run to the uprated figure
    cash = re.search(r"│ today's funding \(cash\)\s+│\s+(£[\d,.]+) │\s+(£[\d,.]+) │", r.output)
    uprated = re.search(r"│ today's funding, uprated to \S+: the total's growth\s+│\s+(£[\d,.]+) │\s+(£[\d,.]+) │",
                        r.output)
    money = lambda x: round(float(x.replace("£", "").replace(",", "")) * 100)
    assert cash and uprated and money(cash[2]) + money(uprated[1]) == money(uprated[2])
    grants = re.findall(r"│ grant\s+│\s+│ (£[\d,.]+) │", r.output)
    assert len(grants) == 2 and grants[0] == grants[1]  # the bridge lands on the waterfall's grant, to the penny
    nhs = runner.invoke(app, ["explain", "NHS Lincolnshire", "--formula", "nhs-icb-2026"])
    assert nhs.exit_code == 0, nhs.output
    assert "local tax" not in nhs.output and "negative-grant" not in nhs.output  # no local tax in an NHS round
    assert "today's funding (cash)" not in nhs.output  # the 2026/27 round's baseline is not in the data
