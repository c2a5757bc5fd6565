"""Kairos against two rule interpreters on the same rules: `python -m bench.compare_rules`.

The 200-rule corpus of bench.rules (bench.rule_corpus, seed 7) is translated,
rule by rule, into

- a GrowthBook condition (MongoDB-style query), evaluated with the growthbook
  SDK's `evalCondition(attributes, condition)`, and
- a JsonLogic expression, evaluated with a pure-Python JsonLogic interpreter
  (the `panzi-json-logic` package, imported as `json_logic`).

Each rule's trigger becomes the first clause of its condition ("event.type is
page and ..."), and each segment the rules test with `"id" in segments` is
translated too and computed per event, as Kairos's decide() computes it.
Only what a language can express is translated: a rule that reads the clock
(`days_since`), lower-cases text or matches a regular expression may have no
translation in one of them. Such rules are counted, by reason, and left out;
all three engines then evaluate the same set, the rules every engine can
express, and Kairos gets a ruleset of exactly those rules and segments (their
scores dropped: scores feed arbitration, not conditions).

Before any timing, every input goes through the engines and the sets of
matching rule ids (and segments) must be identical, or the run stops: first
each peer on every rule it could express, against Kairos on the whole corpus,
then all engines on the shared rules.

What is timed, per event:

- kairos: `Ruleset.decide(event, profile, context, now)`: segments, then the
  conditions of the rules the event triggers, in generated Python.
- growthbook / jsonlogic: building the attribute document, computing the
  segments into it, then evaluating every rule's condition. The document is
  the one thing these engines read: {event, profile, context, aggregates,
  local, now, segments}. Its cost counts, because Kairos reads the profile
  directly. It takes a few µs, against hundreds for the evaluation: the
  aggregates with their zero defaults filled in, as Kairos reads them, and the
  local hour and weekday from the same cache Kairos uses, since neither
  language knows time zones; the rest is the caller's dicts, not copied.
- growthbook_indexed / jsonlogic_indexed: the same, but with the rules
  pre-sorted by trigger the way Kairos dispatches them, so only the rules an
  event can trigger are evaluated, without their trigger clause. The ratio of
  these to kairos is interpretation against compiled code, nothing else.

Printed as JSON and written to bench/results/<date>-compare-rules.json.
"""

from __future__ import annotations

import argparse
import datetime
import json
import re
import sys
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import yaml

from bench.rule_corpus import AGGREGATES, SEGMENTS, make_corpus, make_inputs
from bench.rules import machine, reference_loop_ns, summary, time_pass
from rules import Ruleset, load_ruleset
from rules.codegen import simple_path
from rules.definitions import RuleDef, Trigger
from rules.dispatch import triggered_by
from rules.expr_ast import Binary, Call, ListLit, Literal, Logical, Name, Node, Unary, walk
from rules.expression import parse_checked
from rules.localtime import LocalTimeCache
from rules.names import LOCAL_FIELDS, ZERO_DEFAULT_KINDS

RULE_COUNT = 200
CORPUS_SEED = 7
INPUT_SEED = 11
INPUT_COUNT = 2000
RESULTS_DIR = Path(__file__).resolve().parent / "results"

DAY_MS = 86_400_000
HOUR_MS = 3_600_000
CLOCK_UNITS = {"days_since": DAY_MS, "hours_since": HOUR_MS}
# `a OP b` is `b FLIPPED[OP] a`: lets every comparison put the field on the left.
FLIPPED = {"==": "==", "!=": "!=", "<": ">", ">": "<", "<=": ">=", ">=": "<="}
ORDERING = ("<", "<=", ">", ">=")


class Untranslatable(Exception):
    """The target language cannot say this; the message is the reason, used to count them."""


class Disagreement(AssertionError):
    """Two engines gave different answers for the same input."""


# -- reading the Kairos syntax tree ------------------------------------------------
def path_of(node: Node) -> str:
    """The dotted path of a field in the attribute document, e.g. "profile.traits.plan"."""
    if isinstance(node, Name) and node.name in ("segments", "now"):
        return node.name
    path = simple_path(node)
    if path is None:
        raise Untranslatable("a computed value where a field is expected")
    if path[0] == "@agg":
        return f"aggregates.{path[1]}"
    if path[0] == "@local":
        return f"local.{path[1]}"
    return ".".join(path)


