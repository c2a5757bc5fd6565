"""Preload a population of profiles straight into Redis, in the edge's own key layout.

    python -m bench.population --profiles 1000000 [--redis redis://127.0.0.1:6379/0]
                               [--config config] [--flush]

Without --redis it starts an embedded redis-server for the run (to measure the
load time and the memory per profile) and stops it afterwards.

Profile i is the visitor with anonymous id `anon-<i>` (the id bench/traffic.py
and bench/locustfile.py send), so traffic drawn over the same range finds
every visitor already known. A share of them are identified customers: user id
`user-<i>`, email `user-<i>@example.com`, both joined to the profile as the
edge joins them (pointer keys and the identifier set).

How it is fast enough for a million profiles:
- a few hundred personas are simulated (bench/profile_model.py) and replayed
  into the exact state the edge's scripts would have built; profile i takes
  persona i mod P, with its own ids;
- the keys that do not mention the person's id (recently viewed, cart, message
  ids, aggregate buckets) are built once per persona in Redis, read back with
  DUMP, and written per profile with RESTORE ... ABSTTL: one command sets a
  whole hash with its expiry, and Redis copies the encoded value instead of
  inserting field by field;
- the rest (profile hash, identifier set, traits, pointers) are per-profile
  commands; all of a persona's commands are one RESP template, so a profile
  costs one bytes `%`, and the bytes are streamed over a raw socket
  (bench/redis_pipe.py).
"""

from __future__ import annotations

import argparse
import datetime
import random
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import redis

from bench.profile_model import ProfileState, simulate
from bench.redis_pipe import Command, RedisPipe, render_template, slots_of
from edge.runtime.config import load_settings
from edge.ingest.normalize import email_identifier
from edge.pipeline.rulebook import build, read_documents
from edge.store import keys as K
from edge.store.embedded import EmbeddedRedis

RESULTS = Path(__file__).resolve().parent / "results"
ROOT = Path(__file__).resolve().parent.parent
SEED_TAG = "{kairos-bench-seed}"
DAY_MS = 86_400_000
CHUNK_PROFILES = 2_000


def identity(i: int, known: bool) -> dict[str, str]:
    """The ids of profile i, as the edge names them."""
    ident = f"anon:anon-{i}"
    ids = {"id": ident, "anonymous_id": f"anon-{i}"}
    if known:
        email = f"user-{i}@example.com"
        ids |= {"user_id": f"user-{i}", "uident": f"user:user-{i}", "email": email,
                "eident": email_identifier(email) or ""}
    return ids


@dataclass
class Persona:
    known: bool
    state: ProfileState
    segments: list[str]
    expires_at: int | None  # anonymous profiles expire; None for known customers
    payloads: dict[str, tuple[bytes, int]] = field(default_factory=dict)  # suffix -> (DUMP, expiry)
    commands: list[Command] = field(default_factory=list)
    slots: tuple[str, ...] = ()
    templates: dict[tuple[int, ...], bytes] = field(default_factory=dict)

    def render(self, values: dict[bytes, bytes]) -> bytes:
        lengths = tuple(len(values[s.encode()]) for s in self.slots)
        template = self.templates.get(lengths)
        if template is None:
            sizes = dict(zip(self.slots, lengths))
            template = self.templates[lengths] = render_template(self.commands, sizes)
        return template % values


