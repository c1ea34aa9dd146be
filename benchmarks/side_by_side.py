"""W1 and W4 side by side: an earlier commit (a git worktree of it, with its own data: an input contract may have
changed) against this tree, interleaved, 5 runs each (W4 3), each a fresh process; wall and peak RSS, and the
ratios. Run after `make bench-data`, e.g.

    git worktree add /tmp/base 0b3241b
    python benchmarks/side_by_side.py /tmp/base /tmp/base/data/default /tmp/base-persons
"""
import json
import statistics
import subprocess
import sys
from pathlib import Path

if len(sys.argv) != 4:
    sys.exit("usage: side_by_side.py BASE_TREE BASE_DATA BASE_PERSONS (a worktree of the earlier commit, and the "
             "data it reads for W1 and W4)")
PY = sys.executable
BASE, BASE_DATA, BASE_PERSONS = sys.argv[1:4]
HERE = str(Path(__file__).resolve().parent.parent)


def cmd(base, args):
    # the command's module moved with the layered folders (fundform/cli.py before, fundform/interfaces/cli/ after)
    module = "fundform.cli" if (Path(base) / "fundform" / "cli.py").exists() else "fundform.interfaces.cli"
    # the editable install's import finder would map `fundform` to this checkout ahead of sys.path: drop it, so the
    # earlier commit's own code runs
    boot = (f"import sys; sys.meta_path[:] = [f for f in sys.meta_path if 'editable' not in repr(f).lower()]; "
            f"sys.path.insert(0, {base!r}); sys.argv=['fundform']+sys.argv[1:]; from {module} import app; app()")
    return [PY, "-c", boot, *args]


wrapper = ("import json,resource,subprocess,sys,time;t=time.perf_counter();"
           "p=subprocess.run(sys.argv[1:],capture_output=True,text=True);w=time.perf_counter()-t;"
           "print(json.dumps({'wall':w,'kb':resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss,'rc':p.returncode,'err':p.stderr[-500:]}))")


def timed(c):
    r = json.loads(subprocess.run([PY, "-c", wrapper, *c], capture_output=True, text=True).stdout)
    assert r["rc"] == 0, r["err"]
    return r["wall"], r["kb"] / 1024


cases = {
  "W1 before": cmd(BASE, ["run", "--data", BASE_DATA, "--quiet", "--no-record", "--out", "/tmp/sbs-w1a"]),
  "W1 after": cmd(HERE, ["run", "--quiet", "--no-record", "--out", "/tmp/sbs-w1b"]),
  "W4 before": cmd(BASE, ["run", "--data", BASE_PERSONS, "--quiet", "--no-record", "--out", "/tmp/sbs-w4a"]),
  "W4 after": cmd(HERE, ["run", "--data", HERE + "/benchmarks/data/persons", "--quiet", "--no-record", "--out", "/tmp/sbs-w4b"]),
}
res = {k: [] for k in cases}
for i in range(5):
    for k, c in cases.items():
        if k.startswith("W4") and i >= 3: continue
        res[k].append(timed(c))
for k, v in res.items():
    w = [x[0] for x in v]
    print(f"{k}: median {statistics.median(w):.2f} s [{min(w):.2f}-{max(w):.2f}], peak {max(x[1] for x in v):.0f} MB, n={len(v)}")
for w in ("W1", "W4"):
    a = statistics.median(x[0] for x in res[f"{w} after"]); b = statistics.median(x[0] for x in res[f"{w} before"])
    print(f"{w} after/before: {a/b:.3f}")
