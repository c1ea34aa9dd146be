"""Errors a user can act on. The CLI prints them without a traceback and exits with the documented code."""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass, field
from typing import TypeVar


class FundformError(Exception):
    """A user-facing error: bad input, a bad spec, an impossible policy. Exit code 1."""

    exit_code = 1


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the input: where it is and what was expected."""

    file: str
    column: str
    problem: str
    expected: str
    rows: tuple[str, ...] = field(default=())

    def render(self, max_rows: int = 10) -> str:
        where = f"{self.file}" + (f", column '{self.column}'" if self.column else "")
        text = f"{where}: {self.problem}; expected {self.expected}"
        if self.rows:
            labels = [r for r in self.rows if not r.startswith("... ")]
            beyond = sum(int(r.split()[1]) for r in self.rows if r.startswith("... "))
            more = max(len(labels) - max_rows, 0) + beyond
            text += f". Rows: {', '.join(labels[:max_rows])}" + (f" (+{more} more)" if more else "")
        return text


class InvalidInput(FundformError):
    """The dataset failed its contracts. Carries every problem found, not just the first."""

    def __init__(self, problems: list[Problem], data_dir: str = ""):
        self.problems = problems
        self.data_dir = data_dir
        lines = [f"{len(problems)} problem(s) in the input data{' at ' + data_dir if data_dir else ''}:"]
        lines += [f"  - {p.render()}" for p in problems]
        super().__init__("\n".join(lines))


class SpecError(FundformError):
    """A formula version or scenario is invalid."""


class InfeasiblePolicy(FundformError):
    """The stated transition rules cannot all hold at once (for example floors that cost more than the total)."""


# The operating system's reasons that are about the machine, not the input or the code: no permission, a full or
# read-only disk, a quota, an I/O fault. They are reported as such (exit 5), never as internal errors.
ENVIRONMENT_ERRNOS = frozenset({errno.EACCES, errno.EPERM, errno.ENOSPC, errno.EROFS, errno.EDQUOT, errno.EIO,
                                errno.EMFILE, errno.ENFILE, errno.ENOTDIR, errno.EISDIR, errno.ETXTBSY,
                                errno.EBUSY, errno.ENAMETOOLONG, errno.EXDEV})
DISK_FULL_WORDS = ("no space left on device", "disk quota exceeded", "read-only file system", "permission denied",
                   "input/output error")


class EnvironmentFailure(FundformError):
    """The machine refused: permission denied, a full or read-only disk, a quota, an I/O error. Exit code 5. The
    message names the path and the operating system's reason; nothing partial is left behind."""

    exit_code = 5


def environment_failure(e: BaseException, doing: str) -> EnvironmentFailure | None:
    """The environmental failure `e` stands for, as a message naming the path and the reason, or None if `e` is not
    environmental (then it is the caller's to handle)."""
    if isinstance(e, EnvironmentFailure):
        return e
    if isinstance(e, OSError) and e.errno in ENVIRONMENT_ERRNOS:
        where = e.filename or ""
        reason = e.strerror or os.strerror(e.errno)
        return EnvironmentFailure(f"{doing}{' ' + str(where) if where else ''}: {reason} (errno {errno.errorcode.get(e.errno, e.errno)}). "
                                  "This is the machine refusing, not a fault in the input: free space, fix the "
                                  "permissions or choose another folder, then rerun")
    text = str(e).lower()
    if type(e).__module__.startswith("duckdb") and any(w in text for w in DISK_FULL_WORDS):
        return EnvironmentFailure(f"{doing}: {str(e).splitlines()[0]}. This is the machine refusing, not a fault in "
                                  "the input: free space or fix the permissions, then rerun")
    return None


REPORT_WHERE = ("rerun with --debug for the traceback and report it to fundform's maintainers (the project's "
                "issue tracker) with the command and the run's manifest.json")


class InternalError(FundformError):
    """A fault in fundform itself, not in the input: an identity that must hold did not, or a stage met a state its
    callers never make. Exit code 3, printed as "internal error" with where to report it."""

    exit_code = 3

    def __init__(self, message: str):
        message = message.removeprefix("internal error: ")
        super().__init__(f"internal error: {message}. This is a fault in fundform, not in your input: {REPORT_WHERE}")


class UsageProblem(FundformError):
    """An option given a value it cannot take (an unknown level, a year that is not a financial year, a number of
    years out of range, a malformed NAME=FILE): the way the command was called, not the data. Exit code 2, as a
    command-line parser's own usage errors."""

    exit_code = 2


T = TypeVar("T")

def present(value: T | None, what: str) -> T:
    """`value`, which the version's validation guarantees is set where this is asked (a precept's rate when the
    version has a precept, an age cost curve when the need method is age_cost_curve): an InternalError naming
    `what` if it is not, never an AttributeError on None further on."""
    if value is None:
        raise InternalError(f"internal error: {what} is not set where the validated version guarantees it")
    return value