def is_field(node: Node) -> bool:
    try:
        path_of(node)
    except Untranslatable:
        return False
    return True


def literal_of(node: Node) -> object:
    if not isinstance(node, Literal):
        raise Untranslatable("comparison with a computed value")
    return node.value


def literals_of(node: Node) -> list:
    if not isinstance(node, ListLit) or not all(isinstance(i, Literal) for i in node.items):
        raise Untranslatable("`in` with a computed list")
    return [item.value for item in node.items]  # type: ignore[union-attr]


def oriented(node: Binary) -> tuple[str, Node, object]:
    """(op, subject, literal) with the literal on the right: `5 < x` reads as `x > 5`."""
    if node.op not in FLIPPED:
        raise Untranslatable(f"operator {node.op}")
    if isinstance(node.left, Literal) and not isinstance(node.right, Literal):
        return FLIPPED[node.op], node.right, node.left.value
    return node.op, node.left, literal_of(node.right)


def segments_tested(node: Node | None) -> list[str]:
    """Ids of the segments a condition tests as `"id" in segments` (or `not in`)."""
    found: list[str] = []
    if node is None:
        return found
    for item in walk(node):
        if (
            isinstance(item, Binary)
            and item.op in ("in", "not in")
            and isinstance(item.right, Name)
            and item.right.name == "segments"
            and isinstance(item.left, Literal)
            and isinstance(item.left.value, str)
        ):
            found.append(item.left.value)
    return found


def event_types(triggers: tuple[Trigger, ...]) -> list[tuple[str, str | None]] | None:
    """(type, track name or None) pairs a rule reacts to; None when it reacts to every event."""
    if any(trigger.kind == "any" for trigger in triggers):
        return None
    return [(trigger.kind, trigger.track_name) for trigger in triggers]


# -- GrowthBook --------------------------------------------------------------------
GB_ORDER = {"<": "$lt", "<=": "$lte", ">": "$gt", ">=": "$gte"}


def gb_all(parts: list[dict]) -> dict:
    """A conjunction: one flat condition when the parts name different fields (as people
    write them), `$and` when two parts would share a key."""
    merged: dict = {}
    for part in parts:
        if merged.keys() & part.keys():
            return {"$and": parts}
        merged.update(part)
    return merged


