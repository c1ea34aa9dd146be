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
"""

__version__ = "0.1.0"
