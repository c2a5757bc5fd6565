"""Kairos Edge rules engine: rule documents in, compiled decisions out.

Pure: no I/O and no clock; the caller passes `now_ms`.  See docs/rules-language.md.
"""

from .aggregates import AggregateSpec
from .decision import Decision
from .loader import check_documents, load_ruleset
from .problems import Problem, RulesInvalid
from .ruleset import Ruleset

__all__ = [
    "AggregateSpec",
    "Decision",
    "Problem",
    "Ruleset",
    "RulesInvalid",
    "check_documents",
    "load_ruleset",
]
