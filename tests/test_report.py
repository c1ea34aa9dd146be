"""The HTML report renders in a real browser (headless Chromium), offline, with its charts."""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess

import numpy as np
import pytest
from typer.testing import CliRunner

from cli import app
from tests.conftest import require_chromium

runner = CliRunner()
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    d = tmp_path_factory.mktemp("rep")
    r = runner.invoke(app, ["run", "--out", str(d / "run"), "--report", "--quiet", "--no-record"])
    assert r.exit_code == 0, r.output
    return d / "run" / "report.html"


def test_report_is_self_contained(report):
    text = report.read_text()
    assert len(re.findall(r'<svg class="chart[ "]', text)) == 12  # 6 charts (population by year among them) and 6 maps
    # nothing is fetched: no external scripts, styles, fonts or images
    assert not re.search(r'<(script|link|img)[^>]+(src|href)=', text)
    assert re.findall(r"https?://[^\"' )]+", text) == ["http://www.w3.org/2000/svg"] * 12  # SVG namespaces only
    assert "Open Government Licence" in text and "Open Innovations" in text  # the boundaries' attribution


def test_report_lists_the_numbers_resting_on_assumptions(report):
    import json

    manifest = json.loads((report.parent / "manifest.json").read_text())
    text = report.read_text()
    assert f"{len(manifest['assumptions'])} of the version's numbers are the project's assumptions" in text
    for a in manifest["assumptions"]:
        assert f"<td>{a['path']}</td>" in text


def need_chromium():
    require_chromium(CHROMIUM)


def rendered(page: str, tmp_path, width: int, name: str) -> dict:
    """The page's own checks after loading in headless Chromium at `width` px: the <body> data attributes."""
    dom = subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={tmp_path / name}", "--virtual-time-budget=5000",
                          f"--window-size={width},1400", "--dump-dom", page], capture_output=True, text=True,
                         timeout=120).stdout
    body = re.search(r"<body[^>]*>", dom).group(0)
    attrs = dict(re.findall(r'data-([a-z]+)="([^"]*)"', body))
    if "maps" in attrs:
        attrs["maps"] = json.loads(html.unescape(attrs["maps"]))
    return attrs


@pytest.mark.parametrize("width, columns", [(1280, "2"), (390, "1")])
def test_report_renders_in_headless_chromium(report, tmp_path, width, columns):
    need_chromium()
    page = rendered(report.as_uri(), tmp_path, width, "p")
    assert page.get("rendered") == "ok" and "error" not in page, page  # no script error, every chart drawn
    assert page["charts"] == "12"
    assert page["maps"] == {m: 296 for m in ("m1", "m2", "m3", "m4", "h1", "h2")}  # every area on every map
    assert page["columns"] == columns  # two columns at 1280 px, one on a phone
    assert page["rows"] == "296"
    assert int(page["scrollwidth"]) <= int(page["clientwidth"])  # no horizontal scroll: the table scrolls in a box


def test_the_areas_table_sorts_and_filters(report, tmp_path):
    need_chromium()
    page = rendered(report.as_uri() + "#selftest", tmp_path, 1280, "s")
    assert page["sorted"] == "desc"  # two clicks on "grant per head": descending
    london = sum(1 for name in re.findall(r"<tr><td>([^<]*)<span", report.read_text()) if "lond" in name.lower())
    assert int(page["filtered"]) == london >= 1  # 'lond': the rows naming London only


@pytest.mark.parametrize("level", ["icb", "region", "deal"])
def test_maps_draw_every_area_of_every_level(level, tmp_path):
    need_chromium()
    from fundform.base.paths import PROJECT_ROOT

    arg = f"deal:{PROJECT_ROOT / 'docs' / 'examples' / 'deal-areas-example.csv'}" if level == "deal" else level
    r = runner.invoke(app, ["run", "--level", arg, "--out", str(tmp_path / "run"), "--report", "--quiet",
                            "--no-record", "--years", "1"])
    assert r.exit_code == 0, r.output
    import polars as pl

    n = pl.read_parquet(tmp_path / "run" / "allocations.parquet")["area_code"].n_unique()
    page = rendered((tmp_path / "run" / "report.html").as_uri(), tmp_path, 1280, "l")
    assert page.get("rendered") == "ok", page
    assert set(page["maps"].values()) == {n}, (page["maps"], n)


def test_report_screenshot(report, tmp_path):
    need_chromium()
    shot = tmp_path / "shot.png"
    subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={tmp_path / 'profile2'}", "--window-size=1360,1150",
                    f"--screenshot={shot}", report.as_uri()], capture_output=True, timeout=120)
    assert shot.exists() and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000


@pytest.mark.parametrize("lo, hi", [(-208, 85), (0.68, 1.43), (138.8e9, 167.8e9), (-142.3e6, 414.5e6), (0, 82),
                                    (1600, 3500), (-0.26, 0.48), (0.001, 0.0013)])
def test_chart_ticks_are_round_numbers_inside_the_range(lo, hi):
    from fundform.outputs.charts import nice_ticks

    ticks = nice_ticks(lo, hi)
    assert 3 <= len(ticks) <= 7
    assert ticks.min() >= lo - 1e-12 * abs(lo) and ticks.max() <= hi + 1e-12 * abs(hi)
    step = ticks[1] - ticks[0]
    mantissa = step / 10 ** np.floor(np.log10(step))
    assert any(abs(mantissa - m) < 1e-9 for m in (1, 2, 2.5, 5))
    np.testing.assert_allclose(np.diff(ticks), step)
    if lo < 0 < hi:
        assert 0.0 in ticks


def test_the_report_names_the_areas_held_at_a_floor(report):
    """Not only how many: every area held at a floor in the first and last year, by name, as the run holds them."""
    import polars as pl

    html_text, run_dir = report if isinstance(report, tuple) else (report.read_text(), report.parent)
    a = pl.read_parquet(run_dir / "allocations.parquet")
    for year in (a["financial_year"].min(), a["financial_year"].max()):
        names = sorted(a.filter((pl.col("financial_year") == year) & (pl.col("transition_bound") == "floor"))[
            "area_name"].to_list())
        m = re.search(rf'<p id="held-floor-{year.replace("/", "-")}"><b>Held at a floor in {re.escape(year)} '
                      rf'\((\d+)\):</b> (.*?)\.</p>', html_text)
        assert (m is not None) == bool(names)
        if names:
            assert int(m[1]) == len(names) and html.unescape(m[2]).split(", ") == names


def test_an_nhs_run_summary_speaks_of_allocations_and_convergence(tmp_path):
    r = CliRunner().invoke(app, ["run", "--formula", "nhs-icb-2025-all", "--out", str(tmp_path / "o"), "--no-record"])
    assert r.exit_code == 0, r.output
    text = " ".join(r.output.split())
    assert text.startswith("nhs-icb-2025-all (a scenario of nhs-icb-2025 1.0.0)")
    for words in ("recurrent", "convergence beyond", "(allocation against the baseline grown by base growth)"):
        assert words in text, words  # (table headings wrap inside their cells)
    assert "notional tax" not in text and "today's funding" not in text
