"""docs/worked-example.md's numbers are a test: the engine must produce exactly the table worked there by hand."""

import re

import numpy as np
import pytest

from fundform.base.paths import PROJECT_ROOT
from fundform.engine.settlement.transition import BOUND_CEILING, BOUND_FLOOR, run_transition
from fundform.formula.rules import make_rule as Transition

Q = lambda v, unit="share": {"value": v, "unit": unit, "source": "assumption: the worked example"}
C = lambda v: Q(v, "change per year")  # (a floor or ceiling)
Y = lambda v: Q(v, "years")


def doc_table():
    text = (PROJECT_ROOT / "docs" / "worked-example.md").read_text()
    block = re.search(r"<!-- worked-example-table -->(.*?)<!-- /worked-example-table -->", text, re.S).group(1)
    rows = [[c.strip() for c in line.strip().strip("|").split("|")] for line in block.strip().splitlines()[2:]]
    pence = lambda s: int(s.replace(",", "").replace(".", ""))
    return {r[0]: {"previous": pence(r[1]), "target": pence(r[2]), "unconstrained": pence(r[3]),
                   "allocation": pence(r[4]), "bound": r[5]} for r in rows}


def test_the_worked_example_in_the_docs():
    table = doc_table()
    areas = ["A", "B", "C", "D", "E"]
    prev = np.array([table[a]["previous"] for a in areas])
    target = np.array([[table[a]["target"] for a in areas]])
    total = np.array([table["total"]["allocation"]])
    rule = Transition(rule="convergence", gap_closed_per_year=Q(0.5), floor=C(0.0), ceiling=C(0.10))
    r = run_transition(prev, target, total, rule)
    assert r.unconstrained[0] == pytest.approx([table[a]["unconstrained"] for a in areas], abs=1e-3)
    assert r.allocation[0].tolist() == [table[a]["allocation"] for a in areas]
    labels = {BOUND_FLOOR: "floor", BOUND_CEILING: "ceiling", 0: "none"}
    assert [labels[b] for b in r.bound[0]] == [table[a]["bound"] for a in areas]
    assert r.scale_back[0] == pytest.approx(3.2 / 13.2, rel=1e-12)
    assert r.allocation.sum() == table["total"]["allocation"]
