"""fundform: a needs-based block-grant funding formula engine.

Where things live:
  inputs/      reading the dataset and checking it against declared contracts
  formula/     formula versions: validated specs, the registry, named components
  need/        need-weighted populations and target shares
  settlement/  money between years and areas: control totals, indices, transition rules, exact pence
  localtax/    notional local tax and other local-resource adjustments
  geography.py rolling areas up to any level through lookups
  outputs/     the output contract, atomic writes, the run manifest
  pipeline.py  one run, end to end
  api.py       the Python API: fundform.run, sweep, compare, explain
"""

__version__ = "0.1.0"

_API = ("run", "sweep", "compare", "explain", "Run", "Sweep")


def __getattr__(name: str):
    """The Python API (fundform.run, fundform.sweep, fundform.compare, fundform.explain; see fundform/api.py and
    docs/python-api.md), imported when first used so the command line does not pay for it."""
    if name in _API:
        from fundform import api

        return getattr(api, name)
    raise AttributeError(f"module 'fundform' has no attribute {name!r}")
