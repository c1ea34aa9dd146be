"""The HTML report renders in a real browser (headless Chromium), offline, with its charts."""

from __future__ import annotations

import re
import shutil
import subprocess

import numpy as np
import pytest
from typer.testing import CliRunner

from cli import app

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
    assert len(re.findall(r'<svg class="chart"', text)) == 5
    # nothing is fetched: no external scripts, styles, fonts or images
    assert not re.search(r'<(script|link|img)[^>]+(src|href)=', text)
    assert re.findall(r"https?://[^\"' )]+", text) == ["http://www.w3.org/2000/svg"] * 5  # SVG namespaces only


def test_report_lists_the_numbers_resting_on_assumptions(report):
    import json

    manifest = json.loads((report.parent / "manifest.json").read_text())
    text = report.read_text()
    assert f"{len(manifest['assumptions'])} of the version's numbers are the project's assumptions" in text
    for a in manifest["assumptions"]:
        assert f"<td>{a['path']}</td>" in text


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (.ci/run installs Debian's chromium; it "
                    "could not be installed on this machine)")
def test_report_renders_in_headless_chromium(report, tmp_path):
    dom = subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=5000",
                          "--dump-dom", report.as_uri()], capture_output=True, text=True, timeout=120).stdout
    body = re.search(r"<body[^>]*>", dom).group(0)
    assert 'data-rendered="ok"' in body, body  # the page's own check: 5 charts drawn, no script error
    assert 'data-charts="5"' in body and "data-error" not in body
    shot = tmp_path / "shot.png"
    subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={tmp_path / 'profile2'}", "--window-size=1360,1150",
                    f"--screenshot={shot}", report.as_uri()], capture_output=True, timeout=120)
    assert shot.exists() and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000


@pytest.mark.parametrize("lo, hi", [(-208, 85), (0.68, 1.43), (138.8e9, 167.8e9), (-142.3e6, 414.5e6), (0, 82),
                                    (1600, 3500), (-0.26, 0.48), (0.001, 0.0013)])
def test_chart_ticks_are_round_numbers_inside_the_range(lo, hi):
    from fundform.outputs.report import _nice

    ticks = _nice(lo, hi)
    assert 3 <= len(ticks) <= 7
    assert ticks.min() >= lo - 1e-12 * abs(lo) and ticks.max() <= hi + 1e-12 * abs(hi)
    step = ticks[1] - ticks[0]
    mantissa = step / 10 ** np.floor(np.log10(step))
    assert any(abs(mantissa - m) < 1e-9 for m in (1, 2, 2.5, 5))
    np.testing.assert_allclose(np.diff(ticks), step)
    if lo < 0 < hi:
        assert 0.0 in ticks
