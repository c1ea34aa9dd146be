"""W2: the small-area national run, from 6.1 million LSOA x age x sex rows to authority-level five-year target
allocations, written four ways: fundform's own (Polars preparing exact sums, the need computed once in NumPy), plain pandas, DuckDB SQL, and the I/O floor (reading just
the needed columns).

The formula is fundform-needs' need and targets: population by single year of age x the age cost curve, summed to
authorities, x the deprivation multiplier ((IMD score / national) ^ 0.25 bounded to 0.7-1.4) x the preventable
mortality multiplier (1 + 0.15 x (rate / national - 1)), national values population-weighted; target share = need
share; target allocation = share x each year's control total. The pandas and DuckDB versions are written as a
competent analyst would (vectorised, one pass, no loops over rows); each returns a frame of area_code, year,
target share and target allocation, checked against fundform's.

Run one implementation in a fresh process (for clean memory figures):
    python benchmarks/w2_impls.py IMPL DATA_DIR   -> prints JSON {seconds, checksum}
"""

from __future__ import annotations

import json
import sys
import time
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
YEARS = ["2026/27", "2027/28", "2028/29", "2029/30", "2030/31"]


def formula_numbers():
    spec = tomllib.loads((ROOT / "formulas" / "fundform-needs.toml").read_text())
    bands = [(b["from"], b["to"], b["weight"]) for b in spec["need"]["age_cost_curve"]["bands"]]
    weights = {a: w for lo, hi, w in bands for a in range(lo, hi + 1)}
    return weights


def control_totals(data: Path) -> list[float]:
    """Each year's control total in pounds, as fundform computes it (base x (1.02 x 1.02)^years since 2024/25)."""
    import polars as pl

    b = pl.read_parquet(data / "baseline.parquet")
    base = round(sum(b[c].sum() for c in ("nhs_core", "nhs_primary_medical", "adult_social_care", "public_health"))
                 * 100)
    return [round(base * 1.0404 ** (2 + i)) / 100 for i in range(len(YEARS))]


class _Scanned:
    """The dataset as the engine's need reads it, its population scanned lazily from the file (only the columns
    the need uses, the group-by fused with the read), the indicators read whole."""

    def __init__(self, data: Path):
        self.data = data

    def lazy(self, name: str):
        import polars as pl

        return pl.scan_parquet(self.data / f"{name}.parquet").select("area_code", "age", "population")

    def __getitem__(self, name: str):
        import polars as pl

        return pl.read_parquet(self.data / f"{name}.parquet")

    def memo(self, key, compute):
        return compute()


def run_fundform(data: Path):
    """The engine's own need (fundform.engine.need.axis: exact band and indicator sums prepared by Polars, the need computed
    once) and target allocations."""
    import polars as pl

    from fundform.engine.need.axis import compute_need, need_inputs, own_numbers
    from fundform.formula.scenario import resolve_formula

    spec = resolve_formula("fundform-needs").spec
    need = compute_need(need_inputs(_Scanned(data), spec.need), spec.need, own_numbers())
    nwp = need.need_weighted[0]
    ct = pl.DataFrame({"year": YEARS, "control_total": control_totals(data)})
    return (pl.DataFrame({"area_code": need.inputs.codes, "target_share": nwp / nwp.sum()}).join(ct, how="cross")
            .with_columns(target_allocation=pl.col("target_share") * pl.col("control_total")))


