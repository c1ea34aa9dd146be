"""The run manifest: what determined a run's output, and a run id derived from it.

The run id is a hash of the formula file, the input files, the parameters and the engine version, so the same
inputs give the same id and the same bytes in every Parquet file. Only `created_at` (kept out of the Parquet
metadata and out of the hash) and `data_dir` differ between two identical runs.
"""

from __future__ import annotations

import hashlib
import json
import platform
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version

from fundform import __version__
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
                   data_dir: str) -> dict:
    core = {
        "engine": {"name": "fundform", "version": __version__, "output_schema": SCHEMA_VERSION},
        "formula": formula,
        "inputs": inputs,
        "parameters": parameters,
        "overrides": overrides,
        "policies": policies,
        "packages": package_versions(),
    }
    run_id = hashlib.sha256(json.dumps(core, sort_keys=True).encode()).hexdigest()[:16]
    return {"run_id": run_id, **core}


def with_volatile(manifest: dict, data_dir: str) -> dict:
    """The manifest as written to manifest.json: adds where the data was read from and when the run was made."""
    return {**manifest, "data_dir": data_dir, "created_at": datetime.now(UTC).isoformat(timespec="seconds")}
