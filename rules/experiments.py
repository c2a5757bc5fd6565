"""Deterministic assignment of a person to an experiment's variant.

The variant depends only on the experiment's salt and the person's canonical
profile id, so every worker and every device agrees. The edge also stores the
first assignment in the profile, so that a merge (which may change the
canonical id) does not move a person to another variant.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache

from .definitions import ExperimentDef

CONTROL = "control"


def bucket(salt: str, profile_id: str) -> float:
    """A uniform number in [0, 1) for this person and experiment."""
    return _bucket(salt, profile_id)


@lru_cache(maxsize=65_536)  # a person's events come in runs: hash once per run
def _bucket(salt: str, profile_id: str) -> float:
    digest = hashlib.sha256(f"{salt}\x00{profile_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def assign(experiment: ExperimentDef, profile_id: str) -> str:
    total = sum(weight for _, weight in experiment.variants)
    point = bucket(experiment.salt, profile_id) * total
    for name, weight in experiment.variants:
        if point < weight:
            return name
        point -= weight
    return experiment.variants[-1][0]  # only reached through float rounding


def variant_for(experiment: ExperimentDef, profile_id: str, stored: str | None) -> str:
    """The stored variant while it still exists in the experiment, else a fresh assignment."""
    if stored is not None and any(name == stored for name, _ in experiment.variants):
        return stored
    return assign(experiment, profile_id)
