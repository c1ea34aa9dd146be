"""Funding streams: each sized by its own need and total, none funding another, linked growth, pooled exactly."""

import polars as pl
import pytest

from fundform.base.errors import SpecError
from fundform.formula.scenario import resolve_formula
from fundform.studies.pipeline import RunParameters, compute


@pytest.fixture(scope="module")
def hdc(bundled):
    return compute(bundled, resolve_formula("hdc-2021"), RunParameters())


def test_streams_add_to_the_pooled_allocation_to_the_penny(hdc):
    pooled = hdc.streams.group_by("area_code", "financial_year").agg(pl.col("allocation").sum(),
                                                                     pl.col("target_allocation").sum())
    j = hdc.allocations.join(pooled, on=["area_code", "financial_year"], suffix="_streams")
    assert j.height == 296 * 5
    assert (j["allocation"] == j["allocation_streams"]).all()
    assert (j["target_allocation"] == j["target_allocation_streams"]).all()


def test_no_stream_funds_another(hdc):
    per = hdc.streams.group_by("stream", "financial_year").agg(pl.col("allocation").sum(),
                                                               pl.col("control_total").first())
    assert per.height == 4 * 5
    assert (per["allocation"] == per["control_total"]).all()
    assert hdc.reconciliation["holds"].all()


def test_social_care_and_public_health_grow_with_core_nhs(hdc):
    ct = hdc.streams.group_by("stream", "year_index").agg(pl.col("control_total").first()).sort("year_index")
    growth = {s: (g := ct.filter(pl.col("stream") == s)["control_total"].to_numpy().astype(float))[1:] / g[:-1]
              for s in ("nhs_core", "adult_social_care", "public_health", "primary_care")}
    for s in ("adult_social_care", "public_health", "primary_care"):
        assert growth[s] == pytest.approx(growth["nhs_core"], rel=1e-9)


def test_each_stream_is_sized_by_its_own_need(hdc):
    # social care need is weighted to old age: the oldest areas' share of social care exceeds their NHS share
    s = hdc.streams.filter(pl.col("year_index") == 1).pivot(on="stream", index="area_code",
                                                            values="target_allocation")
    s = s.with_columns([pl.col(c).cast(pl.Float64) / pl.col(c).cast(pl.Float64).sum()
                        for c in ("nhs_core", "adult_social_care")])
    assert (s["adult_social_care"] - s["nhs_core"]).abs().max() > 1e-4


@pytest.mark.parametrize("expr, message", [
    ('streams.primary_care.baseline_components=["nhs_core"]', "counted twice"),
    ('streams.public_health.linked_to="social_care"', "linked_to 'social_care' is not a stream"),
])
def test_stream_faults_are_rejected(expr, message):
    with pytest.raises(SpecError, match=message):
        resolve_formula("hdc-2021", [expr])
