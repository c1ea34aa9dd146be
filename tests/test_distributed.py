"""Beyond one machine (fundform.studies.executors): a sweep and a design settled as tasks on a Dask cluster started here
(worker processes of their own, each reading the data itself) give the figures the threads of one process give, to
the penny."""

from __future__ import annotations

import numpy as np
import pytest

distributed = pytest.importorskip("distributed", reason="the distributed extra is part of `make test`'s lock")

from fundform.base.paths import PROJECT_ROOT
from fundform.formula.scenario import resolve_formula
from fundform.studies.designer import load_design, run_design
from fundform.studies.executors import Dask, Threads, executor
from fundform.studies.pipeline import RunParameters
from fundform.studies.sweeps import CHUNK, parse_parameters, run_sweep


@pytest.fixture(scope="module")
def cluster():
    c = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None)
    yield c
    c.close()


@pytest.fixture(scope="module")
def on_cluster(cluster):
    ex = Dask(cluster.scheduler_address)
    yield ex
    ex.close()


def test_a_sweep_on_a_cluster_equals_the_local_one_to_the_penny(bundled, on_cluster):
    f = resolve_formula("fundform-needs")
    names, values = parse_parameters(["transition.floor=-0.02:0.01", "need.indicators.deprivation.elasticity=0.1:0.4"],
                                     CHUNK + 300, 7)  # two chunks: the first settled here, the second on a worker
    params = RunParameters(years=2)
    local = run_sweep(bundled, f, params, names, values, executor=Threads())
    remote = run_sweep(bundled, f, params, names, values, executor=on_cluster)
    assert np.array_equal(local.grants, remote.grants) and np.array_equal(local.bounds, remote.bounds)
    assert local.stats.equals(remote.stats) and local.scenarios.equals(remote.scenarios)
    # the workers did the work: their processes hold the dataset they read, not this one
    assert on_cluster.client.run(lambda: __import__("os").getpid()) != {}


def test_a_design_on_a_cluster_equals_the_local_one(bundled, on_cluster, tmp_path):
    ds = load_design(PROJECT_ROOT / "formulas" / "designs" / "nhs-cap-within-2-5.toml").model_copy(
        update={"draws": 128, "refine": 32})
    f = resolve_formula(ds.version)
    params = RunParameters(level="icb", start_year="2026/27", years=3)
    local = run_design(ds, bundled, f, params, executor=Threads())
    remote = run_design(ds, bundled, f, params, executor=on_cluster)
    assert local.points.equals(remote.points) and local.chosen == remote.chosen


def test_an_unknown_executor_is_a_usage_error():
    from fundform.base.errors import UsageProblem

    with pytest.raises(UsageProblem, match="local, dask"):
        executor("spark")


def test_draws_of_the_inputs_on_a_cluster_equal_the_threads_to_the_penny(bundled, on_cluster, tmp_path):
    from fundform.engine.draws import make_draws
    from fundform.inputs.uncertainty import read_uncertainty
    from fundform.studies.uncertainty import evaluate_draws

    (tmp_path / "u.toml").write_text('draws = 30\nseed = 2\n[[sources]]\ninput = "population"\nmethod = "vintages"\n'
                                     'variant = "snpp2018"\n[[sources]]\ninput = "preventable_mortality"\n'
                                     'column = "preventable_mortality_rate"\nmethod = "sampling"\n')
    f = resolve_formula("fundform-needs")
    params = RunParameters(years=2)
    draws = make_draws(bundled, read_uncertainty(tmp_path / "u.toml"), f.spec, ["2026/27", "2027/28"])
    local = evaluate_draws(bundled, f.spec, params, draws, chunk=10)
    remote = evaluate_draws(bundled, f.spec, params, draws, chunk=10, executor=on_cluster)  # three tasks
    assert np.array_equal(local.allocation, remote.allocation) and np.array_equal(local.grant, remote.grant)
