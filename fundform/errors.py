"""Errors a user can act on. The CLI prints them without a traceback and exits with the documented code."""

from __future__ import annotations

from dataclasses import dataclass, field


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
