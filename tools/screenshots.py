"""The documentation's screenshots, made again: the explorer and the report, on a desktop and on a phone (390 px).

    .venv/bin/python tools/screenshots.py        # writes docs/explorer.png, explorer-phone.png, report.png,
                                                 # report-phone.png from the bundled data (Debian's chromium)
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    from playwright.sync_api import sync_playwright
    from typer.testing import CliRunner

    from cli import app
    from fundform.base.paths import default_data_dir
    from fundform.interfaces.explorer.engine import Explorer
    from fundform.interfaces.explorer.server import serving

    docs = ROOT / "docs"
    with tempfile.TemporaryDirectory() as tmp:
        r = CliRunner().invoke(app, ["run", "--out", f"{tmp}/run", "--report", "--quiet", "--no-record"])
        assert r.exit_code == 0, r.output
        chromium = shutil.which("chromium") or shutil.which("chromium-browser")
        with serving(Explorer(default_data_dir())) as url, sync_playwright() as p:
            b = p.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-gpu"])
            for name, width, height in (("", 1360, 1150), ("-phone", 390, 844)):
                page = b.new_page(viewport={"width": width, "height": height})
                page.goto(f"{url}#f=fundform-needs&l=ltla&v=need.indicators.deprivation."
                          "elasticity:0.4")
                page.wait_for_selector('body[data-updates="1"]', state="attached", timeout=60_000)
                page.wait_for_selector("body[data-waterfall]", state="attached", timeout=60_000)
                page.screenshot(path=str(docs / f"explorer{name}.png"))
                page.goto(Path(f"{tmp}/run/report.html").as_uri())
                page.wait_for_selector('body[data-rendered="ok"]', state="attached", timeout=60_000)
                page.screenshot(path=str(docs / f"report{name}.png"))
                page.close()
            b.close()
    print("wrote docs/explorer.png, explorer-phone.png, report.png, report-phone.png")


if __name__ == "__main__":
    main()
