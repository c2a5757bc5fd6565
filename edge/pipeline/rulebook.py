"""Loads, checks and hot-swaps the compiled ruleset.

A reload builds the new ruleset completely before swapping one reference, so
a request in flight finishes with the ruleset it started with and no request
ever sees half of a reload. A ruleset that fails to load leaves the running
one in place.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import rules
from edge.store.profiles import AggregateLayout

log = logging.getLogger("kairos.rules")

RULE_SUFFIXES = (".yaml", ".yml")


@dataclass(frozen=True, slots=True)
class ActiveRules:
    ruleset: rules.Ruleset
    layout: AggregateLayout
    index: dict[str, int]  # aggregate id -> position in the layout
    cap_horizon_ms: int = 0  # the longest frequency-cap window: delivery times older go


def cap_horizon(ruleset: rules.Ruleset) -> int:
    windows = [cap.per_ms for plan in ruleset.plans for cap in plan.rule.caps]
    windows += [cap.per_ms for _, caps in ruleset.policy.caps for cap in caps]
    return max(windows, default=0)


def rule_files(rules_dir: Path, scenarios_dir: Path | None = None) -> list[Path]:
    """The rule files: every YAML file under the rules folder, and in each scenario's
    folder every one that is not a journey (see `is_scenario_journey`)."""
    found = yaml_files(rules_dir)
    if scenarios_dir is not None:
        found += [p for p in yaml_files(scenarios_dir) if not is_scenario_journey(p)]
    return found


def is_scenario_journey(path: Path) -> bool:
    """In a scenario's folder, journey.yaml and journey-<name>.yaml are journeys; its
    other files are rules (segments, aggregates, rules, templates)."""
    return path.stem == "journey" or path.stem.startswith("journey-")


def yaml_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.rglob("*") if p.suffix in RULE_SUFFIXES and p.is_file())


def document_name(path: Path, base: Path) -> str:
    """How problems name a file: relative to the configuration folder where it is in it."""
    try:
        return str(path.relative_to(base))
    except ValueError:
        return str(path)


def files_fingerprint(paths: list[Path]) -> tuple[tuple[str, int, int], ...]:
    """Names, modification times and sizes of files, to poll for changes cheaply."""
    found = []
    for path in paths:
        try:
            stat = path.stat()
        except FileNotFoundError:
            continue
        found.append((str(path), stat.st_mtime_ns, stat.st_size))
    return tuple(found)


def read_documents(rules_dir: Path, scenarios_dir: Path | None = None) -> list[tuple[str, str]]:
    """(name relative to the config folder, text) for every rule file, in a stable order."""
    base = rules_dir.parent
    return [(document_name(p, base), p.read_text(encoding="utf-8"))
            for p in rule_files(rules_dir, scenarios_dir)]


def build(documents: list[tuple[str, str]]) -> ActiveRules:
    ruleset = rules.load_ruleset(documents)
    layout = AggregateLayout.of(ruleset.aggregates)
    return ActiveRules(ruleset, layout, {a: i for i, a in enumerate(layout.ids)},
                       cap_horizon(ruleset))


class Rulebook:
    def __init__(self, rules_dir: Path, scenarios_dir: Path | None = None) -> None:
        self.rules_dir = rules_dir
        self.scenarios_dir = scenarios_dir
        self.active = build(read_documents(rules_dir, scenarios_dir))

    def fingerprint(self) -> tuple[tuple[str, int, int], ...]:
        """Names, modification times and sizes of the rule files: changes when any file does."""
        return files_fingerprint(rule_files(self.rules_dir, self.scenarios_dir))

    def reload(self) -> list[rules.Problem]:
        """Swap in the rules on disk; returns the problems (and keeps the old rules) if any."""
        try:
            candidate = build(read_documents(self.rules_dir, self.scenarios_dir))
        except rules.RulesInvalid as invalid:
            for problem in invalid.problems:
                log.error("rules not reloaded: %s", problem)
            return list(invalid.problems)
        if candidate.ruleset.version != self.active.ruleset.version:
            log.info("rules reloaded: version %s, %d rules, %d segments",
                     candidate.ruleset.version, candidate.ruleset.rule_count,
                     candidate.ruleset.segment_count)
        self.active = candidate
        return []