def run_pandas(data: Path):
    import numpy as np
    import pandas as pd

    w = pd.Series(formula_numbers(), name="weight").rename_axis("age").reset_index()
    pop = pd.read_parquet(data / "population.parquet", columns=["area_code", "age", "population"])
    pop = pop.merge(w, on="age", how="left")
    pop["awp"] = pop["population"] * pop["weight"]
    area = pop.groupby("area_code", sort=True)[["population", "awp"]].sum()
    dep = pd.read_parquet(data / "deprivation.parquet").set_index("area_code")["imd_average_score"]
    mort = pd.read_parquet(data / "preventable_mortality.parquet").set_index("area_code")[
        "preventable_mortality_rate"]
    area = area.join(dep).join(mort)
    nat_dep = (area["imd_average_score"] * area["population"]).sum() / area["population"].sum()
    nat_mort = (area["preventable_mortality_rate"] * area["population"]).sum() / area["population"].sum()
    m_dep = np.clip((area["imd_average_score"] / nat_dep) ** 0.25, 0.7, 1.4)
    m_mort = 1 + 0.15 * (area["preventable_mortality_rate"] / nat_mort - 1)
    nwp = area["awp"] * m_dep * m_mort
    share = (nwp / nwp.sum()).rename("target_share").reset_index()
    ct = pd.DataFrame({"year": YEARS, "control_total": control_totals(data)})
    out = share.merge(ct, how="cross")
    out["target_allocation"] = out["target_share"] * out["control_total"]
    return out


def run_duckdb(data: Path):
    import duckdb

    weights = formula_numbers()
    con = duckdb.connect()
    con.execute("CREATE TABLE w AS SELECT * FROM (VALUES " + ",".join(f"({a}, {v})" for a, v in weights.items())
                + ") t(age, weight)")
    con.execute("CREATE TABLE ct AS SELECT * FROM (VALUES " + ",".join(
        f"('{y}', {c})" for y, c in zip(YEARS, control_totals(data))) + ") t(year, control_total)")
    return con.sql(f"""
        WITH area AS (
            SELECT area_code, sum(population) AS population, sum(population * weight) AS awp
            FROM read_parquet('{data / 'population.parquet'}') p JOIN w USING (age) GROUP BY area_code),
        ind AS (
            SELECT a.*, d.imd_average_score AS dep, m.preventable_mortality_rate AS mort
            FROM area a JOIN read_parquet('{data / 'deprivation.parquet'}') d USING (area_code)
                        JOIN read_parquet('{data / 'preventable_mortality.parquet'}') m USING (area_code)),
        nat AS (SELECT sum(dep * population) / sum(population) AS nd, sum(mort * population) / sum(population) AS nm
                FROM ind),
        nwp AS (SELECT area_code, awp * least(greatest(pow(dep / nd, 0.25), 0.7), 1.4) * (1 + 0.15 * (mort / nm - 1))
                       AS nwp FROM ind, nat),
        share AS (SELECT area_code, nwp / sum(nwp) OVER () AS target_share FROM nwp)
        SELECT area_code, target_share, year, control_total, target_share * control_total AS target_allocation
        FROM share, ct ORDER BY area_code, year""").pl()


def run_floor(data: Path):
    import polars as pl

    return pl.read_parquet(data / "population.parquet", columns=["area_code", "age", "population"])


IMPLS = {"fundform": run_fundform, "pandas": run_pandas, "duckdb": run_duckdb, "floor": run_floor}


def checksum(result) -> float:
    """Exact sum, independent of row order (the implementations return rows in different orders)."""
    import math

    col = "target_allocation" if "target_allocation" in result.columns else "population"  # the floor: raw columns
    return math.fsum(result[col].to_list())


IMPORTS = {"fundform": ["polars", "fundform.engine.need.axis", "fundform.formula.scenario"],
           "pandas": ["pandas", "numpy", "pyarrow.parquet"], "duckdb": ["duckdb", "polars"], "floor": ["polars"]}

if __name__ == "__main__":
    impl, data = sys.argv[1], Path(sys.argv[2])
    sys.path.insert(0, str(ROOT))
    import importlib

    for mod in IMPORTS[impl]:  # libraries load before the clock starts, for every implementation alike
        importlib.import_module(mod)
    t = time.perf_counter()
    res = IMPLS[impl](data)
    print(json.dumps({"seconds": time.perf_counter() - t, "checksum": checksum(res)}))
