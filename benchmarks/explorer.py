"""The live explorer's speed, as a person sees it: from letting go of a slider to the updated figures drawn on the
page (maps, totals, winners and losers, path, the table of every area: the first frame after they change), in headless Chromium driven by Playwright against `fundform serve` on this
machine, lower-tier level. Also one scenario through the scenario-axis engine in-process (warm), the explorer's
engine alone. Prints JSON; benchmarks/run.py puts it in RESULTS.md.

    .venv/bin/python benchmarks/explorer.py [MOVES]
"""

from __future__ import annotations

import json
import shutil
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SLIDERS = {  # the sliders moved, with the range each is moved over
    "need.indicators.deprivation.elasticity": (0.05, 0.6),
    "need.age_cost_curve.bands.85-90.weight": (4.0, 9.0),
    "transition.gap_closed_per_year": (0.1, 0.6),
    "transition.floor": (-0.02, 0.0),
    "control_total.real_growth": (0.0, 0.04),
    "local_tax.equalisation": (0.3, 1.0),
}


def in_process(n: int = 40) -> dict:
    """One scenario at a time through the sweep engine (S = 1), warm: what each explorer request computes."""
    from fundform.base.paths import default_data_dir
    from fundform.formula.scenario import resolve_formula
    from fundform.inputs.dataset import load_dataset
    from fundform.studies.pipeline import RunParameters
    from fundform.studies.sweeps import run_sweep

    data = load_dataset(default_data_dir())
    formula = resolve_formula("fundform-needs")
    rng = np.random.default_rng(3)
    names = list(SLIDERS)
    times = []
    for i in range(n + 3):
        row = np.array([[rng.uniform(*SLIDERS[k]) for k in names]])
        t = time.perf_counter()
        run_sweep(data, formula, RunParameters(), names, row)
        if i >= 3:  # the first calls derive what the dataset alone gives (need frames...): once per server
            times.append((time.perf_counter() - t) * 1000)
    return {"median_ms": statistics.median(times), "p95_ms": float(np.percentile(times, 95))}


def browser(moves: int = 40) -> dict:
    from playwright.sync_api import sync_playwright

    from fundform.base.paths import default_data_dir
    from fundform.interfaces.explorer.engine import Explorer
    from fundform.interfaces.explorer.server import serving

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    rng = np.random.default_rng(5)
    page_ms, script_ms, engine_ms = [], [], []
    with serving(Explorer(default_data_dir())) as url, sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-gpu"])
        page = b.new_page(viewport={"width": 1400, "height": 1100})
        page.goto(url)
        page.wait_for_selector('body[data-updates="1"]', state="attached", timeout=60_000)
        move = "(e, v) => { e.value = v; e.dispatchEvent(new Event('input')); e.dispatchEvent(new Event('change')); }"
        for i in range(moves):
            path = list(SLIDERS)[i % len(SLIDERS)]
            waterfalls = page.get_attribute("body", "data-waterfalls") or "0"
            value = f"{rng.uniform(*SLIDERS[path]):.4f}"
            page.locator(f'input[data-path="{path}"]').evaluate(move, value)
            page.wait_for_selector(f'body[data-updates="{i + 2}"]', state="attached", timeout=60_000)
            page_ms.append(float(page.get_attribute("body", "data-painted-ms")))
            script_ms.append(float(page.get_attribute("body", "data-last-ms")))
            engine_ms.append(float(page.get_attribute("body", "data-engine-ms")))
            # a person looks at the figures before the next move: the waterfall (a whole run) arrives meanwhile
            page.wait_for_selector(f'body:not([data-waterfalls="{waterfalls}"])', state="attached", timeout=60_000)
        b.close()
    return {"moves": moves, "p50_ms": statistics.median(page_ms), "p95_ms": float(np.percentile(page_ms, 95)),
            "script_p95_ms": float(np.percentile(script_ms, 95)),
            "engine_p50_ms": statistics.median(engine_ms), "engine_p95_ms": float(np.percentile(engine_ms, 95))}


def under_load(moves: int) -> dict:
    """The same moves while another process keeps one of the machine's cores busy (issue 23's condition)."""
    import subprocess

    burner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        return browser(moves)
    finally:
        burner.kill()
        burner.wait()


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 40
    print(json.dumps({"in_process": in_process(), "browser": browser(n), "loaded": under_load(n)}))
