"""Reads journey documents (YAML under config/journeys/) into JourneyDefs, reporting every
problem at its line and column, as rule documents are read.

A document is one journey (several may share a file, separated by `---`):

    id: abandoned-cart
    entry: { on: Product Added, when: 'cart.value > 0' }
    run_key: event.properties.cart_id
    reentry: 1d
    goal: { on: Order Completed, within: 7d }
    exit: [{ on: Unsubscribed }]
    steps:
      - { id: wait, wait: 1h }
      - { id: still-there, if: 'cart.value > 0', else: end }
      - { id: remind, send: { channel: email, title: "…", body: "…" }, late: 12h }

See docs/journeys.md for every key.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace
from collections.abc import Iterable, Mapping

import yaml

from .definitions import NOTIFY_CHANNELS, PURPOSES, Origin, Template
from .durations import parse_duration
from .expression import CompiledExpression, ExpressionInvalid
from .journey_defs import (
    DATE_BIRTHDAY,
    DATE_NAME_DAY,
    DATE_SIGNUP,
    DATE_TRAIT,
    ENTRY_CATALOG,
    ENTRY_DATE,
    ENTRY_ENROLL,
    ENTRY_EVENT,
    ENTRY_INACTIVE,
    ENTRY_SEGMENT,
    REENTRY_AFTER,
    REENTRY_ALWAYS,
    REENTRY_NEVER,
    Arm,
    Condition,
    EntryDef,
    GoalDef,
    JourneyDef,
    Matcher,
    SendDef,
    Step,
)
from .localtime import WEEKDAYS
from .problems import Problem, sorted_problems
from .schema import RULE_ID, _trigger, node_reader
from .schedule import parse_day
from .suggest import did_you_mean
from .yaml_source import Entries, SourceText, compose_documents, node_position, scalar_value

JOURNEY_KEYS = ("id", "description", "entry", "steps", "run_key", "reentry", "max_runs", "goal",
                "exit", "purpose", "cap", "migrate")
ENTRY_KEYS = ("on", "when", "enrollment", "date", "trait", "offset", "inactive", "of",
              "catalog", "viewed_within", "segment", "leaves")
STEP_KINDS = ("wait", "wait_until", "wait_for", "if", "split", "send", "set", "tag", "webhook",
              "exit", "goto")
STEP_KEYS = ("id", *STEP_KINDS, "late", "then", "else", "timeout", "on_timeout", "holdout",
             "paths", "description")
WAIT_UNTIL_KEYS = ("time", "days", "date", "at", "offset", "best_send_hour", "fallback")
WAIT_FOR_KEYS = ("on", "when")
SEND_KEYS = ("channel", "channels", "title", "body", "link", "purpose", "on_hold")
WEBHOOK_KEYS = ("url", "body")
MATCH_KEYS = ("on", "when")
GOAL_KEYS = ("on", "when", "within")
DATE_KINDS = (DATE_BIRTHDAY, DATE_SIGNUP, DATE_NAME_DAY, DATE_TRAIT)
CATALOG_CHANGES = ("price_dropped", "back_in_stock")
END = "end"  # a goto target: the run completes
MAX_STEPS = 200
MAX_RUNS = 100
MAX_DAYS_MS = 3_660 * 86_400_000  # waits and windows up to about ten years


def journey_version(text: str) -> str:
    """A short hash of a journey's document: an edited journey is a new version."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:12]


def read_journeys(documents: Iterable[tuple[str, str]],
                  aggregates: Mapping[str, str] | None = None,
                  ) -> tuple[list[JourneyDef], list[Problem]]:
    """Every journey of the documents, and every problem found (sorted by position).

    `aggregates`: the kinds of the aggregates the rules maintain, which conditions may read.
    A journey with any problem is left out; ids must be unique across documents."""
    journeys: list[JourneyDef] = []
    problems: list[Problem] = []
    seen: dict[str, Origin] = {}
    for name, text in documents:
        source = SourceText(str(name), text)
        for root in compose_documents(source, problems):
            part = text[root.start_mark.index:root.end_mark.index]
            before = len(problems)
            journey = _JourneyReader(source, problems, dict(aggregates or {})).read(root, part)
            if journey is None or len(problems) > before:
                continue
            if journey.id in seen:
                problems.append(Problem(journey.origin.source, journey.origin.line,
                                        journey.origin.column,
                                        f"duplicate journey id {journey.id!r} (first at {seen[journey.id]})"))
                continue
            seen[journey.id] = journey.origin
            journeys.append(journey)
    return journeys, sorted_problems(problems)