class Population:
    """P personas for the rules in `config_dir`, valid for loading at `now_ms`."""

    def __init__(self, config_dir: str | Path, now_ms: int, personas: int = 500,
                 known_share: float = 0.3, seed: int = 1) -> None:
        self.settings = load_settings(config_dir)
        active = build(read_documents(self.settings.rules_dir, self.settings.scenarios_dir))
        self.ruleset = active.ruleset
        self.layout = active.layout
        self.specs = {spec.id: spec for spec in active.ruleset.aggregates}
        self.now_ms = now_ms
        limits = self.settings.profiles
        self.anon_ttl_ms = limits.anonymous_ttl_days * DAY_MS
        rng = random.Random(seed)
        self.personas = []
        for _ in range(personas):
            known = rng.random() < known_share
            events = simulate(rng, now_ms, known, self.anon_ttl_ms)
            state = ProfileState.replay(events, self.ruleset, self.layout, limits)
            self.personas.append(self._persona(state))

    def _persona(self, state: ProfileState) -> Persona:
        # Known when the replayed history holds the login (it may fall after now_ms).
        known = state.known
        expires_at = None
        if not known:
            assert state.refreshed is not None
            expires_at = state.refreshed + self.anon_ttl_ms
        # The segments the edge would have stored after the person's last event:
        # without them the first event of almost every preloaded person would
        # write them, which a steady-state edge does not do.
        snapshot = state.snapshot(self.layout, self.specs, self.now_ms, "anon:x")
        event = {"type": "page", "properties": {}, "context": {}, "timestamp": self.now_ms}
        segments = self.ruleset.decide(event, snapshot, {}, self.now_ms).segments
        return Persona(known, state, list(segments), expires_at)

    # -- the persona's keys ----------------------------------------------------------------

    def seed(self, client: redis.Redis) -> None:
        """Build each persona's id-free keys under a scratch tag and DUMP them."""
        for index, persona in enumerate(self.personas):
            values = self._id_free_values(persona)
            pipe = client.pipeline(transaction=False)
            scratch = {suffix: f"{SEED_TAG}:{index}{suffix}" for suffix in values}
            for suffix, (kind, value, _expiry) in values.items():
                key = scratch[suffix]
                pipe.delete(key)
                if kind == "list":
                    pipe.rpush(key, *value)
                elif kind == "zset":
                    pipe.zadd(key, value)
                else:
                    pipe.hset(key, mapping=value)
            for key in scratch.values():
                pipe.dump(key)
            if scratch:
                pipe.delete(*scratch.values())
            replies = pipe.execute()
            dumps = replies[2 * len(scratch):3 * len(scratch)]
            persona.payloads = {suffix: (payload, values[suffix][2])
                                for suffix, payload in zip(scratch, dumps)}
            persona.commands = self._commands(persona)
            persona.slots = slots_of(persona.commands)

    def _id_free_values(self, persona: Persona) -> dict[str, tuple[str, Any, int]]:
        """suffix -> (type, value, absolute expiry ms or 0) for keys that do not name the person."""
        state, expiry = persona.state, persona.expires_at or 0
        out: dict[str, tuple[str, Any, int]] = {}
        if state.seen:
            out[":seen"] = ("zset", dict(state.seen), expiry)
        if state.recent_products:
            out[":rp"] = ("list", state.recent_products, expiry)
        if state.recent_categories:
            out[":rc"] = ("list", state.recent_categories, expiry)
        if state.cart:
            out[":cart"] = ("hash", state.cart, expiry)
        for agg, kind in zip(self.layout.ids, self.layout.kinds):
            fields = state.buckets.get(agg)
            agg_expiry = state.expires.get(agg, 0)
            if not fields or agg_expiry <= self.now_ms:
                continue  # gone: the edge's key would have expired or emptied
            if kind == "sum":
                fields = {b: repr(v) for b, v in fields.items()}
            out[":g:" + agg] = ("hash", fields, agg_expiry)
        return out

    def _commands(self, persona: Persona) -> list[Command]:
        """Every command for one profile of this persona; slots are filled per profile."""
        state = persona.state
        profile: list[Any] = [b"id", "id", b"fs", b"%d" % state.first_seen,
                              b"ls", b"%d" % state.last_seen, b"v", b"%d" % state.visits,
                              b"n", b"%d" % state.events]
        if persona.known:
            profile += [b"uid", "user_id"]
        if persona.segments:
            profile += [b"sg", orjson.dumps(persona.segments)]
        if state.cart_updated is not None:
            profile += [b"cu", b"%d" % state.cart_updated]
        if state.refreshed is not None:
            profile += [b"xp", b"%d" % state.refreshed]
        commands: list[Command] = [(b"HSET", "tag", *profile)]
        identifiers: list[Any] = ["id"] + (["uident", "eident"] if persona.known else [])
        commands.append((b"SADD", ("tag", b":ids"), *identifiers))
        if persona.known:
            traits = [x for name, value in state.traits.items() for x in (name.encode(), value.encode())]
            commands.append((b"HSET", ("tag", b":t"), *traits, b"email", "email_json"))
            # Pointer records: the user id and the hashed email lead to the profile.
            commands.append((b"HSET", "ukey", b"->", "id"))
            commands.append((b"HSET", "ekey", b"->", "id"))
        else:
            expiry = b"%d" % persona.expires_at
            commands.append((b"PEXPIREAT", "tag", expiry))
            commands.append((b"PEXPIREAT", ("tag", b":ids"), expiry))
        for suffix, (payload, expiry_ms) in persona.payloads.items():
            commands.append((b"RESTORE", ("tag", suffix.encode()), b"%d" % expiry_ms, payload,
                             b"ABSTTL", b"REPLACE"))
        return commands

    # -- loading ---------------------------------------------------------------------------

    def persona_of(self, i: int) -> Persona:
        return self.personas[i % len(self.personas)]

    def slot_values(self, i: int) -> dict[bytes, bytes]:
        persona = self.persona_of(i)
        ids = identity(i, persona.known)
        values = {b"id": ids["id"].encode(), b"tag": K.profile_key(ids["id"]).encode()}
        if persona.known:
            values |= {b"user_id": ids["user_id"].encode(), b"uident": ids["uident"].encode(),
                       b"ukey": K.profile_key(ids["uident"]).encode(),
                       b"eident": ids["eident"].encode(),
                       b"ekey": K.profile_key(ids["eident"]).encode(),
                       b"email_json": orjson.dumps(ids["email"])}
        return values

    def load(self, url: str, profiles: int, start: int = 0) -> dict[str, Any]:
        """Write profiles start .. start+profiles-1; returns timings and the command count."""
        client = redis.Redis.from_url(url)
        started = time.perf_counter()
        self.seed(client)
        if self.layout.ids:
            client.sadd(K.AGGREGATE_REGISTRY, *self.layout.ids)
        seeded = time.perf_counter()
        counts = [len(p.commands) for p in self.personas]
        with RedisPipe(url) as pipe:
            for chunk_start in range(start, start + profiles, CHUNK_PROFILES):
                chunk_end = min(chunk_start + CHUNK_PROFILES, start + profiles)
                parts = []
                commands = 0
                for i in range(chunk_start, chunk_end):
                    parts.append(self.persona_of(i).render(self.slot_values(i)))
                    commands += counts[i % len(counts)]
                pipe.write(b"".join(parts), commands)
            pipe.wait()
            sent = pipe.sent
        finished = time.perf_counter()
        client.close()
        return {"profiles": profiles, "personas": len(self.personas),
                "seconds": round(finished - started, 2),
                "seed_seconds": round(seeded - started, 2),
                "profiles_per_s": round(profiles / (finished - started)),
                "commands": sent, "commands_per_s": round(sent / (finished - seeded))}

    def expected(self, i: int) -> dict[str, Any]:
        """What the edge should answer for profile i at now_ms (for the tests)."""
        persona = self.persona_of(i)
        state = persona.state
        ids = identity(i, persona.known)
        traits = {name: orjson.loads(value) for name, value in state.traits.items()}
        if persona.known:
            traits["email"] = ids["email"]
        identities = sorted([ids["id"]] + ([ids["uident"], ids["eident"]] if persona.known else []))
        return {"id": ids["id"], "ids": ids, "known": persona.known, "traits": traits,
                "identities": identities, "visits": state.visits, "events": state.events,
                "recent_products": state.recent_products,
                "recent_categories": state.recent_categories, "segments": persona.segments,
                "aggregates": state.expected_aggregates(self.layout, self.specs, self.now_ms)}


