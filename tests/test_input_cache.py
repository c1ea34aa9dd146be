"""The checked-input cache (fundform/inputs/cache.py): a cache fault never changes a figure. A reused entry gives
the bytes a run that checks everything gives; a changed file misses it (and a broken one is refused, whatever the
cache holds); a corrupted or truncated entry is discarded and rebuilt; a writer killed mid-entry leaves nothing a
later run reads; two runs at once agree. Each case runs the command in processes of its own."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
from pathlib import Path

import polars as pl
import pytest

from tests.conftest import DATA
from tests.test_fault_injection import FUNDFORM, PARQUETS, env_for, fundform

RUN = ("run", "--years", "1", "--level", "region", "--no-record", "--json")


def entries(root: Path) -> list[Path]:
    cache = root / "out" / ".cache" / "inputs"
    return sorted(p for p in cache.iterdir() if not p.name.startswith(".") and (p / "entry.json").exists()) \
        if cache.exists() else []  # entries under their key; a writer's temporary folder is never one


def run(root: Path, out: str, *extra: str, **env: str) -> tuple[dict, dict[str, bytes], str]:
    """(the run's JSON, its Parquet bytes, what its manifest says of its input checks)."""
    r = fundform(root, *RUN, "--out", str(root / out), *extra, **{"FUNDFORM_NO_CACHE": "0", **env})
    assert r.returncode == 0, r.stderr
    folder = root / out
    checks = json.loads((folder / "manifest.json").read_text())["input_checks"].split(":")[0]
    return json.loads(r.stdout), {n: (folder / f"{n}.parquet").read_bytes() for n in PARQUETS}, checks


@pytest.fixture
def data(tmp_path) -> Path:
    target = tmp_path / "data"
    shutil.copytree(DATA, target)
    (target / "CHECKSUMS.sha256").unlink()
    return target


def test_a_reused_entry_gives_the_bytes_of_a_run_that_checks_everything(tmp_path):
    first, b1, c1 = run(tmp_path, "a")
    second, b2, c2 = run(tmp_path, "b")
    third, b3, c3 = run(tmp_path, "c", "--no-cache")
    assert (c1, c2, c3) == ("ran", "reused", "ran")
    assert b1 == b2 == b3 and first["run_id"] == second["run_id"] == third["run_id"]
    assert len(entries(tmp_path)) == 1
    cleared = fundform(tmp_path, "cache", "clear", "--json", FUNDFORM_NO_CACHE="0")
    assert cleared.returncode == 0 and json.loads(cleared.stdout)["entries_removed"] == 1
    assert entries(tmp_path) == [] and run(tmp_path, "d")[2] == "ran"


def test_a_changed_file_misses_the_cache_and_a_broken_one_is_refused(tmp_path, data):
    env = {"FUNDFORM_DATA_DIR": str(data)}
    _, before, _ = run(tmp_path, "a", **env)
    assert run(tmp_path, "b", **env)[2] == "reused"
    b = pl.read_parquet(data / "baseline.parquet")
    b.with_columns(public_health=pl.col("public_health") * 1.01).write_parquet(data / "baseline.parquet")
    _, after, checks = run(tmp_path, "c", **env)
    assert checks == "ran" and after["allocations"] != before["allocations"]
    pop = pl.read_parquet(data / "population.parquet")
    pop.with_columns(population=-pl.col("population")).write_parquet(data / "population.parquet")
    broken = fundform(tmp_path, *RUN, "--out", str(tmp_path / "d"), FUNDFORM_NO_CACHE="0", **env)
    assert broken.returncode == 1 and "population" in broken.stderr and not (tmp_path / "d").exists()
    added = data / "indicators"
    added.mkdir(exist_ok=True)
    pop.write_parquet(data / "population.parquet")  # restore, then add a file: a new file misses too
    pl.DataFrame({"area_code": pop["area_code"].unique().sort(), "x": 1.0}).write_parquet(added / "extra.parquet")
    assert run(tmp_path, "e", **env)[2] == "ran"


@pytest.mark.parametrize("fault", ["corrupt", "truncate", "delete", "foreign"])
def test_a_damaged_entry_is_discarded_and_rebuilt_never_trusted(tmp_path, fault):
    _, expected, _ = run(tmp_path, "a")
    entry = entries(tmp_path)[0]
    table = sorted(entry.glob("*.arrow"))[-1]
    raw = bytearray(table.read_bytes())
    if fault == "corrupt":  # a flipped byte in the middle of a table
        raw[len(raw) // 2] ^= 0xFF
        table.write_bytes(bytes(raw))
    elif fault == "truncate":
        table.write_bytes(bytes(raw[: len(raw) // 3]))
    elif fault == "delete":
        table.unlink()
    else:  # entry.json edited to claim another key
        meta = json.loads((entry / "entry.json").read_text())
        (entry / "entry.json").write_text(json.dumps({**meta, "key": "0" * 32}))
    _, got, checks = run(tmp_path, "b")
    assert checks == "ran" and got == expected
    assert run(tmp_path, "c")[2] == "reused"  # rebuilt, and good


@pytest.mark.parametrize("point", ["cache.mid_write", "cache.before_rename"])
def test_a_writer_killed_mid_entry_leaves_nothing_a_later_run_reads(tmp_path, point):
    killed = fundform(tmp_path, *RUN, "--out", str(tmp_path / "a"), FUNDFORM_FAILPOINTS=f"{point}=kill",
                      FUNDFORM_NO_CACHE="0")
    assert killed.returncode == -signal.SIGKILL
    assert entries(tmp_path) == []  # only a temporary folder, never read
    _, got, checks = run(tmp_path, "b")
    _, plain, _ = run(tmp_path, "c", "--no-cache")
    assert checks == "ran" and got == plain and len(entries(tmp_path)) == 1


def test_two_runs_at_once_with_an_empty_cache_agree(tmp_path):
    procs = [subprocess.Popen([FUNDFORM, *RUN, "--out", str(tmp_path / o)], env=env_for(tmp_path, FUNDFORM_NO_CACHE="0"),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for o in ("a", "b")]
    outs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1] for o in outs]
    a = {n: (tmp_path / "a" / f"{n}.parquet").read_bytes() for n in PARQUETS}
    b = {n: (tmp_path / "b" / f"{n}.parquet").read_bytes() for n in PARQUETS}
    assert a == b and len(entries(tmp_path)) == 1
    assert not [p for p in (tmp_path / "out" / ".cache" / "inputs").iterdir() if p.name.startswith(".tmp-")]
    assert run(tmp_path, "c")[2] == "reused"