class GrowthBookTranslator:
    """Kairos conditions as GrowthBook conditions (MongoDB-style queries over attributes)."""

    def trigger(self, triggers: tuple[Trigger, ...]) -> dict:
        kinds = event_types(triggers)
        if kinds is None:
            return {}
        options = [
            {"event.type": kind} | ({"event.event": name} if name is not None else {})
            for kind, name in kinds
        ]
        return options[0] if len(options) == 1 else {"$or": options}

    def condition(self, node: Node) -> dict:
        if isinstance(node, Logical):
            parts = [self.condition(item) for item in node.items]
            return gb_all(parts) if node.op == "and" else {"$or": parts}
        if isinstance(node, Unary) and node.op == "not":
            return {"$not": self.condition(node.operand)}
        if isinstance(node, Binary):
            return self.binary(node)
        raise Untranslatable("bare value as a condition")

    def rule(self, trigger: dict, body: dict | None) -> tuple[dict, dict]:
        """(trigger and condition, condition alone); {} matches everything."""
        return gb_all([trigger, body or {}]), body or {}

    def binary(self, node: Binary) -> dict:
        op = node.op
        if op in ("in", "not in"):
            return self.membership(node)
        if op in ("starts_with", "ends_with", "matches"):
            return self.text_test(op, node.left, literal_of(node.right))
        op, subject, value = oriented(node)
        if isinstance(subject, Call):
            return self.call_comparison(op, subject, value)
        path = path_of(subject)
        if op == "==":
            return {path: value}
        if op == "!=":
            return {path: {"$ne": value}}
        if op in GB_ORDER and isinstance(value, (int, float, str)) and not isinstance(value, bool):
            return {path: {GB_ORDER[op]: value}}
        raise Untranslatable(f"operator {op}")

    def membership(self, node: Binary) -> dict:
        negate = node.op == "not in"
        if isinstance(node.left, Literal) and is_field(node.right):
            # "vip" in profile.tags: an array attribute that includes a value.
            test = {"$elemMatch": {"$eq": node.left.value}}
            return {path_of(node.right): {"$not": test} if negate else test}
        if is_field(node.left):
            values = literals_of(node.right)
            return {path_of(node.left): {"$nin" if negate else "$in": values}}
        raise Untranslatable("`in` between computed values")

    def text_test(self, op: str, subject: Node, value: object) -> dict:
        if not isinstance(value, str) or not value:
            raise Untranslatable("text test against a non-text value")
        insensitive = False
        if isinstance(subject, Call):
            # lower(x) ends_with "text" is a case-blind test of x, which `$regexi` can say.
            if subject.name != "lower" or op == "matches" or value != value.lower():
                raise Untranslatable(f"function {subject.name}() in a text test")
            subject, insensitive = subject.args[0], True
        if op == "matches":
            pattern = value
        elif op == "starts_with":
            pattern = "^" + re.escape(value)
        else:
            # `$` rather than Python's `\Z`: GrowthBook conditions are shared with its
            # JavaScript SDKs.  It differs only for text ending in a newline.
            pattern = re.escape(value) + "$"
        return {path_of(subject): {"$regexi" if insensitive else "$regex": pattern}}

    def call_comparison(self, op: str, call: Call, value: object) -> dict:
        if call.name == "len" and isinstance(value, int):
            size = value if op == "==" else {GB_ORDER[op]: value} if op in GB_ORDER else None
            if size is None:
                raise Untranslatable(f"len() with {op}")
            return {path_of(call.args[0]): {"$size": size}}
        if call.name in CLOCK_UNITS:
            raise Untranslatable("days_since/hours_since: no arithmetic on attributes")
        raise Untranslatable(f"function {call.name}()")


# -- JsonLogic ---------------------------------------------------------------------
def var(path: str) -> dict:
    return {"var": path}


class JsonLogicTranslator:
    """Kairos conditions as JsonLogic, using only the operations of the JsonLogic spec."""

    def trigger(self, triggers: tuple[Trigger, ...]) -> dict | None:
        kinds = event_types(triggers)
        if kinds is None:
            return None
        options = []
        for kind, name in kinds:
            test: dict = {"===": [var("event.type"), kind]}
            if name is not None:
                test = {"and": [test, {"===": [var("event.event"), name]}]}
            options.append(test)
        return options[0] if len(options) == 1 else {"or": options}

    def rule(self, trigger: dict | None, body: object) -> tuple[object, object]:
        """(trigger and condition, condition alone); true matches everything."""
        if body is None:
            return (trigger if trigger is not None else True), True
        return ({"and": [trigger, body]} if trigger is not None else body), body

    def condition(self, node: Node) -> object:
        if isinstance(node, Logical):
            return {node.op: [self.condition(item) for item in node.items]}
        if isinstance(node, Unary) and node.op == "not":
            return {"!": self.condition(node.operand)}
        if isinstance(node, Binary):
            return self.binary(node)
        raise Untranslatable("bare value as a condition")

    def value(self, node: Node) -> object:
        if isinstance(node, Literal):
            return node.value
        if isinstance(node, ListLit):
            return literals_of(node)
        if isinstance(node, Call):
            return self.call(node)
        return var(path_of(node))

    def binary(self, node: Binary) -> object:
        op = node.op
        if op == "matches":
            raise Untranslatable("matches: JsonLogic has no regular expressions")
        if op in ("starts_with", "ends_with"):
            return self.affix(op, node.left, literal_of(node.right))
        if op in ("in", "not in"):
            # JsonLogic's `in` is list membership or substring, like the Kairos operator.
            test = {"in": [self.value(node.left), self.value(node.right)]}
            return {"!": test} if op == "not in" else test
        op, subject, value = oriented(node)
        if op == "==":
            return {"===": [self.value(subject), value]}
        if op == "!=":
            return {"!==": [self.value(subject), value]}
        if op in ORDERING:
            test = {op: [self.value(subject), value]}
            if isinstance(subject, Call) and subject.name in CLOCK_UNITS:
                # JsonLogic reads a missing timestamp as 0 (decades ago); Kairos as unknown.
                return {"and": [{"!==": [var(path_of(subject.args[0])), None]}, test]}
            return test
        raise Untranslatable(f"operator {op}")

    def affix(self, op: str, subject: Node, value: object) -> dict:
        if not isinstance(value, str) or not value:
            raise Untranslatable("text test against a non-text value")
        if isinstance(subject, Call):
            raise Untranslatable(f"function {subject.name}(): JsonLogic has no case conversion")
        start = [0, len(value)] if op == "starts_with" else [-len(value)]
        return {"===": [{"substr": [self.value(subject), *start]}, value]}

    def call(self, node: Call) -> dict:
        argument = node.args[0] if node.args else None
        if node.name == "len" and argument is not None:
            # Counting with reduce: the spec has no length operation.
            count = {"+": [var("accumulator"), 1]}
            return {"reduce": [self.value(argument), count, 0]}
        if node.name in CLOCK_UNITS and argument is not None:
            elapsed = {"-": [var("now"), var(path_of(argument))]}
            return {"/": [elapsed, CLOCK_UNITS[node.name]]}
        raise Untranslatable(f"function {node.name}(): not in JsonLogic")


