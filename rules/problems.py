"""Problems found in rule documents, and the exception that carries them."""

from __future__ import annotations

import msgspec


class Problem(msgspec.Struct, frozen=True):
    """One thing wrong with a rule document, at a 1-based line and column."""

    source: str
    line: int
    column: int
    message: str

    def __str__(self) -> str:
        return f"{self.source}:{self.line}:{self.column}: {self.message}"


class RulesInvalid(Exception):
    """Raised by load_ruleset when any document has problems; carries all of them."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(str(problem) for problem in self.problems))


def sorted_problems(problems: list[Problem]) -> list[Problem]:
    """Order problems the way an editor lists them: by file, then position."""
    return sorted(problems, key=lambda p: (p.source, p.line, p.column, p.message))
