"""A module imported when first used: commands that only read a version or check its references (`fundform --version`,
`fundform formulas show`) import neither NumPy nor Polars; computing imports them."""

from __future__ import annotations

import importlib
from typing import Any


class LazyModule:
    def __init__(self, name: str):
        self._name = name

    def __getattr__(self, attr: str) -> Any:
        return getattr(importlib.import_module(self._name), attr)
