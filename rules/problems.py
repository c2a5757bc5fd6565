"""Problems found in rule documents, and the exception that carries them."""

from __future__ import annotations

import msgspec


class Problem(msgspec.Struct, frozen=True):
    """One thing wrong with a rule document, at a 1-based line and column.

    An error stops the rules from loading; a warning (something that can be meant,
    such as an event name one letter away from a known one) is only reported."""

    source: str
    line: int
    column: int
    message: str
    warning: bool = False

    def __str__(self) -> str:
        kind = "warning: " if self.warning else ""
        return f"{self.source}:{self.line}:{self.column}: {kind}{self.message}"


def errors_of(problems: list[Problem]) -> list[Problem]:
    return [problem for problem in problems if not problem.warning]


class RulesInvalid(Exception):
    """Raised by load_ruleset when any document has problems; carries all of them."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(str(problem) for problem in self.problems))


def sorted_problems(problems: list[Problem]) -> list[Problem]:
    """Order problems the way an editor lists them: by file, then position."""
    return sorted(problems, key=lambda p: (p.source, p.line, p.column, p.message))
