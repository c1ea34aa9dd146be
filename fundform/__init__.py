"""fundform: a needs-based block-grant funding formula engine.

The folders are the layers, lowest first; each may import only those below it (tests/test_architecture.py):

  base/        errors, paths, settings, exact sums, failpoints
  inputs/      table contracts, reading files strictly, the checks across tables: a checked Dataset
  formula/     formula versions as data: numbers with units and sources, rules, scenarios, components
  engine/      the stages: need, today's funding, settlement (money moves here), local tax, the one outcome
  outputs/     the output contract and registry, atomic files, manifest, warehouse, exports, report, documents
  studies/     on the outcome: a run (pipeline.py, runs.py), batches, sweeps, designs, executors
  interfaces/  the ways in: the Python API (also fundform.api), the command (cli/), the explorer (explorer/)
"""

from typing import Any

__version__ = "0.2.0"

_API = ("run", "sweep", "compare", "explain", "design", "load", "Model", "Run", "Sweep", "FundformError")


def __getattr__(name: str) -> Any:
    """The Python API (fundform.load, run, sweep, compare, explain, design; fundform/interfaces/api.py, docs/python-api.md),
    imported when first used so the command line does not pay for it."""
    if name in _API:
        from fundform.interfaces import api

        return getattr(api, name)
    raise AttributeError(f"module 'fundform' has no attribute {name!r}")
