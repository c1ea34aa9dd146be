"""fundform's benchmarks, side by side in one run (`make bench`); results to benchmarks/RESULTS.md.

W1  `fundform run` on the bundled data: whole process, cold (interpreter start included).
W2  the small-area national run, 6.1M LSOA x age x sex rows to five-year target allocations: fundform's lazy plan,
    plain pandas, DuckDB SQL, and the floor (reading the needed columns). Each in its own process, libraries loaded
    before the clock; the three implementations' numbers are checked equal. Also `fundform run` on that data.
W3  a sweep of 10,000 scenarios x 296 areas x 5 years (whole process), against the same scenarios run one by one
    through `fundform run`'s code path (timed on a sample and extrapolated, stated as such).
W4  the person-level run: 57.7M person rows to five-year grants, whole process, wall time and peak memory.
B   a batch of every shipped version at every level, rerun with nothing changed.
E   the live explorer (`fundform serve`): slider release to updated figures in headless Chromium, lower-tier level;
    and one scenario through the scenario-axis engine in-process, warm (benchmarks/explorer.py).

Timings are medians of repeated runs on this shared 2-core machine; peak memory is the process's maximum resident
set. Needs `make bench-data` first (the generated inputs are not committed).
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PY = sys.executable
FUNDFORM = [PY, str(ROOT / "cli.py")]
DATA = HERE / "data"
REPEATS = int(os.environ.get("FUNDFORM_BENCH_REPEATS", "5"))
# W1, W2's and W4's whole runs read and check every input (the checked-input cache off): what a first run costs;
# the C rows measure the everyday commands with the cache cold and warm
COLD = {"FUNDFORM_NO_CACHE": "1"}
W2_ROUNDS = 9  # W2's runs are short and pandas' times vary run to run (0.5-0.8 s seen): more rounds, interleaved


def timed(cmd: list[str], env: dict | None = None) -> tuple[float, int, str]:
    """Wall seconds, peak RSS (KB) and stdout of one fresh process."""
    wrapper = ("import json,resource,subprocess,sys,time;t=time.perf_counter();"
               "p=subprocess.run(sys.argv[1:],capture_output=True,text=True);w=time.perf_counter()-t;"
               "print(json.dumps({'wall':w,'kb':resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss,"
               "'rc':p.returncode,'out':p.stdout,'err':p.stderr[-2000:]}))")
    r = json.loads(subprocess.run([PY, "-c", wrapper, *cmd], capture_output=True, text=True,
                                  env={**os.environ, **(env or {})}).stdout)
    if r["rc"] != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed: {r['err']}")
    return r["wall"], r["kb"], r["out"]


def median_of(cmd, n=REPEATS, env=None):
    runs = [timed(cmd, env) for _ in range(n)]
    return statistics.median(r[0] for r in runs), max(r[1] for r in runs), runs[-1][2]


def w1() -> dict:
    wall, kb, _ = median_of([*FUNDFORM, "run", "--quiet", "--no-record", "--out", "/tmp/fundform-bench-w1"],
                            env=COLD)
    return {"wall": wall, "peak_mb": kb / 1024}


def w2() -> dict:
    lsoa = DATA / "lsoa"
    out = {}
    impls = ("fundform", "pandas", "duckdb", "floor")
    runs: dict[str, list] = {i: [] for i in impls}
    for _ in range(W2_ROUNDS):  # round-robin, so a noisy moment on the shared machine hits every implementation
        for impl in impls:
            _, kb, stdout = timed([PY, str(HERE / "w2_impls.py"), impl, str(lsoa)])
            runs[impl].append((json.loads(stdout)["seconds"], kb))
    for impl, rs in runs.items():
        secs = [r[0] for r in rs]
        out[impl] = {"seconds": statistics.median(secs), "min": min(secs), "max": max(secs),
                     "peak_mb": max(r[1] for r in rs) / 1024}
    wall, kb, _ = median_of([*FUNDFORM, "run", "--data", str(lsoa), "--quiet", "--no-record", "--out",
                             "/tmp/fundform-bench-w2"], n=3, env=COLD)
    out["fundform run (whole process)"] = {"seconds": wall, "peak_mb": kb / 1024}
    out["equal"] = check_w2_equal(lsoa)
    return out


def check_w2_equal(lsoa: Path) -> str:
    sys.path.insert(0, str(HERE))
    sys.path.insert(0, str(ROOT))
    import numpy as np
    import polars as pl
    import w2_impls

    f = w2_impls.run_fundform(lsoa).sort("area_code", "year")
    p = pl.from_pandas(w2_impls.run_pandas(lsoa)).sort("area_code", "year")
    d = w2_impls.run_duckdb(lsoa).sort("area_code", "year")
    share = max(np.abs(f["target_share"].to_numpy() - x["target_share"].to_numpy()).max() for x in (p, d))
    money = max(np.abs(f["target_allocation"].to_numpy() - x["target_allocation"].to_numpy()).max() for x in (p, d))
    assert share < 1e-12 and money < 0.01, (share, money)
    return f"target shares within {share:.1e}, target allocations within GBP {money:.4f}"


def w3() -> dict:
    params = ["--param", "need.indicators.deprivation.elasticity=0.1:0.4", "--param", "transition.floor=-0.02:0.01",
              "--param", "control_total.real_growth=0.0:0.03", "--param", "local_tax.equalisation=0.5:1.0"]
    wall, kb, _ = median_of([*FUNDFORM, "sweep", *params, "--draws", "10000", "--quiet", "--out",
                             "/tmp/fundform-bench-w3"], n=3)
    # the same kind of scenario through `fundform run`'s code path, one at a time: a sample, extrapolated
    sample = 20
    script = (f"import sys,time;sys.path.insert(0,{str(ROOT)!r});import numpy as np;"
              "from fundform.inputs.dataset import load_dataset;from fundform.formula.scenario import resolve_formula;"
              "from fundform.studies.pipeline import compute,RunParameters;from fundform.base.paths import default_data_dir;"
              "d=load_dataset(default_data_dir());r=np.random.default_rng(1);t=time.perf_counter()\n"
              f"for i in range({sample}):\n"
              " s=[f'need.indicators.deprivation.elasticity={r.uniform(.1,.4)}',f'transition.floor={r.uniform(-.02,.01)}',"
              "f'control_total.real_growth={r.uniform(0,.03)}',f'local_tax.equalisation={r.uniform(.5,1)}']\n"
              " compute(d,resolve_formula('fundform-needs',s),RunParameters())\n"
              f"print((time.perf_counter()-t)/{sample})")
    per_compute = statistics.median(float(timed([PY, "-c", script])[2]) for _ in range(3))
    per_process, _, _ = median_of([*FUNDFORM, "run", "--quiet", "--no-record", "--set",
                                   "need.indicators.deprivation.elasticity=0.3", "--out", "/tmp/fundform-bench-w3r"],
                                  n=3)
    # a version in four streams (hdc-2021): four needs, growth links and transitions per scenario
    streams_wall, streams_kb, _ = median_of([*FUNDFORM, "sweep", "--formula", "hdc-2021", *params, "--draws", "10000",
                                             "--quiet", "--out", "/tmp/fundform-bench-w3s"], n=3)
    # 100,000 scenarios: settled in chunks, the grants spilled to disk a chunk at a time; memory bounded by a chunk
    big_wall, big_kb, _ = median_of([*FUNDFORM, "sweep", *params, "--draws", "100000", "--quiet", "--out",
                                     "/tmp/fundform-bench-w3b"], n=1)
    return {"sweep_wall": wall, "sweep_peak_mb": kb / 1024, "per_scenario_compute": per_compute,
            "big_wall": big_wall, "big_peak_mb": big_kb / 1024,
            "streams_wall": streams_wall, "streams_peak_mb": streams_kb / 1024,
            "per_scenario_process": per_process,
            "one_by_one_compute_10k": per_compute * 10_000, "one_by_one_process_10k": per_process * 10_000}


def design() -> dict:
    """D: a policy design over four free numbers, 131,072 Sobol candidates and the version's own, then differential
    evolution (at most 8,192 more), each settled on the scenario axis, the choice verified by an exact run."""
    wall, kb, out = median_of([*FUNDFORM, "design", str(ROOT / "benchmarks" / "design-100k.toml"), "--json",
                               "--out", "/tmp/fundform-bench-design"], n=1)
    n = json.loads(out)["candidates"]
    # the polish to a stated tolerance beside the search without it (issue 37), side by side in one run: a
    # two-number question (the robust design's, on the central estimate)
    import re
    import tempfile

    text = (ROOT / "formulas" / "designs" / "needs-robust-pace.toml").read_text()
    central = re.sub(r"\[uncertainty\]\n(?:[^\[\n][^\n]*\n)*", "", text)  # the same question, central estimate
    times = {}
    for tol in (0.0, 0.0001):
        f = Path(tempfile.mkdtemp()) / "d.toml"
        f.write_text(central.replace("version =", f"tolerance = {tol}\nversion =", 1))
        w, _, o = median_of([*FUNDFORM, "design", str(f), "--json", "--out", str(f.parent / "o")], n=3)
        times[tol] = (w, json.loads(o)["chosen"]["objectives"][0]["value"], json.loads(o)["candidates"])
    return {"wall": wall, "peak_mb": kb / 1024, "candidates": n, "per_second": n / wall, "polish": times}


def uncertainty() -> dict:
    """U: 1,000 draws of the inputs beside the default run (296 areas, 5 years), and a robust design over two free
    numbers, 320 candidates each over 100 draws, the choice run exactly over every draw."""
    wall, kb, _ = median_of([*FUNDFORM, "run", "--uncertainty", str(ROOT / "formulas" / "uncertainty" /
                                                                     "draws-1000.toml"), "--quiet", "--no-record",
                             "--out", "/tmp/fundform-bench-u"], n=3)
    dwall, dkb, _ = median_of([*FUNDFORM, "design", str(ROOT / "formulas" / "designs" / "needs-robust-pace.toml"),
                               "--json", "--out", "/tmp/fundform-bench-ud"], n=1)
    # the same 1,000 draws with population drawn per authority alone (structure = "independent"), side by side:
    # what the regional component costs
    import tempfile

    ind = Path(tempfile.mkdtemp()) / "independent.toml"
    ind.write_text((ROOT / "formulas" / "uncertainty" / "draws-1000.toml").read_text().replace(
        'variant = "snpp2018"', 'variant = "snpp2018"\nstructure = "independent"', 1))
    iwall, ikb, _ = median_of([*FUNDFORM, "run", "--uncertainty", str(ind), "--quiet", "--no-record", "--out",
                               "/tmp/fundform-bench-ui"], n=3)
    # the documented maximum: 100,000 draws stream through spill files, one year of one figure in memory at a time
    bwall, bkb, _ = median_of([*FUNDFORM, "run", "--uncertainty", str(ROOT / "benchmarks" / "draws-100k.toml"),
                               "--quiet", "--no-record", "--out", "/tmp/fundform-bench-u100k"], n=1)
    return {"wall": wall, "peak_mb": kb / 1024, "design_wall": dwall, "design_peak_mb": dkb / 1024,
            "big_wall": bwall, "big_peak_mb": bkb / 1024, "independent_wall": iwall, "independent_peak_mb": ikb / 1024}


def polish_rows(rd: dict) -> list[str]:
    """The design polished to its stated tolerance beside the same search without the polish (median of 3 each)."""
    if "polish" not in rd:
        return []
    (w0, v0, n0), (w1, v1, n1) = rd["polish"][0.0], rd["polish"][0.0001]
    return [f"| D the same question to a stated tolerance: the highest floor, 2 free numbers (needs-robust-pace on "
            f"the central estimate), polished to 0.01% of each range | wall, whole process, beside no polish | "
            f"{w1:.1f} s ({n1:,} candidates; floor {v1:.6g}) against {w0:.1f} s ({n0:,}; floor {v0:.6g}): "
            f"{w1 / w0:.2f}x | < 60 s | {verdict(w1 < 60)} |"]


def uncertainty_rows(ru: dict) -> list[str]:
    return [f"| U `fundform run --uncertainty`, 1,000 draws x 296 areas x 5 years | wall, whole process (the run "
            f"and its draws) | {ru['wall']:.2f} s ({ru['peak_mb']:.0f} MB peak) | < 10 s, < 2 GiB | "
            f"{verdict(ru['wall'] < 10 and ru['peak_mb'] < 2048)} |",
            *([f"| U the same 1,000 draws, population correlated by region beside drawn per authority alone | wall, "
               f"whole process, side by side | {ru['wall']:.2f} s against {ru['independent_wall']:.2f} s "
               f"({ru['wall'] / ru['independent_wall']:.2f}x; {ru['independent_peak_mb']:.0f} MB peak) | correlated "
               f"< 10 s | {verdict(ru['wall'] < 10)} |"] if "independent_wall" in ru else []),
            f"| U `fundform run --uncertainty`, 100,000 draws x 296 areas x 5 years (the documented maximum) | peak "
            f"memory, whole process | {ru['big_peak_mb']:.0f} MB peak ({ru['big_wall']:.0f} s) | < 2 GiB | "
            f"{verdict(ru['big_peak_mb'] < 2048)} |",
            f"| U robust design, 2 free numbers, 320 candidates x 100 draws, verified over every draw | wall, whole "
            f"process | {ru['design_wall']:.1f} s ({ru['design_peak_mb']:.0f} MB peak) | < 60 s | "
            f"{verdict(ru['design_wall'] < 60)} |"]


def w4() -> dict:
    wall, kb, _ = median_of([*FUNDFORM, "run", "--data", str(DATA / "persons"), "--quiet", "--no-record", "--out",
                             "/tmp/fundform-bench-w4"], n=3, env=COLD)
    return {"wall": wall, "peak_mb": kb / 1024}


def commands() -> dict:
    """Issue 22's everyday commands, whole process, median of REPEATS with the spread: with the checked-input cache
    cold (--no-cache / FUNDFORM_NO_CACHE) and warm, and the warm Python API in one process."""
    root = Path("/tmp/fundform-bench-cmd")
    shutil.rmtree(root, ignore_errors=True)
    env = {"FUNDFORM_OUT_ROOT": str(root), "FUNDFORM_WAREHOUSE": str(root / "wh.duckdb")}
    cold = {**env, "FUNDFORM_NO_CACHE": "1"}

    def spread(cmd, e, n=REPEATS):
        runs = [timed(cmd, e)[0] for _ in range(n)]
        return {"median": statistics.median(runs), "min": min(runs), "max": max(runs)}

    out = {
        "version": spread([*FUNDFORM, "--version"], env),
        "show": spread([*FUNDFORM, "formulas", "show", "fundform-needs"], env),
        "run_cold": spread([*FUNDFORM, "run", "-q", "--no-record", "--out", str(root / "r")], cold),
    }
    timed([*FUNDFORM, "run", "-q", "--no-record", "--out", str(root / "r")], env)  # fill the cache
    out["run_warm"] = spread([*FUNDFORM, "run", "-q", "--no-record", "--out", str(root / "r")], env)
    out["compare_cold"] = spread([*FUNDFORM, "compare", "fundform-needs", "reform-2017", "-q"], cold)
    out["compare_warm"] = spread([*FUNDFORM, "compare", "fundform-needs", "reform-2017", "-q"], env)
    out["explain_cold"] = spread([*FUNDFORM, "explain", "Lincoln"], cold)
    out["explain_warm"] = spread([*FUNDFORM, "explain", "Lincoln"], env)
    run_dir = root / "r"
    out["report"] = spread([*FUNDFORM, "report", str(run_dir), "--out", str(root / "report.html")], env)
    out["xlsx"] = spread([*FUNDFORM, "export", str(run_dir), "--format", "xlsx", "--out", str(root / "x")], env)
    script = ("import json,statistics,time,fundform;m=fundform.load();m.run();ts=[]\n"
              "for i in range(21):\n t=time.perf_counter();m.run(set={'transition.floor':-0.001*i});"
              "ts.append(time.perf_counter()-t)\n"
              "print(json.dumps({'median':statistics.median(ts),'min':min(ts),'max':max(ts)}))")
    out["api_warm"] = json.loads(timed([PY, "-c", script], env)[2])
    return out


def batch_rerun() -> dict:
    spec = ROOT / "docs" / "examples" / "batch-all-versions.toml"
    timed([*FUNDFORM, "batch", str(spec), "--quiet"])  # make sure every run is complete
    wall, kb, _ = median_of([*FUNDFORM, "batch", str(spec), "--quiet"])
    return {"wall": wall, "peak_mb": kb / 1024}


def explorer() -> dict:
    wall, kb, out = timed([PY, str(HERE / "explorer.py"), "40"])
    return json.loads(out)


def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    mem = int(next(line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines()
                   if line.startswith("MemTotal"))) / 1024 / 1024
    vers = ", ".join(f"{p} {version(p)}" for p in ("polars", "duckdb", "pandas", "numpy", "pyarrow"))
    return (f"{os.cpu_count()} cores ({cpu}), {mem:.0f} GiB; Python {platform.python_version()}; {vers}; "
            f"{datetime.now(UTC).date()}")


def verdict(ok: bool) -> str:
    return "met" if ok else "**missed**"


def main() -> int:
    if not (DATA / "lsoa" / "population.parquet").exists() or not (DATA / "persons" / "population").exists():
        print("run `make bench-data` first", file=sys.stderr)
        return 1
    t0 = time.perf_counter()
    r1, r2, r3, r4, rb, re_ = w1(), w2(), w3(), w4(), batch_rerun(), explorer()
    rd = design()
    ru = uncertainty()
    rc = commands()
    cell = lambda k, unit="s": (f"{rc[k]['median']:.2f} {unit} [{rc[k]['min']:.2f}-{rc[k]['max']:.2f}]"
                                if unit == "s" else f"{rc[k]['median'] * 1000:.0f} ms [{rc[k]['min'] * 1000:.0f}-"
                                f"{rc[k]['max'] * 1000:.0f}]")
    eb, ei, el_ = re_["browser"], re_["in_process"], re_["loaded"]
    f, p, d, fl = (r2[k]["seconds"] for k in ("fundform", "pandas", "duckdb", "floor"))
    span = lambda k: f"[{r2[k]['min']:.3f}-{r2[k]['max']:.3f}]"

    lines = [
        "# Benchmarks", "",
        f"Machine: {machine()}. Medians of {REPEATS} runs (3 for the longer ones; W2: {W2_ROUNDS} rounds of its four "
        "implementations in turn, with the range); each in a fresh process. "
        "Written by `make bench` (benchmarks/run.py); rerun to refresh.", "",
        "| workload | measure | result | target | |", "|---|---|---|---|---|",
        f"| W1 `fundform run`, bundled data | wall, whole process, cold | {r1['wall']:.2f} s "
        f"({r1['peak_mb']:.0f} MB peak) | < 1.0 s | {verdict(r1['wall'] < 1.0)} |",
        f"| W2 small area, 6.1M rows: fundform | in-process, libraries loaded | {f:.3f} s {span('fundform')} "
        f"({r2['fundform']['peak_mb']:.0f} MB peak) | | |",
        f"| W2 pandas | same | {p:.3f} s {span('pandas')} ({r2['pandas']['peak_mb']:.0f} MB) | fundform >= 4x faster | "
        f"{verdict(p / f >= 4)} ({p / f:.1f}x) |",
        f"| W2 DuckDB SQL | same | {d:.3f} s {span('duckdb')} ({r2['duckdb']['peak_mb']:.0f} MB) | fundform no slower | "
        f"{verdict(f <= d)} ({d / f:.2f}x) |",
        f"| W2 read floor (3 columns) | same | {fl:.3f} s {span('floor')} ({r2['floor']['peak_mb']:.0f} MB) | "
        f"fundform within 1.5x | "
        f"{verdict(f <= 1.5 * fl)} ({f / fl:.2f}x) |",
        f"| W2 `fundform run` on the small-area data | wall, whole process (validation, settlement, outputs) | "
        f"{r2['fundform run (whole process)']['seconds']:.2f} s "
        f"({r2['fundform run (whole process)']['peak_mb']:.0f} MB peak) | peak < 2 GiB | "
        f"{verdict(r2['fundform run (whole process)']['peak_mb'] < 2048)} |",
        f"| W3 sweep, 10,000 scenarios x 296 areas x 5 years | wall, whole process | {r3['sweep_wall']:.2f} s "
        f"({r3['sweep_peak_mb']:.0f} MB peak) | < 5 s | {verdict(r3['sweep_wall'] < 5)} |",
        f"| W3 the same one by one, `compute()` per scenario | extrapolated from 20 | "
        f"{r3['one_by_one_compute_10k']:.0f} s ({r3['per_scenario_compute'] * 1000:.0f} ms each) | sweep >= 100x faster "
        f"| {verdict(r3['one_by_one_compute_10k'] / r3['sweep_wall'] >= 100)} "
        f"({r3['one_by_one_compute_10k'] / r3['sweep_wall']:.0f}x) |",
        f"| W3 the same one by one, `fundform run` processes | extrapolated from 3 | "
        f"{r3['one_by_one_process_10k']:.0f} s ({r3['per_scenario_process']:.2f} s each) | | "
        f"({r3['one_by_one_process_10k'] / r3['sweep_wall']:.0f}x) |",
        f"| W3 the same sweep of hdc-2021 (four streams) | wall, whole process | {r3['streams_wall']:.2f} s "
        f"({r3['streams_peak_mb']:.0f} MB peak) | < 10 s | {verdict(r3['streams_wall'] < 10)} |",
        f"| W3 100,000 scenarios of fundform-needs, in chunks | wall, whole process | {r3['big_wall']:.1f} s "
        f"({r3['big_peak_mb']:.0f} MB peak) | peak < 2 GiB | {verdict(r3['big_peak_mb'] < 2048)} |",
        f"| D design, 4 free numbers, {rd['candidates']:,} candidates of fundform-needs | wall, whole process | "
        f"{rd['wall']:.1f} s ({rd['peak_mb']:.0f} MB peak; {rd['per_second']:,.0f} candidates/s, the 100,000-scenario "
        f"sweep {100_000 / r3['big_wall']:,.0f} scenarios/s) | < 60 s, < 2 GiB | "
        f"{verdict(rd['wall'] < 60 and rd['peak_mb'] < 2048)} |",
        *polish_rows(rd),
        *uncertainty_rows(ru),
        f"| C `fundform --version` | wall, whole process, median [range] | {cell('version')} | < 0.2 s | "
        f"{verdict(rc['version']['median'] < 0.2)} |",
        f"| C `fundform formulas show fundform-needs` | same | {cell('show')} | < 0.4 s | "
        f"{verdict(rc['show']['median'] < 0.4)} |",
        f"| C `fundform run`, checked-input cache cold (`--no-cache`) | same | {cell('run_cold')} | < 3 s first run | "
        f"{verdict(rc['run_cold']['median'] < 3)} |",
        f"| C `fundform run`, cache warm | same | {cell('run_warm')} | < 1.0 s | "
        f"{verdict(rc['run_warm']['median'] < 1.0)} |",
        f"| C `fundform compare fundform-needs reform-2017`, cache cold | same | {cell('compare_cold')} | < 2 s | "
        f"{verdict(rc['compare_cold']['median'] < 2)} |",
        f"| C the same, cache warm | same | {cell('compare_warm')} | < 2 s | {verdict(rc['compare_warm']['median'] < 2)} |",
        f"| C `fundform explain Lincoln`, cache cold, no run written | same | {cell('explain_cold')} | < 1.5 s | "
        f"{verdict(rc['explain_cold']['median'] < 1.5)} |",
        f"| C the same after `fundform run` wrote the run (read back) | same | {cell('explain_warm')} | < 1.5 s | "
        f"{verdict(rc['explain_warm']['median'] < 1.5)} |",
        f"| C `fundform report RUN` | same | {cell('report')} | < 1.5 s | {verdict(rc['report']['median'] < 1.5)} |",
        f"| C `fundform export --format xlsx RUN` | same | {cell('xlsx')} | < 2 s | {verdict(rc['xlsx']['median'] < 2)} |",
        f"| C warm API: `fundform.load()` then `run(set=...)`, fundform-needs, every table | in-process, 21 variants | "
        f"{cell('api_warm', 'ms')} | < 50 ms median | {verdict(rc['api_warm']['median'] < 0.05)} |",
        f"| W4 person level, 57.7M rows | wall, whole process | {r4['wall']:.2f} s ({r4['peak_mb']:.0f} MB peak) | "
        f"< 60 s, < 4 GiB | {verdict(r4['wall'] < 60 and r4['peak_mb'] < 4096)} |",
        f"| B batch of every version x level, nothing changed | wall, whole process | {rb['wall']:.2f} s | < 2 s | "
        f"{verdict(rb['wall'] < 2)} |",
        f"| E explorer: slider release to updated figures drawn, 296 areas | headless Chromium, {eb['moves']} moves of "
        f"six sliders | p50 {eb['p50_ms']:.0f} ms, p95 {eb['p95_ms']:.0f} ms (script done p95 "
        f"{eb['script_p95_ms']:.0f} ms, server p95 {eb['engine_p95_ms']:.0f} ms) | "
        f"p95 < 150 ms | {verdict(eb['p95_ms'] < 150)} |",
        f"| E the same while another process keeps one core busy | headless Chromium, {el_['moves']} moves | p50 "
        f"{el_['p50_ms']:.0f} ms, p95 {el_['p95_ms']:.0f} ms (script done p95 {el_['script_p95_ms']:.0f} ms, server p95 "
        f"{el_['engine_p95_ms']:.0f} ms) | p95 < 150 ms "
        f"| {verdict(el_['p95_ms'] < 150)} |",
        f"| E one scenario, scenario-axis engine (S = 1), in-process, warm | 40 scenarios of six numbers | median "
        f"{ei['median_ms']:.1f} ms, p95 {ei['p95_ms']:.1f} ms | < 25 ms | {verdict(ei['median_ms'] < 25)} |",
        "", f"W2 equality check: {r2['equal']} (fundform vs pandas vs DuckDB).", "",
        "W2 scope: the three implementations compute the same need and target allocations from the 6.1M rows "
        "(population x age cost curve summed to authorities, deprivation and mortality multipliers, shares, five "
        "years' targets). The 296-area settlement that follows (transition, floors, local tax) is in the whole-process "
        "row; it is not repeated in pandas and SQL.", "",
        "W2 variability: pandas' time varies most between runs on this shared machine (its range is in the table). "
        "An earlier `make bench` on 2026-11-22, with five runs of each implementation back to back instead of "
        "interleaved rounds, gave pandas a median of 0.49 s, 2.8x fundform's: the 4x target is met in the median "
        "here, not in every run. The pandas ratio sits at the 4x line (4.0x and 4.3x in two 2026-11-23 runs, as the shared "
        "machine's load moved pandas' median between 0.74 and 1.05 s); W2's fundform code is unchanged.", "",
        "Checks on input (2026-11-23, reliability): W4 verifies that no person_id repeats, chunk by chunk and across "
        "chunks whose id ranges overlap (memory bounded by a chunk: 666 MB peak); that is most of W4's time over "
        "2.2 s before the check. W1, side by side with the commit before those checks (5 interleaved runs each): "
        "1.26 s against 1.18 s median, within the machine's noise, after Parquet page checksums were read through "
        "ParquetFile (read_table's import of pyarrow.dataset had cost 0.3 s).", "",
        "Checks on input (2026-12-04, issue 22's holes): every population chunk's footer, columns and types are "
        "checked before the chunks are read together, ranks against their scores, CSVs for a cut last line. "
        "Measured by benchmarks/side_by_side.py against the commit before (0b3241b, its own data), interleaved, in "
        "one run on this machine: W1 1.07 s against 1.07 s median (ratio 0.998; peak 376 MB against 371 MB), W4 "
        "3.97 s against 4.05 s (ratio 0.981; peak 667 MB against 678 MB): no measurable cost.", "",
        "## Where the time goes where a target is missed", "",
        "W1 (issue 14 asks for under 1.0 s). W1 is measured cold: every input read and checked (the checked-input "
        "cache off). With the cache warm (row C, issue 22's target) the same run reads the checked tables back "
        "(about 0.03 s for the bundled data's 9 MB of Arrow) instead of reading and checking the files (about "
        "0.35 s): 0.87-0.99 s in the runs of 2026-12-04. What remains is imports (about 0.5 s: Polars, NumPy, "
        "PyArrow, pydantic, typer and rich), computing (about 0.15 s for five years of need, targets, transition, "
        "local tax and every output table) and writing (about 0.15 s). The earlier breakdown (2026-11-23, a "
        "slower machine of this kind): imports 0.75-0.9 s, loading and checking 0.47 s, computing 0.32-0.39 s, "
        "writing 0.15 s.", "",
        "W2 against DuckDB (2026-12-04): the need is now computed in one place for a run, a sweep and the waterfall "
        "(issue 21): Polars sums the population by authority and age exactly, then by band; the weights and "
        "multipliers apply in NumPy. That costs about 10 ms here against the former all-Polars plan (0.158 s "
        "against 0.143 s on 2026-12-04's earlier run), 0.94x DuckDB's SQL (which sums in floating point, not "
        "exactly).", "",
        "W3 (issue 14: a sweep is the run's own stages with a scenario axis, pipeline.settle). 10,000 scenarios of "
        "fundform-needs, whole process: about 0.75 s of imports, 0.5 s loading the data, 0.25 s deriving what every "
        "scenario shares (five years of need frames, local resources), 2.9 s settling ten chunks of 1,000 on two "
        "threads, 0.45 s of percentiles and ranks, then writing. Before this session's changes the same sweep took "
        "10.3 s (and hdc-2021 25.7 s); the chunked, threaded engine with the exact-pence rounding rewritten took "
        "4.5-4.9 s (hdc-2021 8.2-8.8 s) in quiet moments and 5.7-6.8 s (10.4-11.3 s) when the shared machine was "
        "busy: the 5 s and 10 s targets sit inside this machine's noise. Threads give 1.3-1.45x on two cores "
        "(memory-bound array work). Each scenario's need is computed for each of five years from that year's "
        "residents; the exact apportionment of targets and the floors' rounding in pence are now the largest parts.", 
        "",
        "E in-process: one scenario of the sweep engine is its need for five years (each from that year's "
        "residents: about 8 ms, the indicator transforms through Polars), the transition with its floors solved "
        "exactly, local tax and the distributions over scenarios; data-only work (need frames, band populations, "
        "local resources) is done once per dataset.", "",
        "C warm API side by side (2026-12-04, third session): schema 1.8 added todays_funding to every run; against the commit before it (dbfa4e5, a worktree), interleaved, four rounds of the row's own script: 38.8 ms against 39.3 ms, the mean of the medians: no measurable cost. Between two `make bench` runs of this session the row moved from 34 ms to 42 ms and W4, whose code did not change, by 7%: the machine's drift.", "",
        "E in the browser is measured to the first frame drawn after the figures change (requestAnimationFrame, "
        "then a task), not to the end of the script: layout and painting count. What keeps it short: the maps are "
        "drawn once per version and level and each move repaints their colours and tooltips (maps.paint, the same "
        "colours and words as the report's); the table of every area draws the rows in view (its sort and filter "
        "cover every area); numbers are formatted by one Intl.NumberFormat per precision (toLocaleString with "
        "options built one per call: 35 ms a move for the table alone). Before these, the same moves under load "
        "took p95 240 ms to the frame drawn (132-197 ms to the end of the script).", "",
        "W2 against the read floor: the floor only reads three columns; fundform must also aggregate 6.1M rows into "
        "27,000 authority x age groups (about 0.1 s of its time on this machine in isolation, measured with Polars' "
        "group_by alone) before the small joins. Fixed-point (exact, order-independent) sums add about 10% to that "
        "aggregation; they are what makes outputs byte-identical run to run, so they stay. Tried and not faster "
        "on this machine (warm, in-process): Polars' streaming engine for the same plan (0.099 s against 0.105 s for "
        "the group-by alone), reading area_code as a Parquet dictionary with PyArrow and grouping on its integer "
        "codes (0.12 s), weighting each row before a one-key group-by (0.30 s), and each of scan_parquet's "
        "parallel modes (0.101-0.107 s for the group-by alone).", "",
        f"Total benchmark time: {time.perf_counter() - t0:.0f} s.", ""]
    (HERE / "RESULTS.md").write_text("\n".join(lines) + kept_section())
    print("\n".join(lines))
    return 0


KEPT = "\n## Side by side with earlier commits\n"  # measured by side_by_side.py and against.py, not by this script


def kept_section() -> str:
    """RESULTS.md's section of side-by-side measurements against earlier commits, as it stands: written by hand from
    side_by_side.py's and against.py's output, so a `make bench` keeps it rather than dropping it."""
    old = (HERE / "RESULTS.md").read_text() if (HERE / "RESULTS.md").exists() else ""
    return old[old.index(KEPT):] if KEPT in old else ""


if __name__ == "__main__":
    sys.exit(main())
