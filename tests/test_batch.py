"""Batch runs: idempotent, crash-safe, resumable, exclusive, and tolerant of one failing run."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from typer.testing import CliRunner

from cli import app
from fundform.base.paths import PROJECT_ROOT

runner = CliRunner()
CLI = [sys.executable, str(PROJECT_ROOT / "cli.py")]


def spec(tmp_path: Path, runs: str, name: str = "spec.toml") -> Path:
    f = tmp_path / name
    f.write_text(f'output = "out"\nrecord = false\n{runs}')
    return f


TWO_RUNS = """
[[runs]]
formula = "fundform-needs"
levels = ["region", "nhs-region"]
years = 2
"""


def digests(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*.parquet"))}


def complete_runs(out: Path) -> list[Path]:
    return [p for p in out.iterdir() if p.is_dir() and not p.name.startswith(".")]


def test_second_run_skips_and_force_rewrites_identical_bytes(tmp_path):
    s = spec(tmp_path, TWO_RUNS)
    first = runner.invoke(app, ["batch", str(s), "--json"])
    assert first.exit_code == 0, first.output
    assert json.loads(first.output)["counts"]["done"] == 2
    before = digests(tmp_path / "out")
    second = runner.invoke(app, ["batch", str(s), "--json"])
    assert json.loads(second.output)["counts"] == {"done": 0, "skipped": 2, "failed": 0, "would": 0}
    forced = runner.invoke(app, ["batch", str(s), "--force", "--json"])
    assert json.loads(forced.output)["counts"]["done"] == 2
    assert digests(tmp_path / "out") == before  # recomputed, byte for byte the same
    log = [json.loads(line) for line in (tmp_path / "out" / "batch.log.jsonl").read_text().splitlines()]
    assert [e["event"] for e in log].count("skipped") == 2


def test_a_batch_killed_mid_write_leaves_no_partial_run_and_restart_completes(tmp_path):
    s = spec(tmp_path, TWO_RUNS)
    out = tmp_path / "out"
    env = {**os.environ, "FUNDFORM_FAULT_PAUSE_BEFORE_RENAME": "60"}
    proc = subprocess.Popen([*CLI, "batch", str(s), "--quiet"], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while time.time() < deadline and not any(p.name.startswith(".") and ".tmp-" in p.name
                                             for p in (out.iterdir() if out.exists() else [])):
        time.sleep(0.1)
    os.kill(proc.pid, signal.SIGKILL)  # kill -9 while the first run's files are written but not yet renamed
    proc.wait()
    assert complete_runs(out) == []  # nothing half-written is visible as a run
    restart = subprocess.run([*CLI, "batch", str(s), "--json"], capture_output=True, text=True, timeout=300)
    assert restart.returncode == 0, restart.stderr
    assert json.loads(restart.stdout)["counts"]["done"] == 2
    assert len(complete_runs(out)) == 2
    assert not [p for p in out.iterdir() if ".tmp-" in p.name]  # the killed batch's temporary folder is gone
    for run in complete_runs(out):
        assert {"allocations.parquet", "manifest.json", "waterfall.parquet"} <= {p.name for p in run.iterdir()}


def test_two_batches_on_one_folder_one_proceeds_one_refuses(tmp_path):
    s = spec(tmp_path, TWO_RUNS)
    env = {**os.environ, "FUNDFORM_FAULT_PAUSE_BEFORE_RENAME": "60"}
    first = subprocess.Popen([*CLI, "batch", str(s), "--quiet"], env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    lock = tmp_path / "out" / ".batch.lock"
    deadline = time.time() + 60
    while time.time() < deadline and not (lock.exists() and lock.read_text().strip() == str(first.pid)):
        time.sleep(0.1)
    second = subprocess.run([*CLI, "batch", str(s)], capture_output=True, text=True, timeout=120)
    first.kill()
    first.wait()
    assert second.returncode == 4
    assert "another batch is writing" in second.stderr and str(first.pid) in second.stderr


def test_a_failing_run_is_reported_while_the_others_finish(tmp_path):
    s = spec(tmp_path, TWO_RUNS + """
[[runs]]
formula = "nhs-icb-2024"
levels = ["ltla"]
start_year = "2024/25"
years = 1
""")
    r = runner.invoke(app, ["batch", str(s), "--json"])
    assert r.exit_code == 1
    summary = json.loads((tmp_path / "out" / "batch-summary.json").read_text())
    assert summary["counts"]["done"] == 2 and summary["counts"]["failed"] == 1
    failed = [x for x in summary["runs"] if x["status"] == "failed"][0]
    assert "use --level icb or nhs-region" in failed["error"]


def test_invalid_spec_is_named(tmp_path):
    s = spec(tmp_path, '[[runs]]\nformula = "fundform-needs"\nlevels = ["parish"]\n')
    r = runner.invoke(app, ["batch", str(s)])
    assert r.exit_code == 1 and "runs.0.levels: unknown level 'parish'" in r.output
