"""Local resources: notional council tax, precepts and local taxes (resources.py), and how they reach the grant:
the deduction, the envelope, negative grants (grants.py)."""
