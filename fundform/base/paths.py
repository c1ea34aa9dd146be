"""Where the bundled resources live. The project runs from its checkout (``pip install -e .``): the bundled
dataset and formula versions sit beside the package, and can be replaced with ``--data`` / ``--formula`` or the
``FUNDFORM_DATA_DIR`` / ``FUNDFORM_FORMULAS_DIR`` settings."""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent.parent


def default_data_dir() -> Path:
    return Path(os.environ.get("FUNDFORM_DATA_DIR", PROJECT_ROOT / "data" / "default"))


def formulas_dir() -> Path:
    return Path(os.environ.get("FUNDFORM_FORMULAS_DIR", PROJECT_ROOT / "formulas"))
