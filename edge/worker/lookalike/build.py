"""Build a lookalike: read everyone, learn the seed, score the rest, store the best.

One pass over the profiles (a SCAN, as the audience export makes, then each profile
read through the event script's read mode, so aggregates are exact at `now`) keeps a
small description of each person (features.py); the model is trained on the seed and
a sample of the others, every other matchable person is scored, and the top `size`
are written as a stored segment (edge/store/segments.py), replacing the last one.
"""

from __future__ import annotations

import asyncio
import random
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import redis.asyncio as aioredis

from edge.pipeline.delivery import profile_from
from edge.pipeline.rulebook import ActiveRules
from edge.store import audiences as audience_store
from edge.store import segments
from edge.store.profiles import ProfileStore
from edge.worker.lookalike import model
from edge.worker.lookalike.features import (DEFAULT_TOP_CATEGORIES, Described, FeatureSpace,
                                            category_vocabulary, matrix)

MIN_PEOPLE = 10  # in the seed, and outside it: fewer teach a model nothing
SAMPLE_PER_SEED = 5
MAX_SAMPLE = 50_000
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


class LookalikeError(Exception):
    """Bad input or data that cannot make a lookalike: the message names the field."""


@dataclass
class LookalikeReport:
    name: str
    seed: str
    seed_size: int = 0
    sample_size: int = 0
    scored: int = 0  # matchable people outside the seed
    unmatchable: int = 0  # outside the seed, without an email or a phone: not scored
    features: tuple[str, ...] = ()
    left_out: tuple[str, ...] = ()
    cv_auc: float = 0.0
    written: int = 0
    stored_at: int = 0
    members: list[str] = field(default_factory=list, repr=False)

    def lines(self) -> list[str]:
        left_out = (f"; left out as the seed's own definition: {', '.join(self.left_out)}"
                    if self.left_out else "")
        return [
            f"seed {self.seed}: {self.seed_size} members; sample of {self.sample_size} others",
            f"scored {self.scored} people outside the seed ({self.unmatchable} without an "
            f"email or a phone not scored)",
            f"model: random forest on {len(self.features)} features, cross-validated "
            f"AUC {self.cv_auc:.3f}{left_out}",
            f"wrote {self.written} people to the stored segment {self.name}",
        ]


def check_request(active: ActiveRules, seed: str, size: int, name: str,
                  sample: int | None) -> None:
    """What can be refused before Redis is read."""
    if size <= 0:
        raise LookalikeError(f"--size: must be at least 1, not {size}")
    if sample is not None and sample <= 0:
        raise LookalikeError(f"--sample: must be at least 1, not {sample}")
    if not NAME.match(name):
        raise LookalikeError(f"--name: {name!r} must be letters, digits, '_', '-' or '.' "
                             f"(at most 100, starting with a letter or digit)")
    if name == seed:
        raise LookalikeError(f"--name: the lookalike needs a name of its own, not the "
                             f"seed's ({seed!r})")
    if name in {segment.id for segment in active.ruleset.segments}:
        raise LookalikeError(f"--name: {name!r} is a segment of the rules; a stored "
                             f"segment needs a name of its own")


async def build_lookalike(client: aioredis.Redis, store: ProfileStore, active: ActiveRules,
                          consent_defaults: Mapping[str, bool], seed: str, size: int,
                          name: str, now_ms: int, sample: int | None = None,
                          top_categories: int = DEFAULT_TOP_CATEGORIES) -> LookalikeReport:
    """Learn `seed`, write the `size` best scorers outside it as the stored segment `name`."""
    check_request(active, seed, size, name, sample)
    stored_seed = await _stored_members(client, store, seed)
    if stored_seed is None and seed not in {s.id for s in active.ruleset.segments}:
        raise LookalikeError(f"--seed: no segment {seed!r} in the rules, and no stored "
                             f"segment of that name")
    space = FeatureSpace.of(active.layout.ids, active.layout.kinds, consent_defaults)
    people = await _describe_everyone(client, store, active, space, now_ms)
    in_seed = ((lambda person: person.profile_id in stored_seed) if stored_seed is not None
               else (lambda person: seed in person.segments))
    seed_people = [person for person in people if in_seed(person)]
    others = [person for person in people if not in_seed(person)]
    candidates = [person for person in others if person.matchable]
    report = LookalikeReport(name, seed, seed_size=len(seed_people), scored=len(candidates),
                             unmatchable=len(others) - len(candidates))
    if not seed_people:
        raise LookalikeError(f"--seed: segment {seed!r} has no members")
    if len(seed_people) < MIN_PEOPLE:
        raise LookalikeError(f"--seed: segment {seed!r} has {len(seed_people)} members; at "
                             f"least {MIN_PEOPLE} are needed to learn what they share")
    if len(candidates) < MIN_PEOPLE:
        raise LookalikeError(f"--seed: only {len(candidates)} people with an email or a "
                             f"phone are outside {seed!r}; at least {MIN_PEOPLE} are needed")

    wanted = sample if sample is not None else min(SAMPLE_PER_SEED * len(seed_people),
                                                  MAX_SAMPLE)
    sampled = random.Random(model.RANDOM_STATE).sample(
        candidates, min(max(wanted, MIN_PEOPLE), len(candidates)))
    report.sample_size = len(sampled)
    training = seed_people + sampled
    vocabulary = category_vocabulary(training, top_categories)
    labels = np.array([1] * len(seed_people) + [0] * len(sampled))
    trained = model.train(matrix(training, vocabulary), labels, space.names(vocabulary))
    if trained is None:
        raise LookalikeError(f"--seed: nothing but its own definition tells {seed!r} apart "
                             f"from everyone else")
    report.features, report.left_out, report.cv_auc = (trained.used, trained.left_out,
                                                       trained.cv_auc)

    scores = trained.scores(matrix(candidates, vocabulary))
    report.members = model.top_scorers([p.profile_id for p in candidates], scores, size)
    report.written = len(report.members)
    report.stored_at = now_ms
    await segments.write_segment(client, name, report.members, {
        "source": "lookalike", "seed": seed, "cv_auc": round(trained.cv_auc, 4),
        "seed_size": len(seed_people), "sample_size": len(sampled)}, now_ms)
    return report


async def _describe_everyone(client: aioredis.Redis, store: ProfileStore,
                             active: ActiveRules, space: FeatureSpace,
                             now_ms: int) -> list[Described]:
    people = []
    async for keys in audience_store.profile_key_pages(client):
        async with client.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.hmget(key, "id", "->")
            heads = await pipe.execute()
        ids = [found.decode() for found, pointer in heads if found and not pointer]
        # the store pipelines concurrent reads: one write for the page's scripts
        replies = await asyncio.gather(*(store.read(profile_id, active.layout, now_ms)
                                         for profile_id in ids))
        people += [space.describe(profile_from(reply, active.layout), now_ms)
                   for reply in replies if reply is not None]
    # SCAN's order is Redis's own: by id, the same data trains the same forest
    return sorted(people, key=lambda person: person.profile_id)


async def _stored_members(client: aioredis.Redis, store: ProfileStore,
                          name: str) -> set[str] | None:
    """A stored seed's members, each as the profile it is now (merges followed);
    None when `name` is not a stored segment."""
    if not await segments.is_stored(client, name):
        return None
    found: set[str] = set()
    async for ids in segments.member_pages(client, name):
        resolved = await asyncio.gather(*(store.resolve(profile_id) for profile_id in ids))
        found.update(profile_id for profile_id in resolved if profile_id is not None)
    return found
