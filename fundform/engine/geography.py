"""Rolling lower-tier quantities up to any output level through the area lookup (with apportionment shares)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import polars as pl

from fundform.base.errors import FundformError
from fundform.base.numeric import fixed_sum
from fundform.inputs.tables import LEVELS

if TYPE_CHECKING:
    from fundform.inputs.contracts import TableContract
    from fundform.inputs.dataset import Dataset


def roll_up(frame: pl.LazyFrame, lookup: pl.LazyFrame, level: str, additive: list[str],
            by: list[str] | None = None) -> pl.LazyFrame:
    """Sum additive lower-tier columns into the areas of `level`, each weighted by the authority's share.

    Returns area_code, area_name and the summed columns, one row per area of the level, sorted by code. Only
    additive quantities (populations, pounds, weighted populations) may be rolled up; ratios are recomputed.
    `by` keeps further keys (e.g. financial_year) apart."""
    by = by or []
    if level not in LEVELS and not level.startswith("deal:"):
        raise FundformError(f"unknown level '{level}' (known: {', '.join(LEVELS)})")
    lk = lookup.filter(pl.col("level") == level).select("area_code", "target_code", "target_name", "share")
    return (
        frame.join(lk, on="area_code", how="inner", maintain_order="left")
        .sort("target_code", *by, "area_code")
        .group_by("target_code", "target_name", *by, maintain_order=True)
        .agg([fixed_sum(pl.col(c) * pl.col("share")).alias(c) for c in additive])
        .rename({"target_code": "area_code", "target_name": "area_name"})
        .sort("area_code", *by)
    )


def deal_contract() -> TableContract:
    from fundform.inputs.contracts import Column, TableContract

    return TableContract(
        name="deal areas", description="A user's deal areas: which authorities (or parts of them) each deal covers.",
        source="the user", vintage="-",
        columns=(Column("area_code", "str", "GSS code", "lower-tier authority (2024 code)"),
                 Column("deal_code", "str", "code", "the deal area"),
                 Column("deal_name", "str", "text", "the deal area's name"),
                 Column("share", "float", "ratio", "share of the authority in the deal area", min=0, max=1,
                        min_exclusive=True)),
        key=("area_code", "deal_code"), covers_every_area=False)


def deal_level_name(path: Path) -> str:
    return f"deal:{Path(path).name}"


def deal_lookup(path: Path, areas: pl.DataFrame) -> pl.DataFrame:
    """Lookup rows for a user deal-area file: each listed authority's shares must sum to 1 (no double counting, no
    part left out); authorities the file does not list stand as themselves."""
    from fundform.base.errors import InvalidInput, Problem
    from fundform.inputs.contracts import row_labels
    from fundform.inputs.files import check_user_file

    path = Path(path)
    frame, problems = check_user_file(path, deal_contract())
    if frame is not None:
        names = dict(zip(areas["area_code"], areas["area_name"]))
        unknown = frame.with_row_index("__row").filter(~pl.col("area_code").is_in(list(names)))
        if unknown.height:
            problems.append(Problem(path.name, "area_code", f"{unknown.height} code(s) not among the authorities",
                                    "2024 lower-tier authority codes", row_labels(unknown, ["area_code"])))
        sums = frame.group_by("area_code").agg(pl.col("share").sum()).filter((pl.col("share") - 1).abs() > 1e-9)
        if sums.height:
            labels = tuple(f"{c} {names.get(c, '?')} sums to {s:g}" for c, s in sums.sort("area_code").rows())
            problems.append(Problem(path.name, "share", f"{sums.height} authority(ies) whose shares do not sum to 1",
                                    "each authority's shares across deal areas to sum to 1 (no double counting, "
                                    "nothing left out)", labels))
        many = frame.group_by("deal_code").agg(pl.col("deal_name").n_unique()).filter(pl.col("deal_name") > 1)
        if many.height:
            problems.append(Problem(path.name, "deal_name", "a deal code with more than one name",
                                    "one name per deal_code", tuple(many["deal_code"].to_list())))
    if problems or frame is None:
        raise InvalidInput(problems, str(path))
    level = deal_level_name(path)
    listed = frame.select("area_code", level=pl.lit(level), target_code="deal_code", target_name="deal_name",
                          share="share")
    rest = areas.filter(~pl.col("area_code").is_in(frame["area_code"].unique().to_list())).select(
        "area_code", level=pl.lit(level), target_code="area_code", target_name="area_name", share=pl.lit(1.0))
    return pl.concat([listed, rest]).sort("area_code", "target_code")


def with_level(data: Dataset, level: str, deal_file: Path | None) -> Dataset:
    """The dataset with the run's level in its lookup: a deal-area file's rows added when the level is one."""
    if deal_file is None:
        return data
    import dataclasses

    rows = deal_lookup(deal_file, data["areas"])
    lk = pl.concat([data["area_lookup"].select(rows.columns), rows])
    return dataclasses.replace(data, tables={**data.tables, "area_lookup": lk})  # every other field kept


def hint_lookup(data_dir: Path | str) -> pl.DataFrame | None:
    """The dataset's area lookup, for match_area's hint of the level a name belongs to (None if it has none)."""
    from pathlib import Path

    f = Path(data_dir) / "area_lookup.parquet"
    return pl.read_parquet(f) if f.is_file() else None


def match_area(frame: pl.DataFrame, query: str, level: str, lookup: pl.DataFrame | None = None) -> pl.DataFrame:
    """The rows of `frame` (area_code, area_name, ...) for the area a person named: its code, its exact name (any
    case), or a part of its name that only one area holds. No match names the levels where the name is an area, so
    "NHS Lincolnshire ICB" at lower tier says to use --level icb; several matches are listed."""
    names = frame.select("area_code", "area_name").unique().sort("area_code")
    q = query.strip().lower()
    plain = lambda e: e.str.to_lowercase().str.replace_all(r"[^a-z0-9]+", " ").str.strip_chars()
    pq = " ".join("".join(ch if ch.isalnum() else " " for ch in q).split())  # "St Helens" matches "St. Helens"
    for cond in (pl.col("area_code").str.to_lowercase() == q, pl.col("area_name").str.to_lowercase() == q,
                 plain(pl.col("area_name")) == pq,
                 pl.col("area_name").str.to_lowercase().str.contains(q, literal=True),
                 plain(pl.col("area_name")).str.contains(pq, literal=True) if pq else pl.lit(False)):
        hit = names.filter(cond)
        if hit.height == 1:
            return frame.filter(pl.col("area_code") == hit["area_code"][0])
        if hit.height > 1:
            raise FundformError(f"'{query}' matches {hit.height} areas at level {level}: "
                                + ", ".join(f"{c} {n}" for c, n in hit.rows()[:10])
                                + (" ..." if hit.height > 10 else "") + "; give the code or the whole name")
    elsewhere = []
    if lookup is not None:
        lk = lookup.filter(pl.col("level") != level).select("level", "target_code", "target_name").unique()
        found = lk.filter((pl.col("target_code").str.to_lowercase() == q)
                          | pl.col("target_name").str.to_lowercase().str.contains(q, literal=True))
        elsewhere = sorted({f"{r['target_name']} ({r['target_code']}) at --level {r['level']}"
                            for r in found.iter_rows(named=True)})
    hint = ("; it is an area of another level: " + ", ".join(elsewhere[:5])) if elsewhere else ""
    if not elsewhere:  # a misspelling: the names nearest to what was typed
        import difflib

        by_plain = {" ".join("".join(ch if ch.isalnum() else " " for ch in n.lower()).split()): (c, n)
                    for c, n in names.rows()}
        near = difflib.get_close_matches(pq, list(by_plain), n=3, cutoff=0.6)
        if near:
            hint = "; did you mean " + " or ".join(f"{by_plain[m][1]} ({by_plain[m][0]})" for m in near) + "?"
    raise FundformError(f"no area at level {level} matches '{query}'{hint}")
