"""Boundary vintages: inputs on older area codes converted to the dataset's (2024) codes, by documented rules.

The code-change table (`code_changes`) lists each old district and the authority it merged into (2019, 2020, 2021
and 2023 reorganisations; every change since 2019 is a whole-district merge). A per-area input whose codes are not
the dataset's but resolve through that table (following chains: Taunton Deane -> Somerset West and Taunton ->
Somerset) is converted column by column as its contract says: rates and scores become the population-weighted mean
of the old districts (weights: IoD2019 population denominators), counts are summed, ranks are recomputed from the
converted column they rank, and a column with no rule stops the conversion with a message. Each conversion applied
is returned, and the run's manifest lists them.
"""

from __future__ import annotations

import polars as pl

from fundform.base.errors import Problem
from fundform.inputs.contracts import TableContract


def resolve_chains(changes: pl.DataFrame, current: set[str]) -> dict[str, str]:
    step = dict(zip(changes["old_code"], changes["new_code"]))
    out = {}
    for old in step:
        code, hops = old, 0
        while code in step and code not in current and hops < 10:
            code, hops = step[code], hops + 1
        if code in current:
            out[old] = code
    return out


def convert(frame: pl.DataFrame, contract: TableContract, changes: pl.DataFrame | None, current: set[str],
            file: str) -> tuple[pl.DataFrame, list[dict], list[Problem]]:
    codes = set(frame["area_code"].to_list())
    old = codes - current
    if not old or changes is None:
        return frame, [], []
    mapping = resolve_chains(changes, current)
    convertible = sorted(old & set(mapping))
    if not convertible:
        return frame, [], []
    weights = dict(zip(changes["old_code"], changes["population_weight"]))
    problems = []
    # keys must be unique after conversion too: an authority given on its old codes and on its new code would be
    # counted twice (its population doubled, say). Both rows are named, by their row in the file.
    rows = {code: i + 1 for i, code in enumerate(frame["area_code"].to_list())}
    clashes = [f"row {rows[o]} ({o}, converted to {mapping[o]}) and row {rows[mapping[o]]} ({mapping[o]})"
               for o in convertible if mapping[o] in codes]
    if clashes:
        problems.append(Problem(file, "area_code", f"{len(clashes)} authority(ies) given on both an old and the "
                                "current boundary vintage", "each authority once: either its old codes (converted) "
                                "or its current code, not both", tuple(clashes)))
        return frame, [], problems
    no_rule = [c.name for c in contract.columns if c.name != "area_code" and c.name in frame.columns
               and c.combine is None]
    if no_rule:
        problems.append(Problem(file, ",".join(no_rule), f"codes from an older boundary vintage "
                                f"({', '.join(convertible[:5])}...) but no rule to convert these columns",
                                "inputs on the dataset's 2024 codes, or a table whose columns declare how to combine"))
        return frame, [], problems
    no_weight = [c for c in convertible if weights.get(c) is None]
    if no_weight and any(c.combine == "mean" for c in contract.columns if c.name in frame.columns):
        problems.append(Problem(file, "area_code", "old codes without a population weight to average them",
                                "code_changes rows with population_weight", tuple(no_weight[:50])))
        return frame, [], problems
    tagged = frame.with_columns(
        new_code=pl.col("area_code").replace(mapping),
        w=pl.col("area_code").replace_strict(weights, default=None, return_dtype=pl.Float64))
    moved = tagged.filter(pl.col("area_code").is_in(convertible))
    aggs = []
    for c in contract.columns:
        if c.name == "area_code" or c.name not in frame.columns:
            continue
        col = pl.col(c.name)
        if c.combine == "mean":
            aggs.append(((col * pl.col("w")).sum() / pl.col("w").sum()).alias(c.name))
        elif c.combine == "sum":
            aggs.append(col.sum().alias(c.name))
        elif c.combine == "same":
            aggs.append(col.first().alias(c.name))
        elif c.combine == "converted":
            aggs.append(pl.lit("converted from older codes").alias(c.name))
        else:  # rank:<column>, recomputed below
            aggs.append(col.first().alias(c.name))
    merged = moved.group_by("new_code", maintain_order=True).agg(aggs).rename({"new_code": "area_code"})
    out = pl.concat([frame.filter(~pl.col("area_code").is_in(convertible)), merged.select(frame.columns)],
                    how="vertical_relaxed").sort("area_code")
    for c in contract.columns:
        if c.combine and c.combine.startswith("rank:") and c.name in out.columns:
            of = c.combine.split(":", 1)[1]
            out = out.with_columns(pl.col(of).rank("min", descending=True).cast(out.schema[c.name]).alias(c.name))
    applied = [{"table": contract.name, "new_code": new, "old_codes": sorted(g["area_code"].to_list()),
                "change_years": sorted(set(changes.filter(pl.col("old_code").is_in(g["area_code"].to_list()))
                                           ["change_year"].to_list()))}
               for (new,), g in moved.group_by("new_code", maintain_order=True)]
    return out, sorted(applied, key=lambda d: d["new_code"]), problems


