"""Formula versions as data: the numbers with unit, bounds and source (quantities.py), the transition rules' models
(rules.py), the whole version's model and its validation (spec.py), the registry of shipped versions and plugins
(registry.py), scenarios and `--set` overrides (scenario.py), and the named components whose code and equations the
engine calls (components.py).

May import: fundform.base, fundform.inputs.
"""
