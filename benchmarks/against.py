"""This tree against an earlier commit on the bundled data, for a change that should cost nothing (a refactor): a run,
a 1,000-scenario sweep and a run with 100 input draws, each a fresh process, the two trees interleaved (9 rounds:
wall time median and peak RSS); then in-process, warm, the run's and the sweep's computation alone (the median of 6
after the data is loaded), so start-up noise is left out. Needs no bench data:

    git worktree add /tmp/base 386c667
    python benchmarks/against.py /tmp/base
"""
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

if len(sys.argv) != 2:
    sys.exit("usage: against.py BASE_TREE (a worktree of the earlier commit)")
PY = sys.executable
BASE = sys.argv[1]
HERE = str(Path(__file__).resolve().parent.parent)
TREES = {"before": BASE, "after": HERE}
# the editable install's import finder would map `fundform` to this checkout ahead of sys.path: drop it
BOOT = "import sys; sys.meta_path[:] = [f for f in sys.meta_path if 'editable' not in repr(f).lower()]; sys.path.insert(0, {tree!r}); "
WRAPPER = ("import json,resource,subprocess,sys,time;t=time.perf_counter();"
           "p=subprocess.run(sys.argv[1:],capture_output=True,text=True);w=time.perf_counter()-t;"
           "print(json.dumps({'wall':w,'mb':resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss/1024,"
           "'rc':p.returncode,'err':p.stderr[-300:]}))")
DRAWS = str(Path(HERE) / "formulas" / "uncertainty" / "draws-100.toml")
WORK = {
    "run (fundform-needs, lower tier, 5 years, no cache)": ["run", "--no-cache", "-q"],
    "sweep (1,000 scenarios of transition.floor)": ["sweep", "--param", "transition.floor=-0.03:0.01", "--draws", "1000",
                                                    "-q"],
    "run with 100 input draws (regions)": ["run", "--no-cache", "--uncertainty", DRAWS, "--level", "region", "-q"],
}
WARM = """
import statistics, time, numpy as np
from fundform.base.paths import default_data_dir
from fundform.formula.scenario import resolve_formula
from fundform.inputs.dataset import load_dataset
from fundform.studies.pipeline import RunParameters, compute
from fundform.studies.sweeps import run_sweep
data, f = load_dataset(default_data_dir()), resolve_formula("fundform-needs")
values = np.linspace(-0.03, 0.01, 1000)[:, None]
run, sweep = [], []
for _ in range(6):
    t = time.perf_counter(); compute(data, f, RunParameters()); run.append(time.perf_counter() - t)
    t = time.perf_counter(); run_sweep(data, f, RunParameters(), ["transition.floor"], values); sweep.append(time.perf_counter() - t)
print(json.dumps({"run": statistics.median(run), "sweep": statistics.median(sweep)}))
"""


def command(tree: str, args: list[str], out: str) -> list[str]:
    boot = BOOT.format(tree=tree) + "sys.argv=['fundform']+sys.argv[1:]; from fundform.interfaces.cli import app; app()"
    return [PY, "-c", boot, *args, "--out", out]


def timed(c: list[str]) -> tuple[float, float]:
    r = json.loads(subprocess.run([PY, "-c", WRAPPER, *c], capture_output=True, text=True).stdout)
    assert r["rc"] == 0, r["err"]
    return r["wall"], r["mb"]


for name, args in WORK.items():
    got: dict[str, list[tuple[float, float]]] = {t: [] for t in TREES}
    for _ in range(9):
        for t, tree in TREES.items():
            folder = tempfile.mkdtemp()
            got[t].append(timed(command(tree, args, folder + "/out")))
            shutil.rmtree(folder)
    (bw, bm), (aw, am) = ((statistics.median(w for w, _ in got[t]), max(m for _, m in got[t])) for t in TREES)
    print(f"{name}: {bw:.2f} s / {bm:.0f} MB before, {aw:.2f} s / {am:.0f} MB after: {aw / bw:.2f}x time, "
          f"{am / bm:.2f}x peak memory")
warm = {}
for _ in range(2):
    for t, tree in TREES.items():
        r = json.loads(subprocess.run([PY, "-c", BOOT.format(tree=tree) + "import json\n" + WARM], capture_output=True,
                                      text=True, check=True).stdout.strip().splitlines()[-1])
        warm.setdefault(t, []).append(r)
for k in ("run", "sweep"):
    b, a = (min(r[k] for r in warm[t]) for t in TREES)
    print(f"in-process, warm, {k}: {b * 1000:.0f} ms before, {a * 1000:.0f} ms after: {a / b:.2f}x")