# -- memory ----------------------------------------------------------------------------------


def used_memory(client: redis.Redis) -> int:
    return int(client.info("memory")["used_memory"])


def sampled_memory(client: redis.Redis, population: Population, profiles: int,
                   samples: int = 200) -> dict[str, Any]:
    """MEMORY USAGE of every key of sampled profiles: the mean per profile, and by key kind."""
    # Random, not evenly spaced: a step that shares a factor with the persona count
    # would measure a few personas only.
    chosen = random.Random(0).sample(range(profiles), min(samples, profiles))
    kinds: list[str] = []
    pipe = client.pipeline(transaction=False)
    for i in chosen:
        ids = identity(i, population.persona_of(i).known)
        base = K.profile_key(ids["id"])
        named = [("hash", base), *((s, base + s) for s in K.SUFFIXES),
                 *((":g:" + a, base + ":g:" + a) for a in population.layout.ids)]
        if "uident" in ids:
            named += [("pointers", K.profile_key(ids["uident"])),
                      ("pointers", K.profile_key(ids["eident"]))]
        for kind, name in named:
            kinds.append(kind)
            pipe.memory_usage(name, samples=0)
    by_kind: dict[str, float] = {}
    for kind, size in zip(kinds, pipe.execute()):
        by_kind[kind] = by_kind.get(kind, 0) + (size or 0)
    return {"per_profile": round(sum(by_kind.values()) / len(chosen)),
            "by_key": {k: round(v / len(chosen)) for k, v in by_kind.items() if v}}


