"""Loads journey files (config/journeys/), checks them and swaps them in atomically.

As with rules, a reload builds the new JourneyBook completely before swapping one
reference, and files with problems never replace journeys that loaded: the
problems are logged and the running journeys stay. Runs in flight keep the
version they entered: the text of every version is kept in Redis
(edge/store/journeys.py), and versions no longer on disk are compiled from there.
"""

from __future__ import annotations

import logging
from pathlib import Path

from edge.pipeline.rulebook import (Rulebook, yaml_files, document_name, files_fingerprint,
                                    is_scenario_journey)
from rules.journey_defs import JourneyDef
from rules.journey_schema import read_journeys
from rules.journeys import JourneyBook
from rules.problems import Problem, errors_of

log = logging.getLogger("kairos.journeys")


def journey_files(folder: Path, scenarios_dir: Path | None = None) -> list[Path]:
    """Every YAML file under the journeys folder, and each scenario's journey files."""
    found = yaml_files(folder)
    if scenarios_dir is not None:
        found += [p for p in yaml_files(scenarios_dir) if is_scenario_journey(p)]
    return found


def read_journey_documents(folder: Path, scenarios_dir: Path | None = None
                           ) -> list[tuple[str, str]]:
    base = folder.parent
    return [(document_name(p, base), p.read_text(encoding="utf-8"))
            for p in journey_files(folder, scenarios_dir)]


def aggregate_kinds(rulebook: Rulebook) -> dict[str, str]:
    """The aggregates the rules maintain: what journey conditions may read."""
    return {spec.id: spec.kind for spec in rulebook.active.ruleset.aggregates}


def check_journeys(folder: Path, rulebook: Rulebook) -> tuple[list[JourneyDef], list[Problem]]:
    """The journeys of `folder` and of the rulebook's scenarios, checked against its rules."""
    return read_journeys(read_journey_documents(folder, rulebook.scenarios_dir),
                         aggregate_kinds(rulebook))


class Journeys:
    def __init__(self, folder: Path, rulebook: Rulebook) -> None:
        self.folder = folder
        self.rulebook = rulebook  # its scenarios' journeys load with the folder's
        self.loaded: list[JourneyDef] = []
        self.older: dict[tuple[str, str], JourneyDef] = {}
        self.book = JourneyBook([])
        problems = self.reload()
        if errors_of(problems) and not self.loaded:
            log.error("journeys not loaded: %d problem(s)", len(errors_of(problems)))

    def fingerprint(self) -> tuple[tuple[str, int, int], ...]:
        return files_fingerprint(journey_files(self.folder, self.rulebook.scenarios_dir))

    def reload(self) -> list[Problem]:
        """Swap in the journeys on disk; on any error keep the running ones."""
        journeys, problems = check_journeys(self.folder, self.rulebook)
        errors = errors_of(problems)
        if errors:
            for problem in errors:
                log.error("journeys not reloaded: %s", problem)
            return problems
        self.loaded = journeys
        self._rebuild()
        return problems

    def add_versions(self, documents: dict[str, str]) -> None:
        """Compile versions kept in Redis that runs in flight may still follow."""
        current = {(j.id, j.version) for j in self.loaded}
        kinds = aggregate_kinds(self.rulebook)
        for name, text in documents.items():
            journey_id, _, version = name.rpartition("@")
            if (journey_id, version) in current or (journey_id, version) in self.older:
                continue
            found, problems = read_journeys([(f"{name} (kept in Redis)", text)], kinds)
            for journey in found:
                self.older[(journey.id, journey.version)] = journey
            for problem in errors_of(problems):
                log.warning("an older journey version no longer loads: %s", problem)
        self._rebuild()

    def documents(self) -> list[tuple[str, str, str]]:
        return [(j.id, j.version, j.document) for j in self.loaded]

    def _rebuild(self) -> None:
        self.book = JourneyBook(self.loaded, self.older.values())
