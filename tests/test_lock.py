"""requirements.lock pins what pyproject.toml declares (tools/check_lock.py, run by `make test` before pytest)."""

from __future__ import annotations

import importlib.util
from importlib.metadata import version
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("check_lock", ROOT / "tools" / "check_lock.py")
check_lock = importlib.util.module_from_spec(spec)
spec.loader.exec_module(check_lock)

PYPROJECT = (ROOT / "pyproject.toml").read_text()
LOCK = (ROOT / "requirements.lock").read_text()


def test_the_committed_lock_agrees_with_pyproject():
    assert check_lock.problems(PYPROJECT, LOCK) == []


def test_a_dependency_added_without_relocking_is_named():
    edited = PYPROJECT.replace('"rich>=13",', '"rich>=13",\n    "sympy>=1.12",')
    assert check_lock.problems(edited, LOCK) == [
        "sympy>=1.12 is declared in pyproject.toml but not pinned in requirements.lock"]


def test_a_raised_lower_bound_the_lock_does_not_meet_is_named():
    pinned = check_lock.pinned(LOCK)[0]["polars"][0]
    major = int(pinned.split(".")[0])
    edited = PYPROJECT.replace('"polars>=1.30",', f'"polars>={major + 1}",')
    assert check_lock.problems(edited, LOCK) == [
        f"polars>={major + 1} is declared in pyproject.toml but requirements.lock pins polars=={pinned}"]


def test_a_dependency_dropped_from_pyproject_but_left_in_the_lock_is_named():
    edited = PYPROJECT.replace('    "xlsxwriter>=3.1",  #', '    #')
    assert "requirements.lock pins xlsxwriter for fundform, which pyproject.toml no longer declares" in \
        check_lock.problems(edited, LOCK)


def test_the_installed_packages_are_the_locked_ones():
    """What `make install` put in this environment is what the lock says (the versions a run id hashes)."""
    pins = check_lock.pinned(LOCK)[0]
    for name in ("polars", "pyarrow", "numpy", "pydantic", "duckdb"):
        assert version(name) in pins[name], name
