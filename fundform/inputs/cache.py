"""Checked inputs, cached by content: a dataset that passed every contract is kept as typed tables (Arrow IPC), so a
later run on the same files reads them instead of reading and checking the files again.

- Keyed by the SHA-256 of every file in the dataset folder (its relative path and content), the cache format, the
  checking code itself (the SHA-256 of fundform/inputs/*.py and the Polars version) and whether implausible values
  were allowed: any changed, added or removed file, or a change to a check, misses the cache.
- Written atomically: an entry is built in a temporary folder and renamed into place whole; a process killed
  mid-write leaves only a temporary folder, which is never read (and is removed later). Two processes writing the
  same entry at once: the first rename wins, the other's copy is discarded (the contents are the same).
- Verified when read: entry.json records the SHA-256 of each table file; a corrupted, truncated or unreadable entry
  is deleted and the inputs are read and checked again, never trusted.
- Bounded: at most MAX_ENTRIES entries and MAX_BYTES in all, the least recently used removed first.
- `fundform run --no-cache` (or FUNDFORM_NO_CACHE=1) reads and checks the files every time; `fundform cache clear`
  empties it; each run's manifest.json says whether its input checks ran or were reused (`input_checks`).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fundform.base.failpoints import failpoint

if TYPE_CHECKING:
    from fundform.inputs.dataset import Dataset

FORMAT = 1
MAX_ENTRIES = 8
MAX_BYTES = 2 * 1024 ** 3
ENTRY = "entry.json"


def cache_root() -> Path:
    """FUNDFORM_CACHE, else the output root's .cache/inputs (beside the runs it serves)."""
    if os.environ.get("FUNDFORM_CACHE"):
        return Path(os.environ["FUNDFORM_CACHE"])
    from fundform.base.config import load_settings

    return Path(load_settings().out_root) / ".cache" / "inputs"


def enabled() -> bool:
    return os.environ.get("FUNDFORM_NO_CACHE", "").strip().lower() not in ("1", "true", "yes")


def _checks_fingerprint() -> str:
    """The checking code: a change to a contract, a bound or a check misses every entry made before it."""
    from importlib.metadata import version

    h = hashlib.sha256(f"{FORMAT} polars {version('polars')}".encode())
    for f in sorted((Path(__file__).parent).glob("*.py")):
        h.update(f.name.encode() + f.read_bytes())
    return h.hexdigest()


def dataset_key(directory: Path, allow_implausible: bool) -> str:
    """The key of a dataset folder's checked tables: every file's path and content, and the checking code."""
    from fundform.inputs.files import sha256_file

    directory = Path(directory)
    files = sorted(p for p in directory.rglob("*") if p.is_file())
    h = hashlib.sha256(json.dumps({"checks": _checks_fingerprint(), "allow_implausible": allow_implausible}).encode())
    for p in files:
        h.update(f"{p.relative_to(directory).as_posix()}\0{sha256_file(p)}\n".encode())
    return h.hexdigest()[:32]


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def read(directory: Path, key: str, root: Path | None = None) -> Dataset | None:
    """The checked dataset of an entry, verified; None if there is none or it fails verification (then deleted)."""
    import polars as pl

    from fundform.inputs.dataset import Dataset
    from fundform.inputs.files import InputFile

    entry = (root or cache_root()) / key
    meta_file = entry / ENTRY
    if not meta_file.is_file():
        return None
    try:
        meta = json.loads(meta_file.read_text())
        if meta.get("key") != key or meta.get("format") != FORMAT:
            raise ValueError("entry of another key or format")
        tables = {}
        for name, t in meta["tables"].items():
            raw = (entry / t["file"]).read_bytes()  # read once: verified, then parsed from the same bytes
            if hashlib.sha256(raw).hexdigest() != t["sha256"]:
                raise ValueError(f"{t['file']} does not match its recorded SHA-256")
            tables[name] = pl.read_ipc(io.BytesIO(raw))
        files = tuple(InputFile(t, Path(directory) / rel, sha, rows) for t, rel, sha, rows in meta["files"])
        os.utime(meta_file)  # least recently used: this entry was just used
        return Dataset(Path(directory), tables, files, tuple(meta["conversions"]), tuple(meta["implausible"]),
                       checks="reused")
    except Exception:  # an entry that cannot be verified is never trusted: drop it, check again
        shutil.rmtree(entry, ignore_errors=True)
        return None