class _JourneyReader:
    def __init__(self, source: SourceText, problems: list[Problem],
                 aggregates: dict[str, str]) -> None:
        self.source = source
        self.problems = problems
        self.nodes = node_reader(source, problems)
        self.aggregates = aggregates

    # -- small readers -----------------------------------------------------------------------
    def report(self, node: yaml.Node, message: str) -> None:
        self.nodes.report(node, message)

    def origin(self, node: yaml.Node) -> Origin:
        line, column = node_position(node)
        return Origin(self.source.name, line, column)

    def mapping(self, node: yaml.Node, what: str, allowed: tuple[str, ...]) -> Entries | None:
        return self.nodes.mapping(node, what, allowed)

    def text(self, node: yaml.Node, what: str) -> str | None:
        return self.nodes.text(node, what)

    def condition(self, node: yaml.Node, what: str) -> Condition | None:
        text = self.text(node, what)
        if text is None:
            return None
        try:
            return Condition(text, CompiledExpression(text, self.aggregates))
        except ExpressionInvalid as error:
            assert isinstance(node, yaml.ScalarNode)
            locate = self.source.locator(node)
            for offset, message in error.problems:
                line, column = locate(offset)
                self.problems.append(self.source.problem(line, column, f"{what}: {message}"))
            return None

    def duration(self, node: yaml.Node, what: str, allow_negative: bool = False) -> int | None:
        text = self.text(node, what)
        if text is None:
            return None
        sign = 1
        if allow_negative and text.strip().startswith(("-", "+")):
            sign = -1 if text.strip()[0] == "-" else 1
            text = text.strip()[1:]
        ms = parse_duration(text)
        if ms is None or ms > MAX_DAYS_MS or (ms <= 0 and not allow_negative):
            signed = "a duration such as 1h, 2d or -7d" if allow_negative else "a duration such as 30m, 1h or 2d"
            self.report(node, f"{what} must be {signed} (at most 3660d)")
            return None
        return sign * ms

    def whole(self, node: yaml.Node, what: str, low: int, high: int) -> int | None:
        value = scalar_value(node) if isinstance(node, yaml.ScalarNode) else None
        if value.__class__ is not int or not low <= value <= high:  # type: ignore[operator]
            self.report(node, f"{what} must be a whole number from {low} to {high}")
            return None
        return value  # type: ignore[return-value]

    def matcher(self, node: yaml.Node, what: str, allowed: tuple[str, ...] = MATCH_KEYS,
                entries: Entries | None = None) -> Matcher | None:
        if entries is None:
            entries = self.mapping(node, what, allowed)
        if entries is None:
            return None
        if "on" not in entries:
            self.report(node, f"{what} is missing 'on' (the event it waits for)")
            return None
        on = self.text(entries["on"][1], "on")
        trigger = _trigger(on.strip()) if on is not None else None
        if trigger is None:
            if on is not None:
                self.report(entries["on"][1], f"invalid event in on: {on!r}")
            return None
        when = None
        if "when" in entries:
            when = self.condition(entries["when"][1], "when")
            if when is None:
                return None
        return Matcher(trigger, when)

    def template(self, node: yaml.Node, what: str) -> Template | None:
        return self.nodes.template(node, what)

    # -- the document ------------------------------------------------------------------------
    def read(self, root: yaml.Node, document: str) -> JourneyDef | None:
        version = journey_version(document)
        entries = self.mapping(root, "a journey", JOURNEY_KEYS)
        if entries is None:
            return None
        for key in ("id", "entry", "steps"):
            if key not in entries:
                self.report(root, f"a journey is missing '{key}'")
        if any(key not in entries for key in ("id", "entry", "steps")):
            return None
        journey_id = self.nodes.identifier(entries["id"][1], "journey id", RULE_ID,
                                           "use letters, digits, _ - . and : (at most 100)")
        entry = self.entry(entries["entry"][1])
        steps = self.steps(entries["steps"][1])
        extras = self.extras(entries, journey_id or "")
        if journey_id is None or entry is None or steps is None or extras is None:
            return None
        description = ""
        if "description" in entries:
            description = self.text(entries["description"][1], "description") or ""
        return JourneyDef(journey_id, version, self.origin(entries["id"][1]), entry, steps,
                          description=description, document=document, **extras)

    def entry(self, node: yaml.Node) -> EntryDef | None:
        entries = self.mapping(node, "entry", ENTRY_KEYS)
        if entries is None:
            return None
        kinds = [key for key in ("on", "enrollment", "date", "inactive", "catalog", "segment")
                 if key in entries]
        if len(kinds) != 1:
            self.report(node, "entry needs exactly one of: on (an event), enrollment, date, "
                              "inactive, catalog, segment" + (f"; found {', '.join(kinds)}" if kinds else ""))
            return None
        kind = kinds[0]
        if kind == "on":
            matcher = self.matcher(node, "entry", entries=entries)
            return None if matcher is None else EntryDef(ENTRY_EVENT, matcher=matcher)
        if kind == "enrollment":
            value = scalar_value(entries["enrollment"][1]) if isinstance(entries["enrollment"][1], yaml.ScalarNode) else None
            if value not in ("api", True):
                self.report(entries["enrollment"][1], "enrollment must be api")
                return None
            return EntryDef(ENTRY_ENROLL)
        if kind == "date":
            return self.date_entry(entries)
        if kind == "inactive":
            ms = self.duration(entries["inactive"][1], "inactive")
            if "of" not in entries:
                self.report(node, "an inactive entry needs 'of': the events whose absence counts")
                return None
            of = self.text(entries["of"][1], "of")
            trigger = _trigger(of.strip()) if of is not None else None
            if trigger is None:
                if of is not None:
                    self.report(entries["of"][1], f"invalid event in of: {of!r}")
                return None
            return None if ms is None else EntryDef(ENTRY_INACTIVE, matcher=Matcher(trigger),
                                                    inactive_ms=ms)
        if kind == "catalog":
            change = self.text(entries["catalog"][1], "catalog")
            if change not in CATALOG_CHANGES:
                if change is not None:
                    self.report(entries["catalog"][1], f"catalog must be one of: {', '.join(CATALOG_CHANGES)}")
                return None
            within = 30 * 86_400_000
            if "viewed_within" in entries:
                within = self.duration(entries["viewed_within"][1], "viewed_within") or 0
                if not within:
                    return None
            name = "product_price_dropped" if change == "price_dropped" else "product_back_in_stock"
            return EntryDef(ENTRY_CATALOG, catalog_change=name, viewed_within_ms=within)
        segment = self.nodes.identifier(entries["segment"][1], "segment", RULE_ID,
                                        "use letters, digits, _ - . and :")
        leaves = False
        if "leaves" in entries:
            leaves = scalar_value(entries["leaves"][1]) is True
        return None if segment is None else EntryDef(ENTRY_SEGMENT, segment=segment, enters=not leaves)

    def date_entry(self, entries: Entries) -> EntryDef | None:
        node = entries["date"][1]
        kind = self.text(node, "date")
        if kind not in DATE_KINDS:
            if kind is not None:
                self.report(node, f"date must be one of: {', '.join(DATE_KINDS)}{did_you_mean(kind, DATE_KINDS)}")
            return None
        trait = None
        if kind == DATE_TRAIT:
            if "trait" not in entries:
                self.report(node, "a date entry on a trait needs 'trait': the trait holding the date")
                return None
            trait = self.text(entries["trait"][1], "trait")
            if trait is None:
                return None
        offset_days = 0
        if "offset" in entries:
            ms = self.duration(entries["offset"][1], "offset", allow_negative=True)
            if ms is None:
                return None
            if ms % 86_400_000:
                self.report(entries["offset"][1], "a date's offset must be whole days, such as -7d")
                return None
            offset_days = ms // 86_400_000
        # a trait's date (a subscription's end) happens once; the others come every year
        return EntryDef(ENTRY_DATE, date=kind, trait=trait, offset_days=offset_days,
                        yearly=kind != DATE_TRAIT)

    def extras(self, entries: Entries, journey_id: str) -> dict | None:
        found: dict = {}
        ok = True
        if "run_key" in entries:
            found["run_key"] = self.condition(entries["run_key"][1], "run_key")
            ok = ok and found["run_key"] is not None
        if "reentry" in entries:
            node = entries["reentry"][1]
            text = self.text(node, "reentry")
            if text in (REENTRY_NEVER, REENTRY_ALWAYS):
                found["reentry"] = text
            elif text is not None and parse_duration(text) is not None:
                found["reentry"], found["reentry_after_ms"] = REENTRY_AFTER, parse_duration(text)
            else:
                self.report(node, "reentry must be never, always or a duration such as 30d")
                ok = False
        if "max_runs" in entries:
            found["max_runs"] = self.whole(entries["max_runs"][1], "max_runs", 1, MAX_RUNS)
            ok = ok and found["max_runs"] is not None
        if "goal" in entries:
            found["goal"] = self.goal(entries["goal"][1])
            ok = ok and found["goal"] is not None
        if "exit" in entries:
            node = entries["exit"][1]
            items = node.value if isinstance(node, yaml.SequenceNode) else [node]
            exits = []
            for item in items:
                exit_entries = self.mapping(item, "an exit", MATCH_KEYS)
                if exit_entries is None:
                    ok = False
                    continue
                if "on" in exit_entries:
                    matcher = self.matcher(item, "an exit", entries=exit_entries)
                elif "when" in exit_entries:
                    when = self.condition(exit_entries["when"][1], "when")
                    matcher = None if when is None else Matcher(_trigger("any"), when)  # type: ignore[arg-type]
                else:
                    self.report(item, "an exit needs 'on' (an event) or 'when' (a condition)")
                    matcher = None
                if matcher is None:
                    ok = False
                else:
                    exits.append(matcher)
            found["exits"] = tuple(exits)
        if "purpose" in entries:
            purpose = scalar_value(entries["purpose"][1]) if isinstance(entries["purpose"][1], yaml.ScalarNode) else ""
            if purpose is not None and purpose not in PURPOSES:
                self.report(entries["purpose"][1], f"purpose must be one of: {', '.join(PURPOSES)} (or empty: none)")
                ok = False
            found["purpose"] = purpose
        if "cap" in entries:
            found["caps"] = tuple((f"journey:{journey_id}", cap.per_ms, cap.max)
                                  for cap in self.nodes.caps(entries["cap"][1], "cap"))
        if "migrate" in entries:
            found["migrate"] = self.migrate(entries["migrate"][1])
            ok = ok and found["migrate"] is not None
        return found if ok else None

    def goal(self, node: yaml.Node) -> GoalDef | None:
        entries = self.mapping(node, "goal", GOAL_KEYS)
        if entries is None:
            return None
        within = None
        if "within" in entries:
            within = self.duration(entries["within"][1], "within")
            if within is None:
                return None
        matcher = self.matcher(node, "goal", entries=entries)
        return None if matcher is None else GoalDef(matcher, within)

    def migrate(self, node: yaml.Node) -> dict[str, str] | None:
        if isinstance(node, yaml.ScalarNode) and node.value == "same_steps":
            return {"*": "*"}
        entries = self.mapping(node, "migrate", ())
        if entries is None:
            return None
        found = {}
        for key, (_, value_node) in entries.items():
            target = self.text(value_node, f"migrate.{key}")
            if target is None:
                return None
            found[key] = target
        return found

    # -- steps -------------------------------------------------------------------------------
    def steps(self, node: yaml.Node) -> tuple[Step, ...] | None:
        if not isinstance(node, yaml.SequenceNode) or not node.value:
            self.report(node, "steps must be a list of at least one step")
            return None
        if len(node.value) > MAX_STEPS:
            self.report(node, f"a journey has at most {MAX_STEPS} steps")
            return None
        read = [self.step(item, index) for index, item in enumerate(node.value)]
        if any(step is None for step in read):
            return None
        steps: list[Step] = []
        ids: dict[str, Origin] = {}
        for step in read:
            assert step is not None
            if step.id in ids or step.id == END:
                self.problems.append(Problem(step.origin.source, step.origin.line, step.origin.column,
                                             f"duplicate step id {step.id!r}" if step.id != END
                                             else f"{END!r} is reserved: it names the end of the journey"))
                return None
            ids[step.id] = step.origin
        for index, step in enumerate(read):
            following = read[index + 1].id if index + 1 < len(read) else None  # type: ignore[union-attr]
            steps.append(_with_next(step, following))  # type: ignore[arg-type]
        return self.check_targets(tuple(steps), ids)

    def check_targets(self, steps: tuple[Step, ...], ids: dict[str, Origin]) -> tuple[Step, ...] | None:
        known = (*ids, END)
        ok = True
        for step in steps:
            targets = [step.then, step.otherwise, step.on_timeout, step.target,
                       *(arm.goto for arm in step.arms)]
            for target in targets:
                if target is not None and target not in known:
                    self.problems.append(Problem(
                        step.origin.source, step.origin.line, step.origin.column,
                        f"step {step.id!r} goes to unknown step {target!r}{did_you_mean(target, known)}"))
                    ok = False
        return steps if ok else None

    def step(self, node: yaml.Node, index: int) -> Step | None:
        entries = self.mapping(node, "a step", STEP_KEYS)
        if entries is None:
            return None
        kinds = [key for key in STEP_KINDS if key in entries]
        if len(kinds) != 1:
            self.report(node, f"a step needs exactly one of: {', '.join(STEP_KINDS)}"
                              + (f"; found {', '.join(kinds)}" if kinds else ""))
            return None
        kind = kinds[0]
        step_id = f"step-{index + 1}"
        if "id" in entries:
            step_id = self.nodes.identifier(entries["id"][1], "step id", RULE_ID,
                                            "use letters, digits, _ - . and :") or ""
            if not step_id:
                return None
        fields: dict = {}
        before = len(self.problems)
        value = entries[kind][1]
        if "late" in entries:
            fields["late_ms"] = self.duration(entries["late"][1], "late")
        for key in ("then", "else", "on_timeout"):
            if key in entries:
                fields[{"else": "otherwise"}.get(key, key)] = self.text(entries[key][1], key)
        reader = getattr(self, f"step_{kind}")
        fields.update(reader(value, entries) or {})
        if len(self.problems) > before:
            return None
        return Step(step_id, kind, self.origin(node), **fields)

    def step_wait(self, node: yaml.Node, entries: Entries) -> dict:
        return {"duration_ms": self.duration(node, "wait")}

    def step_wait_until(self, node: yaml.Node, entries: Entries) -> dict:
        if isinstance(node, yaml.ScalarNode) and node.value == "best_send_hour":
            return {"best_hour": True}
        found = self.mapping(node, "wait_until", WAIT_UNTIL_KEYS)
        if found is None:
            return {}
        fields: dict = {}
        if "time" in found:
            fields["minute"] = self.clock_time(found["time"][1])
        if "days" in found:
            days = []
            for day_node, text in self.nodes.string_list(found["days"][1], "days"):
                day = parse_day(text)
                if day is None:
                    self.report(day_node, f"unknown day {text!r}; use {', '.join(WEEKDAYS)} or weekdays/weekend")
                else:
                    days.extend(day)
            fields["days"] = frozenset(days)
        if "date" in found:
            fields["date"] = self.condition(found["date"][1], "date")
        if "at" in found:
            fields["moment"] = self.condition(found["at"][1], "at")
            taken = [key for key in ("time", "days", "date", "best_send_hour") if key in found]
            if taken:
                self.report(found["at"][0], f"at names a moment of its own: not with {taken[0]}")
        if "offset" in found:
            if "date" not in found and "at" not in found:
                self.report(found["offset"][0], "offset needs a date or a moment (at)")
            fields["offset_ms"] = self.duration(found["offset"][1], "offset", allow_negative=True)
        if "best_send_hour" in found:
            fields["best_hour"] = scalar_value(found["best_send_hour"][1]) is True
        if "fallback" in found:
            fields["fallback_hour"] = self.whole(found["fallback"][1], "fallback", 0, 23)
        if not fields:
            self.report(node, "wait_until needs a time, days, a date, a moment (at) or best_send_hour")
        if fields.get("best_hour") and "minute" in fields:
            self.report(node, "wait_until takes either a time or best_send_hour, not both")
        return fields

    def clock_time(self, node: yaml.Node) -> int | None:
        text = self.text(node, "time") or ""
        parts = text.strip().split(":")
        if len(parts) == 2 and all(p.isdigit() for p in parts):
            hour, minute = int(parts[0]), int(parts[1])
            if 0 <= hour < 24 and 0 <= minute < 60:
                return hour * 60 + minute
        self.report(node, "time must be a local time such as 09:00")
        return None

    def step_wait_for(self, node: yaml.Node, entries: Entries) -> dict:
        matcher = self.matcher(node, "wait_for", WAIT_FOR_KEYS)
        if "timeout" not in entries:
            self.report(node, "wait_for needs a timeout (how long to wait; on_timeout says where to go then)")
            return {}
        return {"waits_for": matcher, "timeout_ms": self.duration(entries["timeout"][1], "timeout")}

    def step_if(self, node: yaml.Node, entries: Entries) -> dict:
        return {"condition": self.condition(node, "if")}

    def step_split(self, node: yaml.Node, entries: Entries) -> dict:
        found = self.mapping(node, "split", ())
        if found is None:
            return {}
        paths: dict[str, str] = {}
        if "paths" in entries:
            path_entries = self.mapping(entries["paths"][1], "paths", tuple(found))
            for name, (_, target) in (path_entries or {}).items():
                paths[name] = self.text(target, f"paths.{name}") or ""
        arms = []
        for name, (_, weight_node) in found.items():
            weight = self.whole(weight_node, f"split.{name}", 0, 100)
            if weight is not None:
                arms.append(Arm(name, weight, paths.get(name)))
        holdout = 0
        if "holdout" in entries:
            holdout = self.whole(entries["holdout"][1], "holdout", 0, 100) or 0
        if sum(arm.weight for arm in arms) + holdout != 100:
            self.report(node, "a split's weights and its holdout must add up to 100")
        return {"arms": tuple(arms), "holdout": holdout}

    def step_send(self, node: yaml.Node, entries: Entries) -> dict:
        found = self.mapping(node, "send", SEND_KEYS)
        if found is None:
            return {}
        key = "channels" if "channels" in found else "channel"
        if key not in found:
            self.report(node, "send needs a channel (or channels, to choose per person)")
            return {}
        channels = []
        for channel_node, channel in self.nodes.string_list(found[key][1], key):
            if channel not in NOTIFY_CHANNELS:
                self.report(channel_node, f"unknown channel {channel!r}{did_you_mean(channel, NOTIFY_CHANNELS)}; "
                                          f"one of: {', '.join(NOTIFY_CHANNELS)}")
            channels.append(channel)
        fields = {name: self.template(found[name][1], name) for name in ("title", "body") if name in found}
        link = self.template(found["link"][1], "link") if "link" in found else None
        purpose: str | None = "marketing"
        if "purpose" in found:
            value = scalar_value(found["purpose"][1]) if isinstance(found["purpose"][1], yaml.ScalarNode) else ""
            if value is not None and value not in PURPOSES:
                self.report(found["purpose"][1], f"purpose must be one of: {', '.join(PURPOSES)} (or empty: none)")
            purpose = value  # type: ignore[assignment]
        on_hold = "defer"
        if "on_hold" in found:
            on_hold = self.text(found["on_hold"][1], "on_hold") or ""
            if on_hold not in ("defer", "drop"):
                self.report(found["on_hold"][1], "on_hold must be defer or drop")
        return {"send": SendDef(tuple(channels), fields, link, purpose, on_hold)}  # type: ignore[arg-type]

    def step_set(self, node: yaml.Node, entries: Entries) -> dict:
        found = self.mapping(node, "set", ())
        if found is None:
            return {}
        values = {}
        for name, (_, value_node) in found.items():
            if not isinstance(value_node, yaml.ScalarNode):
                self.report(value_node, f"set.{name} must be a plain value (text, number, true or false)")
                continue
            values[name] = scalar_value(value_node)
        return {"traits": values}

    def step_tag(self, node: yaml.Node, entries: Entries) -> dict:
        return {"tags": tuple(text for _, text in self.nodes.string_list(node, "tag"))}

    def step_webhook(self, node: yaml.Node, entries: Entries) -> dict:
        found = self.mapping(node, "webhook", WEBHOOK_KEYS)
        if found is None:
            return {}
        if "url" not in found:
            self.report(node, "webhook needs a url")
            return {}
        url = self.template(found["url"][1], "url")
        body = self.template(found["body"][1], "body") if "body" in found else None
        return {"url": url, "body": body}

    def step_exit(self, node: yaml.Node, entries: Entries) -> dict:
        return {}

    def step_goto(self, node: yaml.Node, entries: Entries) -> dict:
        return {"target": self.text(node, "goto")}


def _with_next(step: Step, following: str | None) -> Step:
    return replace(step, next=following)