# -- the shared corpus -------------------------------------------------------------
@dataclass
class PeerRule:
    rule_id: str
    triggers: tuple[Trigger, ...]
    full: object  # trigger and condition: what an engine without an index evaluates
    body: object  # the condition alone, for the indexed variant


@dataclass
class PeerSet:
    """What one peer engine evaluates: segment conditions, then rule conditions."""

    segments: list[tuple[str, object]]  # (segment id, translation)
    rules: list[PeerRule]


@dataclass
class Comparison:
    """The corpus translated for each peer, and the part every engine can express."""

    full_ruleset: Ruleset  # Kairos with the whole corpus
    ruleset: Ruleset  # Kairos with only the shared rules and the segments they test
    shared: dict[str, PeerSet]  # per peer: the shared rules, in the order of ruleset.plans
    own: dict[str, PeerSet]  # per peer: every rule it could express
    skipped: dict[str, Counter]  # per peer: reason -> rules it could not express

    @property
    def rule_ids(self) -> list[str]:
        return [plan.id for plan in self.ruleset.plans]

    @property
    def segment_ids(self) -> list[str]:
        return [segment_id for segment_id, _ in next(iter(self.shared.values())).segments]


def aggregate_kinds() -> dict[str, str]:
    kinds = ("count", "sum", "distinct", "last")
    return {name: next(k for k in kinds if k in spec) for name, spec in AGGREGATES}


def rule_dicts(documents: list[tuple[str, str]]) -> list[dict]:
    return [
        rule
        for name, text in documents
        if name.startswith("rules-")
        for rule in yaml.safe_load(text)["rules"]
    ]


def translate_segments(translator, nodes: dict[str, Node]) -> dict[str, object]:
    """Segment id -> its translation, or the Untranslatable saying why not."""
    out: dict[str, object] = {}
    for segment_id, node in nodes.items():
        try:
            out[segment_id] = translator.condition(node)
        except Untranslatable as error:
            out[segment_id] = error
    return out


def translate_rule(translator, rule: RuleDef, segments: dict[str, object]) -> PeerRule:
    node = rule.when.node if rule.when is not None else None
    for segment_id in segments_tested(node):
        if isinstance(segments[segment_id], Untranslatable):
            raise Untranslatable(f"segment it tests: {segments[segment_id]}")
    body = translator.condition(node) if node is not None else None
    full, alone = translator.rule(translator.trigger(rule.triggers), body)
    return PeerRule(rule.id, rule.triggers, full, alone)


