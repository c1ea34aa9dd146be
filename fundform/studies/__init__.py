"""Studies built on the engine's outcome: a run (pipeline.py computes it, runs.py plans, computes, writes and
records it), many runs (batch.py), thousands of scenarios (sweeps.py), policy design (designer.py, its file
design_spec.py, what a candidate is measured by design_measures.py), the draws' bands and shares of variance (uncertainty.py), policy cases as data (cases.py), where chunks of
scenarios run (executors.py: threads or Dask), and a receiving body against its members (levels.py). None has a
formula of its own: each evaluates the one outcome.

May import: fundform.base, fundform.inputs, fundform.formula, fundform.engine, fundform.outputs.
"""
