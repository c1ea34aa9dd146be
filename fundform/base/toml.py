"""The one reader of every TOML file fundform takes (formula versions, scenarios, designs, uncertainty files, batch
specs, policy cases, settings) and the one way their problems are told: the file, then the line and column of a
syntax error, or each key path and what was expected. Parsed once per process for the same file contents."""

from __future__ import annotations

import copy
import os
import tomllib
from pathlib import Path

from pydantic import ValidationError

from fundform.base.errors import SpecError

_PARSED: dict[tuple, dict] = {}


def read_toml(path: Path | str, what: str = "TOML file") -> dict:
    """A TOML file's tables (a fresh copy each call). `what` names the kind of file in a message ("design file")."""
    path = Path(path)
    if not path.is_file():
        raise SpecError(f"{path}: {what} not found")
    st = os.stat(path)
    key = (str(path), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
    if key not in _PARSED:
        if len(_PARSED) > 256:
            _PARSED.clear()
        _PARSED[key] = parse_toml(path.read_bytes(), path, what)
    return copy.deepcopy(_PARSED[key])


def parse_toml(raw: bytes, path: Path | str, what: str = "TOML file") -> dict:
    """The tables of `raw` (the bytes of `path`); not UTF-8 or not TOML is a SpecError naming the file and where."""
    try:
        return tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as e:
        raise SpecError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start}); expected a {what}") from None
    except tomllib.TOMLDecodeError as e:  # its message ends "(at line L, column C)"
        raise SpecError(f"{path}: not valid TOML: {e}; expected a {what}") from None


def problems_of(path: Path | str, what: str, err: ValidationError) -> SpecError:
    """A validation error as the user reads it: the file, how many problems, and each key path with what it needs
    ("unknown key" where the file has a key the kind of file does not)."""
    lines = [f"{path}: invalid {what} ({err.error_count()} problem(s))"]
    for e in err.errors():
        loc = ".".join(str(x) for x in e["loc"]) or "(top level)"
        msg = e["msg"].removeprefix("Value error, ")
        lines.append(f"  - {loc}: {'unknown key' if e['type'] == 'extra_forbidden' else msg}")
    return SpecError("\n".join(lines))