def write(data: Dataset, key: str, root: Path | None = None) -> None:
    """Keep a checked dataset, atomically; a failure to cache (a full disk, say) never fails the run."""
    root = root or cache_root()
    final = root / key
    if final.exists():
        return
    tmp = root / f".tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        tmp.mkdir(parents=True)
        tables = {}
        for i, (name, frame) in enumerate(sorted(data.tables.items())):
            f = tmp / f"{i:02d}.arrow"
            frame.write_ipc(f, compression="lz4")
            tables[name] = {"file": f.name, "sha256": _sha256(f)}
            if i == 1:
                failpoint("cache.mid_write", tmp)
        meta = {"format": FORMAT, "key": key, "tables": tables,
                "files": [[x.table, x.path.relative_to(data.directory).as_posix(), x.sha256, x.rows]
                          for x in data.files],
                "conversions": list(data.conversions), "implausible": list(data.implausible)}
        (tmp / ENTRY).write_text(json.dumps(meta, sort_keys=True, default=str))
        for f in tmp.iterdir():
            with f.open("rb") as fh:
                os.fsync(fh.fileno())
        failpoint("cache.before_rename", tmp)
        try:
            os.rename(tmp, final)
        except OSError:  # another process put the same entry in place first: keep theirs
            shutil.rmtree(tmp, ignore_errors=True)
        _bound(root, keep=final)
    except Exception:  # the cache is an optimisation: the run goes on without it
        shutil.rmtree(tmp, ignore_errors=True)


def _bound(root: Path, keep: Path) -> None:
    """At most MAX_ENTRIES entries and MAX_BYTES in all (least recently used removed first); temporary folders of
    writers that died an hour or more ago removed."""
    now = time.time()
    entries = []
    for d in root.iterdir():
        if d.name.startswith(".tmp-"):
            if now - d.stat().st_mtime > 3600:
                shutil.rmtree(d, ignore_errors=True)
            continue
        meta = d / ENTRY
        if d.is_dir() and meta.is_file():
            size = sum(f.stat().st_size for f in d.iterdir() if f.is_file())
            entries.append((meta.stat().st_mtime, size, d))
    entries.sort(reverse=True)  # most recently used first
    total = 0
    for n, (_, size, d) in enumerate(entries):
        total += size
        if d != keep and (n >= MAX_ENTRIES or total > MAX_BYTES):
            shutil.rmtree(d, ignore_errors=True)


def clear(root: Path | None = None) -> int:
    """Remove every entry (and any temporary folder); returns how many entries there were."""
    root = root or cache_root()
    if not root.is_dir():
        return 0
    n = sum(1 for d in root.iterdir() if (d / ENTRY).is_file())
    shutil.rmtree(root, ignore_errors=True)
    return n


def load(directory: Path, allow_implausible: bool = False, use_cache: bool = True) -> Dataset:
    """The dataset in `directory`, read and checked, or the checked tables of an earlier run on the same files."""
    from fundform.inputs.dataset import load_dataset

    if not (use_cache and enabled()):
        return load_dataset(directory, allow_implausible=allow_implausible)
    key = dataset_key(directory, allow_implausible)
    hit = read(directory, key)
    if hit is not None:
        import dataclasses

        return dataclasses.replace(hit, allow_implausible=allow_implausible)
    data = load_dataset(directory, allow_implausible=allow_implausible)
    write(data, key)
    return data


_CHECKED: dict[tuple[Any, ...], Dataset] = {}  # datasets this process has loaded and checked, by the content of their files


def checked_dataset(data_dir: Path, allow_implausible: bool = False, use_cache: bool = True) -> Dataset:
    """The dataset in `data_dir`, loaded and checked once per process for the same file contents: a notebook or a
    server that runs many variants reads and checks it once. Keyed by the SHA-256 of every file in the folder (each
    hashed once per process while it is unchanged), so a changed, added or removed file is read and checked again.
    Across processes, the checked tables of an earlier run on the same files are read back (inputs/cache.py) unless
    `use_cache` is false."""
    key = (str(Path(data_dir).resolve()), allow_implausible, dataset_key(Path(data_dir), allow_implausible))
    if key not in _CHECKED:
        data = load(data_dir, allow_implausible=allow_implausible, use_cache=use_cache)
        while len(_CHECKED) >= 2:  # a dataset is a few hundred MB at most: keep the last two
            _CHECKED.pop(next(iter(_CHECKED)))
        _CHECKED[key] = data
    return _CHECKED[key]
