"""One run, end to end: the settlement's outcome for one scenario that sets nothing (`fundform.engine.outcome`), its
output tables (`fundform.outputs.registry`) and what the manifest records of its policies.

    checked inputs (fundform.inputs) -> need and today's funding per area and year (fundform.engine.need.frames,
    fundform.engine.baselines) -> settlement per stream (fundform.engine.settlement.allocate; NHS rounds: settlement.rounds) ->
    the outcome: streams pooled, local tax deducted, grants (fundform.engine.outcome) -> the output tables and the
    identities checked (fundform.outputs.registry, fundform.engine.reconcile).

`compute` is pure (data and formula in, frames out); `fundform.studies.runs` adds reading, the manifest and the atomic write.
"""

from __future__ import annotations

from collections.abc import Callable

from fundform.engine.outcome import Outcome, evaluate
from fundform.engine.params import RunParameters
from fundform.engine.reconcile import baseline_sources, population_policy
from fundform.engine.results import RunResult
from fundform.engine.settlement.transition import BOUND_CEILING, BOUND_FLOOR
from fundform.formula.registry import LoadedFormula
from fundform.inputs.dataset import Dataset
from fundform.outputs.registry import build_tables

__all__ = ["RunParameters", "RunResult", "compute", "policies"]


def compute(data: Dataset, formula: LoadedFormula, params: RunParameters,
            progress: Callable[[str], None] | None = None) -> RunResult:
    """One run: the outcome of one scenario that sets nothing, and its output tables."""
    oc = evaluate(data, formula.spec, params, progress=progress)
    (progress or (lambda _msg: None))("local tax and grants")
    first = oc.settlements[0]
    path = first.path.with_columns(control_total=sum(s.totals[0] for s in oc.settlements))
    return RunResult(tables=build_tables(oc), control_totals=path, policies=policies(oc))


def policies(oc: Outcome, i: int = 0) -> dict:
    """What the manifest records of scenario i's settlement: totals, the equalisation degree, what the transition
    released and paid, how many areas were held at a floor or ceiling, where the inputs came from."""
    st, spec = oc.settled, oc.spec
    data, local, settlements = st.data, st.local, oc.settlements
    fy = oc.financial_years
    first = settlements[0]
    path_total = sum(s.totals[i] for s in settlements)
    bounds = oc.bounds[:, i]
    return {
        "notional_band_d_gbp": local.notional_band_d,
        "equalisation_degree": dict(zip(fy, map(float, oc.degree[i]))),
        **local.policies,
        "base_year_total_gbp": sum(s.base_year_total for s in settlements) / 100,
        "start_total_gbp": int(path_total[0]) / 100,
        "start_allocation_year": first.path["financial_year"][0],
        "streams": [s.name for s in settlements],
        **({"stream_titles": {st.name: st.title for st in spec.streams}} if spec.streams else {}),
        "vocabulary": spec.words,
        "boundary_conversions": list(data.conversions),
        **population_policy(data, oc.areas, fy, oc.frames),
        **baseline_sources(st.ref, spec),
        **({"implausible_inputs_allowed": list(data.implausible)} if data.implausible else {}),
        "transition_scale_back": {f"{s.name} {y}" if len(settlements) > 1 else y: float(v)
                                  for s in settlements for y, v in zip(fy, s.transition.scale_back[i])},
        "released_by_transition_gbp": {y: int(v) / 100 for y, v in zip(fy, oc.released[i])},
        "guarantee_paid_gbp": {y: int(v) / 100 for y, v in zip(fy, oc.guarantee[i].sum(axis=1))},
        "areas_at_floor": {y: int((bounds[:, t] == BOUND_FLOOR).any(axis=0).sum()) for t, y in enumerate(fy)},
        "areas_at_ceiling": {y: int((bounds[:, t] == BOUND_CEILING).any(axis=0).sum()) for t, y in enumerate(fy)},
    }

