"""fundform: a needs-based block-grant funding formula engine.

Where things live:
  inputs/      reading the dataset and checking it against declared contracts
  formula/     formula versions: validated specs, the registry, named components
  params.py    run parameters and what a run returns
  need/        need-weighted populations and target shares; frames.py: each area's need per settlement year
  baselines.py today's funding: the baseline table or NHS England's published rounds, on a run's ICB vintage
  settlement/  control totals, indices, transition rules, exact pence; allocate.py (a stream's settlement),
               rounds.py (NHS rounds year by year)
  localtax/    notional local tax and local resources; grants.py: how they reach the grant
  reconcile.py the identities every run must satisfy
  geography.py rolling areas up to any level through lookups; levels.py a body against its members
  outcome.py   the one outcome of the stages, (scenarios, years, areas): a run, a sweep and the explorer read it
  outputs/     the output contract (registry.py: every table declared once), atomic writes, the run manifest
  pipeline.py  `compute`: a run, the outcome of one scenario, and its tables
  runs.py      a run as a whole: plan, load, compute, write, record
  sweeps.py    thousands of scenarios along a scenario axis; explorer.py the live explorer on it
  api.py       the Python API: fundform.run, sweep, compare, explain; cli.py the command
"""

__version__ = "0.2.0"

_API = ("run", "sweep", "compare", "explain", "design", "load", "Model", "Run", "Sweep")


def __getattr__(name: str):
    """The Python API (fundform.load, run, sweep, compare, explain, design; fundform/interfaces/api.py, docs/python-api.md),
    imported when first used so the command line does not pay for it."""
    if name in _API:
        from fundform.interfaces import api

        return getattr(api, name)
    raise AttributeError(f"module 'fundform' has no attribute {name!r}")
