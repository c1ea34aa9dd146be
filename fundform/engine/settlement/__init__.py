"""Settlement: where money moves. Control totals and index series (control_total.py), transition rules with
exact floors and ceilings (transition.py), one stream's settlement (allocate.py), NHS England's rounds year by
year (rounds.py), integer pence and largest remainder (money.py), roll-ups of money (rollup.py) and the medium-term
ledger (ledger.py)."""
