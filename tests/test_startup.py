"""Start-up: commands that compute nothing import no table library. The budget is which modules a command imports
(robust on a shared machine), read from `python -X importtime`; the times are benchmarked, not tested."""

from __future__ import annotations

import subprocess
import sys

import pytest

HEAVY = {"polars", "numpy", "duckdb", "pyarrow", "scipy", "uvicorn", "starlette"}


def imported(*args: str) -> set[str]:
    r = subprocess.run([sys.executable, "-X", "importtime", "-m", "fundform.interfaces.cli", *args], capture_output=True,
                       text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    return {line.split("|")[-1].strip() for line in r.stderr.splitlines() if line.startswith("import time:")}


@pytest.mark.parametrize("args", [["--version"], ["formulas", "list"], ["formulas", "show", "fundform-needs"],
                                  ["formulas", "validate", "formulas/fundform-needs.toml"], ["--help"]])
def test_commands_that_compute_nothing_import_no_table_library(args):
    mods = imported(*args)
    assert {"fundform", "typer"} <= mods  # the measurement works: it sees the command's own imports
    assert not (HEAVY & mods), sorted(HEAVY & mods)


def test_a_command_that_computes_does_import_them(tmp_path):
    """The check can fail: a run imports Polars and NumPy (so their absence above is the command's doing)."""
    mods = imported("run", "--years", "1", "--level", "region", "--no-record", "-q", "--out", str(tmp_path / "r"))
    assert {"polars", "numpy"} <= mods
