"""Named failpoints, for fault-injection tests: the environment variable FUNDFORM_FAILPOINTS holds
``name=action[,name=action...]`` and the code calls ``failpoint(name)`` at each point named in docs/reliability.md.

Actions:
- ``kill``: the process sends itself SIGKILL there (what a power cut or the OOM killer does);
- ``pause:SECONDS``: it sleeps there, so a test can kill it at that point from outside;
- ``enospc``, ``eacces``, ``erofs``, ``eio``: it raises the operating system's error (disk full, permission denied,
  read-only file system, I/O error) for the path being written, as the machine would.

With the variable unset (always, outside tests) a failpoint is one dictionary look-up.
"""

from __future__ import annotations

import errno
import os
import signal
import time

ENV = "FUNDFORM_FAILPOINTS"
POINTS = (
    "run.after_compute",  # need, settlement and local tax computed; nothing written yet
    "write.mid",  # the temporary output folder half written
    "write.before_rename",  # every file written and synced, not yet visible
    "write.between_renames",  # the earlier output moved aside, the new one not yet in place
    "warehouse.wait",  # about to try for the warehouse lock
    "warehouse.recording",  # inside the warehouse transaction, rows half inserted
    "warehouse.create",  # a new warehouse file being created
    "batch.after_run",  # a batch run written, before the next
    "report.write",  # the HTML report being written
    "export.write",  # an export being written
    "cache.mid_write",  # a checked-input cache entry half written (inputs/cache.py)
    "cache.before_rename",  # a cache entry written and synced, not yet in place
)
_ERRNOS = {"enospc": errno.ENOSPC, "eacces": errno.EACCES, "erofs": errno.EROFS, "eio": errno.EIO}


def _actions() -> dict[str, str]:
    spec = os.environ.get(ENV, "")
    out = {}
    for item in filter(None, (p.strip() for p in spec.split(","))):
        name, _, action = item.partition("=")
        out[name.strip()] = action.strip()
    return out


def failpoint(name: str, path: str | os.PathLike[str] | None = None) -> None:
    """Act as FUNDFORM_FAILPOINTS says at the point `name` (see POINTS), if it says anything."""
    if ENV not in os.environ:
        return
    action = _actions().get(name)
    if not action:
        return
    if action == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    elif action.startswith("pause:"):
        time.sleep(float(action.split(":", 1)[1]))
    elif action in _ERRNOS:
        code = _ERRNOS[action]
        raise OSError(code, os.strerror(code), str(path) if path is not None else None)
