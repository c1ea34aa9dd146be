"""Check that requirements.lock and pyproject.toml agree, without the network: every dependency pyproject.toml
declares (the package's own and the dev, bench and distributed extras that `make test` and `make bench` install) is pinned in
the lock at a version its specifier admits, and every package the lock installs for fundform directly is still
declared. `make test` runs it first, so CI fails when one was edited without the other (`make lock` refreshes the
lock from pyproject.toml)."""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
EXTRAS = ("dev", "bench", "distributed")  # the extras the lock covers (Makefile: `make lock`)
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)")


def declared(pyproject: str) -> list[Requirement]:
    project = tomllib.loads(pyproject)["project"]
    reqs = list(project.get("dependencies", []))
    for extra in EXTRAS:
        reqs += project.get("optional-dependencies", {}).get(extra, [])
    return [Requirement(r) for r in reqs]


def pinned(lock: str) -> tuple[dict[str, list[str]], set[str]]:
    """Each package's pinned versions (one per environment marker) and the packages pinned for fundform itself."""
    pins: dict[str, list[str]] = {}
    direct: set[str] = set()
    current = None
    for line in lock.splitlines():
        m = PIN.match(line)
        if m:
            current = canonicalize_name(m.group(1))
            pins.setdefault(current, []).append(m.group(2))
        elif current and re.search(r"#\s+(via\s+)?fundform( \(pyproject\.toml\)|\[)", line):
            direct.add(current)
    return pins, direct


def problems(pyproject: str, lock: str) -> list[str]:
    reqs = declared(pyproject)
    pins, direct = pinned(lock)
    out = []
    for r in reqs:
        name = canonicalize_name(r.name)
        if name not in pins:
            out.append(f"{r} is declared in pyproject.toml but not pinned in requirements.lock")
            continue
        bad = [v for v in pins[name] if not r.specifier.contains(Version(v), prereleases=True)]
        if bad:
            out.append(f"{r} is declared in pyproject.toml but requirements.lock pins {r.name}=={', '.join(bad)}")
    stale = sorted(direct - {canonicalize_name(r.name) for r in reqs})
    out += [f"requirements.lock pins {n} for fundform, which pyproject.toml no longer declares" for n in stale]
    if not pins:
        out.append("requirements.lock pins no package")
    return out


def main() -> int:
    found = problems((ROOT / "pyproject.toml").read_text(), (ROOT / "requirements.lock").read_text())
    for p in found:
        print(f"lock check: {p}", file=sys.stderr)
    if found:
        print("lock check: run `make lock` to compile requirements.lock from pyproject.toml, and commit both",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