def tested_by(rules: list[RuleDef]) -> list[str]:
    """The segments some of `rules` test, sorted as Kairos lists them."""
    return sorted({s for r in rules for s in segments_tested(r.when.node if r.when else None)})


def peer_set(rules: list[RuleDef], translated: dict[str, PeerRule], segments: dict) -> PeerSet:
    return PeerSet(
        [(segment_id, segments[segment_id]) for segment_id in tested_by(rules)],
        [translated[rule.id] for rule in rules],
    )


def comparison_documents(rules: list[dict], segment_ids: list[str]) -> list[tuple[str, str]]:
    """The Kairos side: aggregates, the segments used, and the rules without arbitration
    extras (scores, caps, experiments), whose cost is not part of a condition."""
    kept = ("id", "on", "when", "priority", "actions")
    segments = [{"id": i, "when": w} for i, w in SEGMENTS if i in segment_ids]
    return [
        ("aggregates.yaml", yaml.safe_dump({"aggregates": dict(AGGREGATES)}, sort_keys=False)),
        ("segments.yaml", yaml.safe_dump({"segments": segments}, sort_keys=False)),
        (
            "rules.yaml",
            yaml.safe_dump(
                {"rules": [{k: r[k] for k in kept if k in r} for r in rules]},
                sort_keys=False,
                width=200,
            ),
        ),
    ]


def prepare(rule_count: int = RULE_COUNT, seed: int = CORPUS_SEED) -> Comparison:
    """Translate the corpus for each peer; keep apart the rules every engine can express."""
    documents = make_corpus(rule_count, seed)
    full_ruleset = load_ruleset(documents)
    kinds = aggregate_kinds()
    segment_nodes = {i: parse_checked(w, kinds) for i, w in SEGMENTS}
    translators = {"growthbook": GrowthBookTranslator(), "jsonlogic": JsonLogicTranslator()}
    segments = {
        engine: translate_segments(translator, segment_nodes)
        for engine, translator in translators.items()
    }
    translated: dict[str, dict[str, PeerRule]] = {engine: {} for engine in translators}
    skipped: dict[str, Counter] = {engine: Counter() for engine in translators}
    for plan in full_ruleset.plans:
        for engine, translator in translators.items():
            try:
                translated[engine][plan.id] = translate_rule(
                    translator, plan.rule, segments[engine]
                )
            except Untranslatable as error:
                skipped[engine][str(error)] += 1

    everything = [plan.rule for plan in full_ruleset.plans]
    shared = [rule for rule in everything if all(rule.id in t for t in translated.values())]
    shared_ids = {rule.id for rule in shared}
    ruleset = load_ruleset(
        comparison_documents(
            [r for r in rule_dicts(documents) if r["id"] in shared_ids], tested_by(shared)
        )
    )
    return Comparison(
        full_ruleset=full_ruleset,
        ruleset=ruleset,
        shared={
            engine: peer_set(shared, translated[engine], segments[engine]) for engine in translators
        },
        own={
            engine: peer_set(
                [rule for rule in everything if rule.id in translated[engine]],
                translated[engine],
                segments[engine],
            )
            for engine in translators
        },
        skipped=skipped,
    )


# -- evaluating --------------------------------------------------------------------
Answer = tuple[list[str], list[str]]  # (segment ids, ids of the rules whose condition holds)


class DocumentBuilder:
    """The attribute document the peers read: what the Kairos expressions read, in one dict."""

    def __init__(self, ruleset: Ruleset) -> None:
        # Only the aggregates the rules read, as Kairos's generated code reads only those.
        self.zero_default = tuple(
            spec.id for spec in ruleset.aggregates if spec.kind in ZERO_DEFAULT_KINDS
        )
        self.local = LocalTimeCache().fields  # the cache Kairos's generated code uses

    def __call__(self, event: dict, profile: dict, context: dict, now: int) -> dict:
        aggregates = dict(profile.get("aggregates") or {})
        for name in self.zero_default:
            if aggregates.get(name) is None:
                aggregates[name] = 0  # as Kairos reads an empty window: zero, not unknown
        local = dict(zip(LOCAL_FIELDS, self.local(now, context.get("timezone")), strict=True))
        return {
            "event": event,
            "profile": profile,
            "context": context,
            "aggregates": aggregates,
            "local": local,
            "now": now,
        }


