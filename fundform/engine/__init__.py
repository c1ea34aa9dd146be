"""The engine: the formula's stages, each a function of checked inputs and a validated version, with a scenario axis.

    params.py       run parameters; results.py what a run returns (its tables, its draws' result); scenarios.py
                    the scenario axis (a run is one scenario)
    context.py      what the stages of one settlement read, built once by keyword (Settle) and the part settled
                    (Part: the version or one stream of it)
    need/           need-weighted population and target shares (axis.py: the one need computation)
    baselines.py    today's funding, and NHS England's published rounds on a run's ICB vintage
    geography.py    roll-up to any level through the lookups; deal areas
    settlement/     control totals and indices, transition rules with exact floors and ceilings, NHS rounds,
                    integer pence and largest remainder (money.py), the medium-term ledger
    localtax/       notional council tax, precepts and local taxes (resources.py), how they reach the grant
    outcome.py      the one outcome of the stages, (scenarios, years, areas): a run, a sweep, a design and the
                    explorer all read it
    reconcile.py    the identities every run must satisfy; waterfall.py each grant step by step, cohort budgets
    draws.py        the data axis: draws of the inputs, each a variant of the dataset; draw_gate.py the gate every
                    drawn number passes

May import: fundform.base, fundform.inputs, fundform.formula. Nothing here writes a file or knows an output's schema.
"""