def aggregate_small_areas(frame: pl.DataFrame, contract: TableContract, file: str
                          ) -> tuple[pl.DataFrame, list[dict], list[Problem]]:
    """A per-area input given for small areas (LSOAs: `small_area_code`, weighted by `small_area_population`),
    summed to its authorities by the contract's combine rules: rates, scores and ranks become population-weighted
    means (an authority's average LSOA rank is the IoD's "average rank"), ranks of a converted column are
    recomputed."""
    if "small_area_code" not in frame.columns:
        return frame, [], []
    if "small_area_population" not in frame.columns:
        return frame, [], [Problem(file, "small_area_population", "column is missing", "each small area's population, "
                                   "to weight its values when they are summed to authorities")]
    # the weights are checked like any column: numbers >= 0, none missing, and some population in every authority
    # (a zero total would average by dividing by zero)
    from fundform.inputs.contracts import Column, TableContract, check_table

    weights = TableContract("small areas", "", "", "", (
        Column("small_area_code", "str", "code", "small area"), Column("area_code", "str", "GSS code", "authority"),
        Column("small_area_population", "float", "persons", "the small area's population", min=0, max=1e9)),
        key=("small_area_code",))
    frame_w, problems = check_table(frame.select("small_area_code", "area_code", "small_area_population"), weights,
                                    file)
    if problems or frame_w is None:
        return frame, [], problems
    frame = frame.with_columns(small_area_population=frame_w["small_area_population"])
    empty = frame.group_by("area_code").agg(w=pl.col("small_area_population").sum()).filter(pl.col("w") <= 0)
    if empty.height:
        return frame, [], [Problem(file, "small_area_population", f"{empty.height} authority(ies) whose small areas "
                                   "have no population at all", "a population > 0 in each authority's small areas "
                                   "(their values are averaged weighted by it)",
                                   tuple(sorted(empty["area_code"].to_list())[:50]))]
    aggs, problems = [], []
    for c in contract.columns:
        if c.name == "area_code" or c.name not in frame.columns:
            continue
        col = pl.col(c.name)
        w = pl.col("small_area_population")
        if c.combine == "mean":
            aggs.append(((col * w).sum() / w.sum()).alias(c.name))
        elif c.combine == "sum":
            aggs.append(col.sum().alias(c.name))
        elif c.combine in ("same", "converted") or (c.combine or "").startswith("rank:"):
            aggs.append(col.first().alias(c.name))
        else:
            problems.append(Problem(file, c.name, "no rule to sum this column from small areas",
                                    "a column whose contract declares how to combine"))
    if problems:
        return frame, [], problems
    out = frame.group_by("area_code").agg(aggs, n=pl.len()).sort("area_code")
    for c in contract.columns:
        if c.combine and c.combine.startswith("rank:") and c.name in out.columns:
            of = c.combine.split(":", 1)[1]
            out = out.with_columns(pl.col(of).rank("min", descending=True).cast(out.schema[c.name]).alias(c.name))
    note = [{"table": contract.name, "aggregated_small_areas": frame.height, "to_areas": out.height}]
    return out.drop("n"), note, []
