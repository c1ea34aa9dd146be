"""Writing a run: Parquet tables with the output contract's schema and metadata, and the manifest, atomically.

Everything is written into a temporary sibling folder and renamed into place only when complete, so a failed or
interrupted run leaves any earlier output untouched and never a half-written one.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from fundform.outputs.schema import MONEY, OutputColumn, arrow_schema

MANIFEST_KEY = b"fundform"


def to_arrow(frame: pl.DataFrame, columns: tuple[OutputColumn, ...], price_base_year: str | None,
             file_metadata: dict) -> pa.Table:
    """Frame with money as int64 pence -> Arrow table with exact decimal pounds and the contract's metadata."""
    exprs = []
    for c in columns:
        if c.type == MONEY:
            exprs.append((pl.col(c.name).cast(pl.Decimal(22, 2)) / 100).cast(pl.Decimal(20, 2)).alias(c.name))
        else:
            exprs.append(pl.col(c.name))
    table = frame.select(exprs).to_arrow()
    schema = arrow_schema(columns, price_base_year)
    table = table.cast(schema)
    meta = {MANIFEST_KEY: json.dumps(file_metadata, sort_keys=True).encode()}
    return table.replace_schema_metadata({**(schema.metadata or {}), **meta})


def write_parquet(table: pa.Table, path: Path) -> None:
    pq.write_table(table, path, compression="zstd", write_statistics=True, store_schema=True)


def atomic_write_dir(target: Path, files: dict[str, pa.Table | str | bytes]) -> Path:
    """Write name -> Arrow table (Parquet), text or bytes into `target`, replacing any earlier content only on
    success."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".{target.name}.tmp-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    try:
        for name, content in files.items():
            if isinstance(content, pa.Table):
                write_parquet(content, tmp / name)
            elif isinstance(content, bytes):
                (tmp / name).write_bytes(content)
            else:
                (tmp / name).write_text(content)
        for f in tmp.iterdir():  # durable before it becomes visible
            with f.open("rb") as fh:
                os.fsync(fh.fileno())
        if os.environ.get("FUNDFORM_FAULT_PAUSE_BEFORE_RENAME"):  # failpoint for crash tests: a kill lands here
            time.sleep(float(os.environ["FUNDFORM_FAULT_PAUSE_BEFORE_RENAME"]))
        old = None
        if target.exists():
            old = target.parent / f".{target.name}.old-{os.getpid()}"
            target.rename(old)
        tmp.rename(target)
        if old is not None:
            shutil.rmtree(old)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def read_manifest(parquet_path: Path) -> dict:
    meta = pq.read_schema(parquet_path).metadata or {}
    return json.loads(meta[MANIFEST_KEY])