def kairos_engine(ruleset: Ruleset, only: PeerSet | None = None) -> Callable[[tuple], Answer]:
    """decide(), answering with ids; `only` narrows the answer to what a peer evaluates."""
    ids = [plan.id for plan in ruleset.plans]
    if only is None:

        def run(item: tuple) -> Answer:
            decision = ruleset.decide(*item)
            return decision.segments, [ids[position] for position, _ in decision.candidates]

        return run
    segment_ids = {segment_id for segment_id, _ in only.segments}
    rule_ids = {rule.rule_id for rule in only.rules}

    def narrowed(item: tuple) -> Answer:
        decision = ruleset.decide(*item)
        found = [ids[position] for position, _ in decision.candidates]
        return (
            [s for s in decision.segments if s in segment_ids],
            [rule_id for rule_id in found if rule_id in rule_ids],
        )

    return narrowed


def peer_engine(
    peer: PeerSet, build: DocumentBuilder, test: Callable[[dict, object], bool], indexed: bool
) -> Callable[[tuple], Answer]:
    """One event through a peer: document, segments, then the rules' conditions."""
    segments = peer.segments
    everything = [(rule.rule_id, rule.full) for rule in peer.rules]
    by_kind: dict[tuple, list[tuple[str, object]]] = {}

    def triggered(event: dict) -> list[tuple[str, object]]:
        # The same dispatch as Kairos: by event type, and for track events by name.
        kind = event.get("type")
        name = event.get("event") if kind == "track" else None
        chosen = by_kind.get((kind, name))
        if chosen is None:
            chosen = by_kind[(kind, name)] = [
                (rule.rule_id, rule.body)
                for rule in peer.rules
                if any(triggered_by(t, kind, name) for t in rule.triggers)
            ]
        return chosen

    def run(item: tuple) -> Answer:
        document = build(*item)
        document["segments"] = inside = [s for s, c in segments if test(document, c)]
        candidates = triggered(item[0]) if indexed else everything
        return inside, [rule_id for rule_id, c in candidates if test(document, c)]

    return run


def peer_tests() -> dict[str, Callable[[dict, object], bool]]:
    """How each peer answers "does this condition hold for this document?"."""
    from growthbook.core import evalCondition
    from json_logic import jsonLogic

    def jsonlogic_test(document: dict, logic: object) -> bool:
        return jsonLogic(logic, document) is True

    return {"growthbook": evalCondition, "jsonlogic": jsonlogic_test}


def engines(comparison: Comparison) -> dict[str, Callable[[tuple], Answer]]:
    """The timed engines, all on the shared rules."""
    build = DocumentBuilder(comparison.ruleset)
    out = {"kairos": kairos_engine(comparison.ruleset)}
    for name, test in peer_tests().items():
        out[name] = peer_engine(comparison.shared[name], build, test, indexed=False)
        out[f"{name}_indexed"] = peer_engine(comparison.shared[name], build, test, indexed=True)
    return out


def agree(reference: Callable, runners: dict[str, Callable], inputs: list[tuple]) -> int:
    """Raises Disagreement at the first input where a runner's answer differs from
    the reference's; returns how many rule matches the reference found."""
    matched = 0
    for index, item in enumerate(inputs):
        segments, rule_ids = reference(item)
        expected = (sorted(segments), sorted(rule_ids))
        for name, run in runners.items():
            their_segments, their_rules = run(item)
            got = (sorted(their_segments), sorted(their_rules))
            if got != expected:
                raise Disagreement(describe_disagreement(index, name, expected, got))
        matched += len(rule_ids)
    return matched


