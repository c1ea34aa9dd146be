"""A run as a whole: plan it (its resolved version, inputs' hashes and id, before computing anything), load and
check the data, compute, and write it atomically with its manifest (and record it in the warehouse)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl

from fundform.base.errors import InternalError, present
from fundform.base.failpoints import failpoint
from fundform.engine.params import RunParameters
from fundform.engine.results import RunResult
from fundform.formula.scenario import ResolvedFormula, resolve_formula
from fundform.formula.spec import assumed_numbers
from fundform.inputs.cache import checked_dataset  # noqa: F401  (where it was: the API and tests read it here)
from fundform.inputs.files import indicator_files, sha256_file, table_sources
from fundform.inputs.tables import CONTRACTS, INDICATOR_PREFIX
from fundform.inputs.uncertainty import UncertaintySpec
from fundform.outputs.manifest import build_manifest, with_volatile
from fundform.outputs.registry import OUTPUTS
from fundform.outputs.warehouse import check_usable, record_run
from fundform.outputs.write import atomic_write_dir, to_arrow
from fundform.studies.pipeline import compute

if TYPE_CHECKING:
    from fundform.studies.executors import Executor


@dataclass
class RunPlan:
    """What a run will be, known before computing anything: its resolved formula, its inputs' hashes, its id."""

    formula: ResolvedFormula
    inputs: list[dict[str, Any]]
    parameters: dict[str, Any]
    run_id: str
    core: dict[str, Any]


def plan_run(formula_ref: str, data_dir: Path, params: RunParameters, sets: tuple[str, ...] = (),
             index_files: dict[str, Path] | None = None, *, uncertainty: UncertaintySpec | None = None) -> RunPlan:
    formula = resolve_formula(formula_ref, sets, index_files=index_files)
    inputs = []
    for name in CONTRACTS:
        for path in table_sources(Path(data_dir), name):
            rel = path.name if path.parent == Path(data_dir) else f"{path.parent.name}/{path.name}"
            inputs.append({"table": name, "file": rel, "sha256": sha256_file(path)})
    inputs += [{"table": f"{INDICATOR_PREFIX}{path.stem}", "file": f"{INDICATOR_PREFIX}{path.name}",
                "sha256": sha256_file(path)} for path in indicator_files(Path(data_dir))]
    inputs += [{"table": name, "file": Path(path).name, "sha256": sha256_file(Path(path))}
               for name, path in (("precept_rates", params.precept_rates), ("local_bases", params.local_bases),
                                  ("deal_areas", params.deal_file)) if path and Path(path).is_file()]
    parameters = params.as_dict()
    if uncertainty is not None:  # the draws are part of what the run is: its id hashes the file and its draws' files
        parameters["uncertainty"] = {"file": present(uncertainty.path, "the uncertainty file").name,
                                     "sha256": uncertainty.sha256,
                                     "draws": uncertainty.draws, "seed": uncertainty.seed}
        inputs += [{"table": f"uncertainty draws of {s.label}", "file": Path(present(s.file, "a file of draws")).name,
                    "sha256": sha256_file(uncertainty.file_of(s))}
                   for s in uncertainty.sources if s.method == "draws" and uncertainty.file_of(s).is_file()]
    core = build_manifest(
        formula={"id": formula.spec.id, "version": formula.spec.version, "title": formula.spec.title,
                 "sha256": formula.sha256,
                 "file": formula.path.name, "resolved_sha256": formula.resolved_sha256,
                 "scenario": Path(formula.scenario).name if formula.scenario else None,
                 **({"scenario_title": formula.scenario_title} if formula.scenario_title else {})},
        inputs=inputs, parameters=parameters, overrides=[o.as_dict() for o in formula.overrides],
        policies={}, data_dir=str(data_dir),
        assumptions=[{"path": a["path"], "value": a["value"]} for a in assumed_numbers(formula.spec)])
    return RunPlan(formula, inputs, parameters, core["run_id"], core)


