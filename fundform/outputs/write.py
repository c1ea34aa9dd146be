"""Writing a run: Parquet tables with the output contract's schema and metadata, and the manifest, atomically.

Everything is written into a temporary sibling folder and renamed into place only when complete, so a failed or
interrupted run leaves any earlier output untouched and never a half-written one.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from fundform.errors import EnvironmentFailure, FundformError, environment_failure
from fundform.failpoints import failpoint
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


LEFTOVER = re.compile(r"^\.(?P<name>.+)\.(?P<kind>tmp|old)-(?P<pid>\d+)(?P<companion>\.wal)?$")


def pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def recover_leftovers(folder: Path) -> list[str]:
    """Put right what a killed writer left in `folder`: its temporary folder (`.NAME.tmp-PID`) is removed, and an
    earlier output it had moved aside (`.NAME.old-PID`) is restored to NAME if the new one never arrived, else
    removed. Only leftovers of processes no longer running are touched. Returns what was done."""
    done = []
    if not Path(folder).is_dir():
        return done
    for p in sorted(Path(folder).iterdir()):
        m = LEFTOVER.match(p.name)
        if not m or pid_alive(int(m["pid"])):
            continue
        final = p.parent / m["name"]
        if m["kind"] == "old" and not m["companion"] and not final.exists():
            p.rename(final)
            done.append(f"restored {final.name} from {p.name}")
        else:
            shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)
            done.append(f"removed {p.name}")
    return done


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def ensure_folder(folder: Path, what: str) -> None:
    """Create `folder` (and its parents), or say in the machine's terms why it cannot be: a path through a file, no
    permission, a read-only or full disk are environmental failures naming the path."""
    folder = Path(folder)
    for parent in [folder, *folder.parents]:
        if parent.exists():
            if not parent.is_dir():
                raise EnvironmentFailure(f"cannot create {what} {folder}: {parent} is a file, not a folder (choose "
                                         "another path)")
            break
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise (environment_failure(e, f"cannot create {what}") or e) from None


def check_replaceable(target: Path) -> None:
    """fundform replaces only what it wrote: an output folder may be new, empty, or an earlier fundform output (it
    holds a manifest.json). A file, or a folder of anything else (a dataset, someone's documents), is refused before
    anything is written, never moved aside or deleted."""
    target = Path(target)
    if not target.exists() and not target.is_symlink():
        return
    if target.is_symlink() or not target.is_dir():
        raise FundformError(f"the output path {target} is {'a link' if target.is_symlink() else 'a file'}, not a "
                            "folder fundform wrote: choose a new folder (nothing was written)")
    entries = [p.name for p in target.iterdir()]
    if entries and "manifest.json" not in entries:
        shown = ", ".join(sorted(entries)[:5]) + (" ..." if len(entries) > 5 else "")
        raise FundformError(f"the output folder {target} holds files fundform did not write ({shown}); it replaces "
                            "only an empty folder or an earlier output of its own (one with manifest.json): choose "
                            "a new folder (nothing was written)")


def atomic_write_dir(target: Path, files: dict[str, pa.Table | str | bytes]) -> Path:
    """Write name -> Arrow table (Parquet), text or bytes into `target`, replacing any earlier content only on
    success. First puts right what killed writers left beside it (recover_leftovers). A failure of the machine (disk
    full, permission denied, read-only) is raised as EnvironmentFailure naming the path; any failure leaves the
    earlier content in place and no temporary folder."""
    target = Path(target)
    check_replaceable(target)
    ensure_folder(target.parent, "the output folder")
    try:
        recover_leftovers(target.parent)
    except OSError as e:
        raise (environment_failure(e, "cannot write the output folder") or e) from None
    tmp = target.parent / f".{target.name}.tmp-{os.getpid()}"
    old = None
    try:
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir()
        for i, (name, content) in enumerate(files.items()):
            if i == len(files) // 2:
                failpoint("write.mid", tmp / name)
            if isinstance(content, pa.Table):
                write_parquet(content, tmp / name)
            elif isinstance(content, bytes):
                (tmp / name).write_bytes(content)
            else:
                (tmp / name).write_text(content)
        for f in tmp.iterdir():  # durable before it becomes visible
            with f.open("rb") as fh:
                os.fsync(fh.fileno())
        if os.environ.get("FUNDFORM_FAULT_PAUSE_BEFORE_RENAME"):  # older name of the write.before_rename failpoint
            time.sleep(float(os.environ["FUNDFORM_FAULT_PAUSE_BEFORE_RENAME"]))
        failpoint("write.before_rename", target)
        if target.exists():
            old = target.parent / f".{target.name}.old-{os.getpid()}"
            target.rename(old)
            failpoint("write.between_renames", target)
        tmp.rename(target)
        _fsync_dir(target.parent)
        if old is not None:
            shutil.rmtree(old)
    except BaseException as e:
        shutil.rmtree(tmp, ignore_errors=True)
        if old is not None and old.exists() and not target.exists():
            old.rename(target)  # the swap failed half way: the earlier output goes back
        env = environment_failure(e, "cannot write") if isinstance(e, Exception) else None
        if env is not None:
            raise env from None
        raise
    return target


def read_manifest(parquet_path: Path) -> dict:
    meta = pq.read_schema(parquet_path).metadata or {}
    return json.loads(meta[MANIFEST_KEY])