def verify(comparison: Comparison, inputs: list[tuple]) -> dict:
    """Same segments and same matching rules for every input: first each peer on every rule
    it could express (so the untranslatable counts are the only rules left unchecked), then
    all timed engines on the shared rules."""
    report: dict = {"inputs": len(inputs)}
    build = DocumentBuilder(comparison.full_ruleset)
    for name, test in peer_tests().items():
        own = comparison.own[name]
        reference = kairos_engine(comparison.full_ruleset, own)
        agree(reference, {name: peer_engine(own, build, test, indexed=False)}, inputs)
        report[f"{name}_rules_checked"] = len(own.rules)
    timed = engines(comparison)
    reference = timed.pop("kairos")
    report["shared_rule_matches"] = agree(reference, timed, inputs)
    report["engines_agree"] = True
    return report


def describe_disagreement(index: int, engine: str, expected: tuple, got: tuple) -> str:
    lines = [f"input {index}: {engine} disagrees with kairos"]
    if expected[0] != got[0]:
        lines.append(f"  segments: kairos {expected[0]}, {engine} {got[0]}")
    for rule_id in sorted(set(expected[1]) ^ set(got[1])):
        side = "kairos" if rule_id in expected[1] else engine
        lines.append(f"  {rule_id} matched by {side} only")
    return "\n".join(lines)


# -- timing ------------------------------------------------------------------------
def measure(runners: dict[str, Callable], inputs: list[tuple], rounds: int) -> dict:
    """Engines take turns pass by pass, so a slow spell of the machine is shared."""
    timings: dict[str, list[int]] = {name: [] for name in runners}
    for run in runners.values():
        time_pass(run, inputs, [])  # warm-up: caches, the index of the indexed variants
    for _ in range(rounds):
        for name, run in runners.items():
            time_pass(run, inputs, timings[name])
    return {name: summary(values) for name, values in timings.items()}


def ratios(results: dict) -> dict:
    base = results["kairos"]
    return {
        f"{name}/kairos": {
            "median": round(figures["median_us"] / base["median_us"], 1),
            "p99": round(figures["p99_us"] / base["p99_us"], 1),
        }
        for name, figures in results.items()
        if name != "kairos"
    }


def translation_report(comparison: Comparison) -> dict:
    return {
        "corpus_rules": comparison.full_ruleset.rule_count,
        "rules_compared": len(comparison.rule_ids),
        "segments_compared": comparison.segment_ids,
        "untranslatable": {
            engine: {"rules": sum(reasons.values()), "reasons": dict(reasons.most_common())}
            for engine, reasons in comparison.skipped.items()
        },
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rules", type=int, default=RULE_COUNT, help="rules in the corpus")
    parser.add_argument("--inputs", type=int, default=INPUT_COUNT, help="events per pass")
    parser.add_argument("--rounds", type=int, default=5, help="timed passes per engine")
    parser.add_argument(
        "--no-write", action="store_true", help="print only; do not write bench/results"
    )
    args = parser.parse_args(argv)

    comparison = prepare(args.rules, CORPUS_SEED)
    inputs = make_inputs(args.inputs, INPUT_SEED)
    correctness = verify(comparison, inputs)
    runners = engines(comparison)
    loop_before = reference_loop_ns()
    results = measure(runners, inputs, args.rounds)
    today = datetime.date.today().isoformat()
    report = {
        "results": results,
        "ratios": ratios(results),
        "translation": translation_report(comparison),
        "correctness": correctness,
        "settings": {
            "corpus_seed": CORPUS_SEED,
            "input_seed": INPUT_SEED,
            "inputs": args.inputs,
            "rounds": args.rounds,
            "peers": peer_versions(),
        },
        "machine": machine()
        | {"reference_loop_ns": {"before": loop_before, "after": reference_loop_ns()}},
        "date": today,
    }
    text = json.dumps(report, indent=2)
    print(text)
    if not args.no_write:
        RESULTS_DIR.mkdir(parents=True, exist_ok=True)
        (RESULTS_DIR / f"{today}-compare-rules.json").write_text(text + "\n", encoding="utf-8")
    return 0


def peer_versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for package in ("growthbook", "panzi-json-logic"):
        try:
            out[package] = version(package)
        except PackageNotFoundError:
            out[package] = None
    return out


if __name__ == "__main__":
    sys.exit(main())