def load_and_measure(url: str, profiles: int, config_dir: str | Path, personas: int = 500,
                     known_share: float = 0.3, seed: int = 1, flush: bool = False) -> dict[str, Any]:
    """Load a population and report the time it took and the memory it uses."""
    client = redis.Redis.from_url(url)
    if flush:
        client.flushdb()
    before, keys_before = used_memory(client), client.dbsize()
    started = time.perf_counter()
    population = Population(config_dir, int(time.time() * 1000), personas, known_share, seed)
    built = time.perf_counter() - started
    report = population.load(url, profiles)
    after, keys_after = used_memory(client), client.dbsize()
    report |= {
        "build_personas_seconds": round(built, 2),
        "aggregates": list(population.layout.ids),
        "known_share": known_share,
        "keys_per_profile": round((keys_after - keys_before) / profiles, 2),
        "used_memory_bytes": after - before,
        "bytes_per_profile": round((after - before) / profiles),
    }
    sampled = sampled_memory(client, population, profiles)
    report |= {"sampled_bytes_per_profile": sampled["per_profile"],
               "sampled_bytes_by_key": sampled["by_key"]}
    client.close()
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profiles", type=int, default=1_000_000)
    parser.add_argument("--redis", help="Redis URL; default: an embedded redis-server for the run")
    parser.add_argument("--config", default=str(ROOT / "config"),
                        help="the edge's config folder: its rules decide which aggregates exist")
    parser.add_argument("--personas", type=int, default=500)
    parser.add_argument("--known-share", type=float, default=0.3)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--flush", action="store_true", help="empty the Redis database first")
    parser.add_argument("--name", default="population", help="results file: <date>-<name>.json")
    args = parser.parse_args()

    def run(url: str) -> dict[str, Any]:
        return load_and_measure(url, args.profiles, args.config, args.personas, args.known_share,
                                args.seed, args.flush)

    if args.redis:
        report = run(args.redis)
    else:
        with tempfile.TemporaryDirectory(prefix="kairos-population-") as tmp, \
                EmbeddedRedis(Path(tmp), persistent=False) as server:
            report = run(server.url)
    report = {"date": datetime.date.today().isoformat(), "config": Path(args.config).name, **report}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{report['date']}-{args.name}.json").write_bytes(
        orjson.dumps(report, option=orjson.OPT_INDENT_2))
    sys.stdout.write(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode() + "\n")


if __name__ == "__main__":
    main()