def run(formula_ref: str, data_dir: Path, params: RunParameters, out_dir: Path | None, out_root: Path,
        *, progress: Callable[[str], None] | None = None, write: bool = True, sets: tuple[str, ...] = (),
        index_files: dict[str, Path] | None = None, warehouse: Path | None = None,
        plan: RunPlan | None = None, use_cache: bool = True, uncertainty: UncertaintySpec | None = None,
        executor: Executor | None = None) -> RunResult:
    """Load and check everything, compute, and write the run atomically. Nothing is written if anything fails.

    formula_ref is a formula id, a formula file or a scenario file; sets are --set key.path=value overrides.
    `uncertainty` (inputs.uncertainty.UncertaintySpec): the draws of the inputs, evaluated around the run
    (studies.uncertainty) and written beside it as uncertainty.parquet and sensitivity.parquet; `executor`: where its
    chunks of draws run (studies.executors; threads when None)."""
    step = progress or (lambda _msg: None)
    if write and warehouse is not None:
        check_usable(warehouse)
    step("reading the formula version")
    plan = plan or plan_run(formula_ref, data_dir, params, sets, index_files, uncertainty=uncertainty)
    formula = plan.formula
    step("reading and checking the input data")
    data = checked_dataset(data_dir, params.allow_implausible, use_cache)
    rows = {(f.path.name if f.path.parent == Path(data_dir) else f"{f.path.parent.name}/{f.path.name}"): f.rows
            for f in data.files}
    result = compute(data, formula, params, progress)
    failpoint("run.after_compute", out_dir)
    manifest = {**plan.core, "inputs": [{**i, **({"rows": rows[i["file"]]} if i["file"] in rows else {})}
                                        for i in plan.inputs], "policies": result.policies}
    result.manifest = manifest
    if not result.reconciliation["holds"].all():
        bad = result.reconciliation.filter(~pl.col("holds"))
        raise InternalError(f"internal error: reconciliation failed:\n{bad}")
    result.uncertainty = None
    if uncertainty is not None:
        from fundform.studies.uncertainty import run_uncertainty

        step(f"{uncertainty.draws:,} draws of the inputs")
        result.uncertainty = run_uncertainty(data, formula, params, uncertainty, result, executor=executor)
        manifest["uncertainty"] = {**plan.parameters["uncertainty"], "sources": result.uncertainty.sources}
    if write:
        step("writing outputs")
        target = Path(out_dir) if out_dir else Path(out_root) / manifest["run_id"]
        meta = {**manifest, "price_base_year": params.price_base}
        files = {f"{o.name}.parquet": to_arrow(result.tables[o.name], o.columns, params.price_base if o.priced
                                               else None, meta) for o in OUTPUTS}
        if result.uncertainty is not None:
            from fundform.outputs.schema import SENSITIVITY, UNCERTAINTY

            files["uncertainty.parquet"] = to_arrow(result.uncertainty.bands, UNCERTAINTY, None, meta)
            files["sensitivity.parquet"] = to_arrow(result.uncertainty.sensitivity, SENSITIVITY, None, meta)
            if result.uncertainty.draws_file is not None:  # every draw's figures, copied a row group at a time
                from fundform.outputs.write import StreamedParquet

                files["draws.parquet"] = StreamedParquet(result.uncertainty.draws_file, meta)
        # allow_nan=False: a NaN or infinity can never reach a manifest as bare, invalid JSON
        files["manifest.json"] = json.dumps(with_volatile(manifest, str(data_dir), data.checks), indent=2,
                                            sort_keys=True,
                                            allow_nan=False) + "\n"
        try:
            result.out_dir = atomic_write_dir(target, files)
        finally:
            _drop_draws_file(result)
        if warehouse is not None:
            step("recording in the run warehouse")
            record_run(warehouse, result.out_dir)
    else:
        _drop_draws_file(result)
    return result


def _drop_draws_file(result: RunResult) -> None:
    """The temporary file of every draw's figures, once written into the run (or not wanted): removed."""
    import shutil

    f = getattr(result.uncertainty, "draws_file", None) if result.uncertainty is not None else None
    if f is not None:
        shutil.rmtree(Path(f).parent, ignore_errors=True)
