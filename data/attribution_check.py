"""Distance from target of today's funding under the two ways of attributing NHS money to authorities, for
docs/nhs-rounds.md: by registered patients at practices located in the authority (before) and by residents x NHS
England's need per head (after, the bundled dataset). Reads ../shared/data like build_dataset.py; run from the
project root: .venv/bin/python data/attribution_check.py
"""
import shutil
from pathlib import Path

import numpy as np
import polars as pl

import fundform

src = Path(__file__).resolve().parent.parent.parent / "shared" / "data"
import tempfile

d = Path(tempfile.mkdtemp()) / "before"; shutil.rmtree(d, ignore_errors=True); shutil.copytree("data/default", d)
(d / "CHECKSUMS.sha256").unlink()
b = pl.read_parquet(d / "baseline.parquet")
core = pl.read_csv(src / "nhs-allocations/ICB_Core_Allocations_2025_26.csv", infer_schema_length=0).filter(pl.col("ICB23").str.contains(r"^Q")).select(icb="ICB23", core=pl.col("2025/26 Recurrent allocation (£k)").cast(float) * 1000)
pmc = pl.read_csv(src / "nhs-allocations/PMC_Allocations_2024_25.csv").select(icb="ICB23", pmc=pl.col("2024/25 Recurrent allocation (£k)") * 1000)
import importlib.util

spec = importlib.util.spec_from_file_location("bd", "data/build_dataset.py"); bd = importlib.util.module_from_spec(spec); spec.loader.exec_module(bd)
long = pl.read_csv(src / "lookups/lad21_icb22_registered_population_long.csv")
reg = (long.select(area_code=bd.to_2024_code("la_code"), icb="icb_code_ods", pop="registered_pop_2024_25_projection")
       .group_by("area_code", "icb").agg(pl.col("pop").sum()).with_columns(s=pl.col("pop") / pl.col("pop").sum().over("icb")))
old = reg.join(core.join(pmc, on="icb"), on="icb").group_by("area_code").agg(nhs_core=(pl.col("core") * pl.col("s")).sum(), nhs_primary_medical=(pl.col("pmc") * pl.col("s")).sum())
b.drop("nhs_core", "nhs_primary_medical").join(old, on="area_code").select(b.columns).write_parquet(d / "baseline.parquet")
def dist(data):
    r = fundform.run("fundform-needs", data=data, years=1)
    a = r.allocations.with_columns(dft=(pl.col("baseline").cast(float) / pl.col("target_allocation").cast(float) - 1))
    return a.select("area_code", "area_name", "dft")
before, after = dist(d), dist("data/default")
j = before.join(after.select("area_code", after="dft"), on="area_code")
q = [0, 0.05, 0.25, 0.5, 0.75, 0.95, 1]
print("| | min | 5% | 25% | median | 75% | 95% | max | mean abs | over +20% | under -20% |")
print("|---|---|---|---|---|---|---|---|---|---|---|")
for name, col in (("by practice location (before)", "dft"), ("by residents x need per head (after)", "after")):
    v = j[col].to_numpy()
    print(f"| {name} | " + " | ".join(f"{x:+.1%}" for x in np.quantile(v, q)) + f" | {np.abs(v).mean():.1%} | {(v > 0.2).sum()} | {(v < -0.2).sum()} |")
print()
names = ["E09000013", "E09000020", "E09000033", "E09000007", "E09000022", "E07000098", "E07000103"]
print("| authority | before | after |\n|---|---|---|")
for r in j.filter(pl.col("area_code").is_in(names)).sort("area_code").iter_rows(named=True):
    print(f"| {r['area_name']} | {r['dft']:+.1%} | {r['after']:+.1%} |")
