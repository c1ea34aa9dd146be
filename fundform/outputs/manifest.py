"""The run manifest: what determined a run's output, and a run id derived from it.

The run id is a hash of the formula file and overrides, the input files, the parameters and the engine and package
versions: everything that determines the output and nothing it computed, so it is known before a run (a batch skips
runs already done) and the same inputs give the same id and the same bytes in every Parquet file. Only `created_at` (kept out of the Parquet
metadata and out of the hash) and `data_dir` differ between two identical runs.
"""

from __future__ import annotations

import hashlib
import json
import platform
import re
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from fundform import __version__
from fundform.base.errors import FundformError
from fundform.outputs.schema import SCHEMA_VERSION

PACKAGES = ("polars", "pyarrow", "numpy", "pydantic", "duckdb")


def package_versions() -> dict[str, str]:
    out = {"python": platform.python_version(), "fundform": __version__}
    for p in PACKAGES:
        try:
            out[p] = version(p)
        except PackageNotFoundError:
            pass
    return out


def build_manifest(*, formula: dict, inputs: list[dict], parameters: dict, overrides: list, policies: dict,
                   data_dir: str, assumptions: list[dict] | None = None) -> dict:
    """`assumptions`: the numbers of the resolved formula that rest on the project's assumptions (path and value),
    so a reader of the outputs sees which figures are not from a published source. Determined by the formula, so
    kept out of the run id's hash (the formula's hash already covers it)."""
    core = {
        "engine": {"name": "fundform", "version": __version__, "output_schema": SCHEMA_VERSION},
        "formula": formula,
        "inputs": inputs,
        "parameters": parameters,
        "overrides": overrides,
        "packages": package_versions(),
    }
    return {"run_id": run_id_of(core), **core, "assumptions": assumptions or [], "policies": policies}


def run_id_of(core: dict) -> str:
    """The hash of what determines a run's output (not of what it computed), so it is known before running."""
    keys = ("engine", "formula", "parameters", "overrides", "packages")
    ident = {k: core[k] for k in keys} | {"inputs": [{k: i[k] for k in ("table", "file", "sha256")}
                                                     for i in core["inputs"]]}
    return hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:16]


def with_volatile(manifest: dict, data_dir: str, input_checks: str | None = None) -> dict:
    """The manifest as written to manifest.json: adds where the data was read from, when the run was made, and
    whether the inputs' checks ran in this run or were reused from an earlier run on the same files (inputs.cache).
    None of these is in the Parquet files' metadata or the run id: the same inputs give the same bytes either way."""
    out = {**manifest, "data_dir": data_dir, "created_at": datetime.now(UTC).isoformat(timespec="seconds")}
    if input_checks is not None:
        out["input_checks"] = {"ran": "ran: every input read and checked in this run",
                               "reused": "reused: the checked tables of an earlier run on the same files (the same "
                                         "SHA-256 for every file; fundform run --no-cache checks them again)"
                               }.get(input_checks, input_checks)
    return out


RUN_ID = re.compile(r"^[0-9a-f]{16}$")
FORMULA_ID = re.compile(r"^[a-z0-9][a-z0-9-]*$")


def read_run_manifest(run_dir: Path) -> dict:
    """A run folder's manifest, with the fields that become file names checked: a run id, a formula id. A manifest
    edited to hold '../..' or another path cannot make an export write outside its folder."""
    path = Path(run_dir) / "manifest.json"
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise FundformError(f"{path}: not a readable run manifest ({e})") from None
    run_id = manifest.get("run_id") if isinstance(manifest, dict) else None
    if not isinstance(run_id, str) or not RUN_ID.match(run_id):
        raise FundformError(f"{path}: run_id {run_id!r} is not a run id (16 hex digits): the manifest was edited or "
                            "is not fundform's")
    formula_id = (manifest.get("formula") or {}).get("id")
    if not isinstance(formula_id, str) or not FORMULA_ID.match(formula_id):
        raise FundformError(f"{path}: formula id {formula_id!r} is not a formula id (lower case, digits, '-')")
    return manifest
