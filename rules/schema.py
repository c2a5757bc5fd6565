"""Reads the node tree of one rule document into definitions, reporting problems.

Only structure is checked here (keys, types, windows, expression syntax).
Checks that need every document at once (duplicate ids, names of aggregates
and segments) happen in rules.validation.  The actions of a rule are read by
rules.schema_actions, on the generic node readers (mapping, text, template, ...)
of the reader here.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import yaml

from .aggregates import AGGREGATE_KINDS, window_problem
from .runtime import DEFAULT_SUMMAND_BOUND
from .suggest import did_you_mean
from .content import ContentCompiler, TemplateProblem
from .content_refs import aggregate_references, name_problems
from .definitions import (
    CHANNELS,
    EVENT_TYPES,
    NOTIFY_CHANNELS,
    PURPOSES,
    Action,
    CapDef,
    ExperimentDef,
    PolicyDef,
    ScheduleDef,
    AggregateDef,
    Definitions,
    Expression,
    Origin,
    RuleDef,
    SegmentDef,
    Template,
    Trigger,
)
from .durations import parse_duration
from .expr_ast import Literal, Member, Name, Node
from .lexer import ExpressionSyntaxError
from .parser import parse_expression
from .problems import Problem
from .schedule import parse_date, parse_day, parse_hours
from .schema_actions import ActionReader
from .yaml_source import Entries, Locator, SourceText, node_position, scalar_value

TOP_LEVEL_KEYS = ("aggregates", "segments", "rules", "experiments", "policy")
AGGREGATE_KEYS = (*AGGREGATE_KINDS, "of", "where", "window", "max_value", "description")
SEGMENT_KEYS = ("id", "when", "description")
RULE_KEYS = ("id", "on", "when", "priority", "actions", "description", "score", "group", "cap",
             "experiment", "variant", "schedule", "purpose")
CAP_KEYS = ("max", "per")
SCHEDULE_KEYS = ("from", "until", "days", "hours", "quiet_hours")
EXPERIMENT_KEYS = ("id", "salt", "variants", "control", "description")
POLICY_KEYS = ("max_messages", "caps", "channel_order", "quiet_hours")
MAX_CAP = 1_000  # deliveries one cap may allow: the timestamps are kept per person

_EXPONENT_NUMBER = re.compile(r"[0-9]+(\.[0-9]*)?[eE][-+]?[0-9]+")
# Aggregate ids appear in dotted paths (aggregates.views_7d), so they are identifiers.
AGGREGATE_ID = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
# Rule and segment ids are only ever quoted, so they may also use - . and :
RULE_ID = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.:-]{0,99}")

_NULL_TAG = "tag:yaml.org,2002:null"
_STR_TAG = "tag:yaml.org,2002:str"

# One sandboxed environment compiles every template; it holds no per-request state.
_CONTENT = ContentCompiler()


def read_document(
    source: SourceText, root: yaml.Node, into: Definitions, problems: list[Problem]
) -> None:
    _DocumentReader(source, into, problems).read(root)


class _DocumentReader:
    def __init__(self, source: SourceText, into: Definitions, problems: list[Problem]) -> None:
        self.source = source
        self.into = into
        self.problems = problems
        self.action_reader = ActionReader(self)

    # -- reporting and basic shapes ----------------------------------------
    def report(self, node: yaml.Node, message: str) -> None:
        self.problems.append(self.source.node_problem(node, message))

    def origin(self, node: yaml.Node) -> Origin:
        line, column = node_position(node)
        return Origin(self.source.name, line, column)

    def mapping(self, node: yaml.Node, what: str, allowed: tuple[str, ...]) -> Entries | None:
        """Keys of a mapping node with their key and value nodes; None if not a mapping."""
        if not isinstance(node, yaml.MappingNode):
            self.report(node, f"{what} must be a mapping")
            return None
        entries: Entries = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                self.report(key_node, f"keys in {what} must be plain names")
                continue
            key = key_node.value
            if key in entries:
                line, _ = node_position(entries[key][0])
                self.report(key_node, f"duplicate key {key!r} in {what} (first on line {line})")
                continue
            if allowed and key not in allowed:
                self.report(
                    key_node,
                    f"unknown key {key!r} in {what}{did_you_mean(key, allowed)}; "
                    f"expected one of: {', '.join(allowed)}",
                )
                continue
            entries[key] = (key_node, value_node)
        return entries

    def missing(self, node: yaml.Node, entries: Entries, key: str, what: str) -> bool:
        if key in entries:
            return False
        self.report(node, f"{what} is missing '{key}'")
        return True

    def text(self, node: yaml.Node, what: str) -> str | None:
        """A scalar's text as written (so `on: yes` stays 'yes' rather than True)."""
        if not isinstance(node, yaml.ScalarNode):
            self.report(node, f"{what} must be a string")
            return None
        if node.tag == _NULL_TAG and not node.value.strip():
            self.report(node, f"{what} must not be empty")
            return None
        return node.value

    def string_list(self, node: yaml.Node, what: str) -> list[tuple[yaml.Node, str]]:
        """A string, or a list of strings, with the node of each."""
        if isinstance(node, yaml.SequenceNode):
            if not node.value:
                self.report(node, f"{what} must not be an empty list")
            items = []
            for item in node.value:
                value = self.text(item, what)
                if value is not None:
                    items.append((item, value))
            return items
        value = self.text(node, what)
        return [] if value is None else [(node, value)]

    def identifier(
        self, node: yaml.Node, what: str, pattern: re.Pattern[str], shape: str
    ) -> str | None:
        value = self.text(node, what)
        if value is None:
            return None
        if not pattern.fullmatch(value):
            self.report(node, f"invalid {what} {value!r}: {shape}")
            return None
        return value

    # -- expressions and templates -----------------------------------------
    def expression(self, node: yaml.Node, what: str) -> Expression | None:
        text = self.text(node, what)
        if text is None:
            return None
        assert isinstance(node, yaml.ScalarNode)
        return self.parse(text, self.source.locator(node))

    def parse(self, text: str, locate: Locator) -> Expression | None:
        try:
            parsed = parse_expression(text)
        except ExpressionSyntaxError as error:
            line, column = locate(error.pos)
            self.problems.append(self.source.problem(line, column, error.message))
            return None
        return Expression(text, parsed, locate, self.source.name)

    def template(self, node: yaml.Node, what: str, html: bool = False) -> Template | None:
        if not isinstance(node, yaml.ScalarNode) or node.tag == _NULL_TAG:
            self.report(node, f"{what} must be a string")
            return None
        return self.template_from_text(node.value, node, "html" if html else "text")

    def template_from_text(self, text: str, node: yaml.ScalarNode, kind: str) -> Template | None:
        """Compiles content text; `kind` is "html" (escaped), "text" or "value" (raw value)."""
        locate = self.source.locator(node)
        try:
            compiled = None
            if kind == "value":
                compiled = _CONTENT.compile_value(text)
            if compiled is None:
                compiled = (_CONTENT.compile_html if kind == "html" else _CONTENT.compile_text)(text)
        except TemplateProblem as problem:
            line, column = locate(_offset_of(text, problem.line, problem.column))
            self.problems.append(self.source.problem(line, column, problem.message))
            return None
        environment = _CONTENT.environment
        unknown = name_problems(environment, text)
        for line, message in unknown:
            at_line, column = locate(_offset_of(text, line, 1))
            self.problems.append(self.source.problem(at_line, column, message))
        if unknown:
            return None
        references = frozenset(aggregate_references(environment, text))
        return Template(text, compiled, references, frozenset(compiled.variables))

    # -- documents ---------------------------------------------------------
    def read(self, root: yaml.Node) -> None:
        entries = self.mapping(root, "a rules document", TOP_LEVEL_KEYS)
        if entries is None:
            return
        if "aggregates" in entries:
            self.read_aggregates(entries["aggregates"][1])
        if "segments" in entries:
            self.read_list(entries["segments"][1], "segments", self.read_segment)
        if "rules" in entries:
            self.read_list(entries["rules"][1], "rules", self.read_rule)
        if "experiments" in entries:
            self.read_list(entries["experiments"][1], "experiments", self.read_experiment)
        if "policy" in entries:
            self.read_policy(entries["policy"][1])

    def read_list(self, node: yaml.Node, what: str, read_item: Callable[[yaml.Node], None]) -> None:
        if isinstance(node, yaml.ScalarNode) and node.tag == _NULL_TAG:
            return  # `rules:` with nothing under it
        if not isinstance(node, yaml.SequenceNode):
            self.report(node, f"{what} must be a list")
            return
        for item in node.value:
            read_item(item)

    # -- aggregates --------------------------------------------------------
    def read_aggregates(self, node: yaml.Node) -> None:
        if isinstance(node, yaml.ScalarNode) and node.tag == _NULL_TAG:
            return
        entries = self.mapping(node, "aggregates", ())
        if entries is None:
            return
        for key_node, spec_node in entries.values():
            aggregate_id = self.identifier(
                key_node,
                "aggregate id",
                AGGREGATE_ID,
                "use letters, digits and _ (not starting with a digit)",
            )
            self.read_aggregate(aggregate_id, key_node, spec_node)

    def read_aggregate(
        self, aggregate_id: str | None, key_node: yaml.Node, node: yaml.Node
    ) -> None:
        what = f"aggregate {key_node.value!r}"
        if aggregate_id is not None:
            self.into.ids["aggregate"].append((aggregate_id, self.origin(key_node)))
        entries = self.mapping(node, what, AGGREGATE_KEYS)
        if entries is None:
            return
        kinds = [key for key in entries if key in AGGREGATE_KINDS]
        if not kinds:
            self.report(node, f"{what} needs one of: {', '.join(AGGREGATE_KINDS)}")
            return
        if len(kinds) > 1:
            self.report(entries[kinds[1]][0], f"{what} has both {kinds[0]} and {kinds[1]}; use one")
            return
        kind = kinds[0]
        if aggregate_id is not None:
            self.into.aggregate_kinds.setdefault(aggregate_id, kind)
        triggers = self.triggers(entries[kind][1], f"{kind} in {what}")
        window_ms = self.window(node, entries, what)
        of = None
        if kind == "count":
            if "of" in entries:
                self.report(
                    entries["of"][0], "a count aggregate takes no 'of'; filter events with 'where'"
                )
        elif not self.missing(node, entries, "of", what):
            of = self.field_path(entries["of"][1])
        where = self.expression(entries["where"][1], "where") if "where" in entries else None
        max_value = self.max_value(entries, kind)
        complete = aggregate_id is not None and triggers is not None and window_ms is not None
        complete = (
            complete
            and (kind == "count" or of is not None)
            and ("where" not in entries or where is not None)
            and max_value is not None
        )
        if not complete:
            self.unbuilt([where, of], "filter")
            return
        self.into.aggregates.append(
            AggregateDef(aggregate_id, kind, triggers, window_ms, of, where,  # type: ignore[arg-type]
                         self.origin(key_node), max_value)
        )

    def max_value(self, entries: Entries, kind: str) -> float | None:
        """A sum's bound on what one event may add (DEFAULT_SUMMAND_BOUND unless given)."""
        if "max_value" not in entries:
            return DEFAULT_SUMMAND_BOUND
        key_node, node = entries["max_value"]
        if kind != "sum":
            self.report(key_node, f"max_value bounds a sum aggregate; a {kind} aggregate takes none")
            return None
        value = scalar_value(node) if isinstance(node, yaml.ScalarNode) else None
        if isinstance(value, str) and _EXPONENT_NUMBER.fullmatch(value):
            value = float(value)  # 1e9: a number in YAML 1.2, text to YAML 1.1's rules
        # Past 1e15 a float no longer keeps cents exact.
        if value.__class__ not in (int, float) or not 0 < value <= 1e15:  # type: ignore[operator]
            self.report(node, "max_value must be a number above 0 and at most 1e15, "
                              "such as 10000 or 1e9")
            return None
        return float(value)  # type: ignore[arg-type]

    def unbuilt(self, expressions: list[Expression | None], place: str) -> None:
        self.into.unbuilt.extend(
            (expression, place) for expression in expressions if expression is not None
        )

    def window(self, node: yaml.Node, entries: Entries, what: str) -> int | None:
        if self.missing(node, entries, "window", what):
            return None
        window_node = entries["window"][1]
        text = self.text(window_node, "window")
        if text is None:
            return None
        window_ms = parse_duration(text) if window_node.tag == _STR_TAG else None
        if window_ms is None:
            self.report(
                window_node, f"invalid window {text!r}; use a duration such as 60m, 12h or 7d"
            )
            return None
        problem = window_problem(window_ms)
        if problem is not None:
            self.report(window_node, problem)
            return None
        return window_ms

    def field_path(self, node: yaml.Node) -> Expression | None:
        """`of`: a path into the event; `properties.revenue` means event.properties.revenue."""
        expression = self.expression(node, "of")
        if expression is None:
            return None
        rooted = _rooted_in_event(expression.node)
        if rooted is None:
            line, column = expression.locate(0)
            self.problems.append(
                self.source.problem(
                    line, column, "'of' must be a field of the event, such as properties.revenue"
                )
            )
            return None
        expression.node = rooted
        return expression

    def triggers(self, node: yaml.Node, what: str) -> tuple[Trigger, ...] | None:
        found: list[Trigger] = []
        ok = True
        for item_node, text in self.string_list(node, what):
            trigger = _trigger(text.strip())
            if trigger is None:
                self.report(item_node, f"invalid event in {what}: {text!r}")
                ok = False
            elif trigger not in found:
                found.append(trigger)
                if trigger.track_name is not None:
                    self.into.track_names.append((trigger.track_name, self.origin(item_node)))
        if not ok or not found:
            return None
        return tuple(found)

    # -- segments ----------------------------------------------------------
    def read_segment(self, node: yaml.Node) -> None:
        entries = self.mapping(node, "a segment", SEGMENT_KEYS)
        if entries is None:
            return
        segment_id = self.named_id(node, entries, "segment")
        if self.missing(node, entries, "when", "segment"):
            return
        when = self.expression(entries["when"][1], "when")
        if segment_id is not None and when is not None:
            self.into.segments.append(SegmentDef(segment_id, when, self.origin(entries["id"][1])))
        else:
            self.unbuilt([when], "segment")

    def named_id(self, node: yaml.Node, entries: Entries, what: str) -> str | None:
        if self.missing(node, entries, "id", what):
            return None
        id_node = entries["id"][1]
        identifier = self.identifier(
            id_node, f"{what} id", RULE_ID, "use letters, digits, _ - . and : (at most 100)"
        )
        if identifier is not None:
            self.into.ids[what].append((identifier, self.origin(id_node)))
        return identifier

    # -- rules -------------------------------------------------------------
    def read_rule(self, node: yaml.Node) -> None:
        entries = self.mapping(node, "a rule", RULE_KEYS)
        if entries is None:
            return
        rule_id = self.named_id(node, entries, "rule")
        triggers = None
        if not self.missing(node, entries, "on", "rule"):
            triggers = self.triggers(entries["on"][1], "on")
        when = None
        if "when" in entries:
            when = self.expression(entries["when"][1], "when")
        score = None
        if "score" in entries:
            score = self.expression(entries["score"][1], "score")
        priority = self.priority(entries)
        actions: list[Action] = []
        actions_ok = False
        if not self.missing(node, entries, "actions", "rule"):
            actions, actions_ok = self.action_reader.actions(entries["actions"][1])
        problems_before = len(self.problems)
        extras = self.rule_extras(entries)
        complete = (
            rule_id is not None and triggers is not None and priority is not None and actions_ok
            and len(self.problems) == problems_before
        )
        for key, expression in (("when", when), ("score", score)):
            complete = complete and (key not in entries or expression is not None)
        if not complete:
            self.unbuilt([when, score], "rule")
            return
        self.into.rules.append(
            RuleDef(rule_id, triggers, when, priority, actions, self.origin(entries["id"][1]),  # type: ignore[arg-type]
                    score=score, **extras)
        )

    def rule_extras(self, entries: Entries) -> dict:
        """Arbitration settings of a rule: group, caps, experiment, schedule, purpose."""
        extras: dict = {}
        if "group" in entries:
            extras["group"] = self.identifier(
                entries["group"][1], "group", RULE_ID, "use letters, digits, _ - . and :")
        if "cap" in entries:
            extras["caps"] = tuple(self.caps(entries["cap"][1], "cap"))
        if "experiment" in entries:
            node = entries["experiment"][1]
            extras["experiment"] = self.identifier(
                node, "experiment", RULE_ID, "use letters, digits, _ - . and :")
            if extras["experiment"] is not None:
                self.into.experiment_uses.append((extras["experiment"], self.origin(node)))
        if "variant" in entries:
            if "experiment" not in entries:
                self.report(entries["variant"][0], "a variant needs an experiment")
            extras["variant"] = self.text(entries["variant"][1], "variant")
            if extras["variant"] is not None and "experiment" in entries:
                self.into.variant_uses.append(
                    (extras.get("experiment"), extras["variant"], self.origin(entries["variant"][1])))
        if "schedule" in entries:
            extras["schedule"] = self.schedule(entries["schedule"][1])
        if "purpose" in entries:
            node = entries["purpose"][1]
            purpose = self.text(node, "purpose")
            if purpose is not None and purpose not in PURPOSES:
                self.report(node, f"purpose must be one of: {', '.join(PURPOSES)}")
            elif purpose is not None:
                extras["purpose"] = purpose
        return {key: value for key, value in extras.items() if value is not None}

    def caps(self, node: yaml.Node, what: str) -> list[CapDef]:
        """`{max: 3, per: 1d}` or a list of them."""
        items = node.value if isinstance(node, yaml.SequenceNode) else [node]
        found = []
        for item in items:
            entries = self.mapping(item, what, CAP_KEYS)
            if entries is None:
                continue
            if self.missing(item, entries, "max", what) or self.missing(item, entries, "per", what):
                continue
            max_node, per_node = entries["max"][1], entries["per"][1]
            value = scalar_value(max_node) if isinstance(max_node, yaml.ScalarNode) else None
            if value.__class__ is not int or not 0 <= value <= MAX_CAP:  # type: ignore[operator]
                self.report(max_node, f"max must be a whole number from 0 to {MAX_CAP}")
                continue
            per_text = self.text(per_node, "per")
            per_ms = parse_duration(per_text) if per_text is not None else None
            if per_ms is None or per_ms <= 0 or per_ms > 366 * 86_400_000:
                self.report(per_node, "per must be a duration such as 6h or 7d (at most 366d)")
                continue
            found.append(CapDef(value, per_ms))  # type: ignore[arg-type]
        return found

    def schedule(self, node: yaml.Node) -> ScheduleDef | None:
        entries = self.mapping(node, "schedule", SCHEDULE_KEYS)
        if entries is None:
            return None
        values: dict = {}
        for key, end in (("from", "start"), ("until", "end")):
            if key in entries:
                text = self.text(entries[key][1], key)
                parsed = parse_date(text) if text is not None else None
                if parsed is None:
                    self.report(entries[key][1], f"{key} must be a date (2026-12-01) or a time "
                                                 "with its zone (2026-12-01T09:00:00Z)")
                elif isinstance(parsed, str):
                    values[f"{end}_date"] = parsed  # the person's date
                else:
                    values[f"{end}_ms"] = parsed
        if "days" in entries:
            days = []
            for day_node, text in self.string_list(entries["days"][1], "days"):
                day = parse_day(text)
                if day is None:
                    self.report(day_node, f"unknown day {text!r}; use mon, tue, … sun or weekdays/weekend")
                else:
                    days.extend(day)
            values["days"] = frozenset(days)
        for key, attribute in (("hours", "hours"), ("quiet_hours", "quiet")):
            if key in entries:
                values[attribute] = self.hours(entries[key][1], key)
        return ScheduleDef(**values)

    def hours(self, node: yaml.Node, what: str) -> tuple[int, int] | None:
        text = self.text(node, what)
        parsed = parse_hours(text) if text is not None else None
        if parsed is None and text is not None:
            self.report(node, f"{what} must be a range of local times such as 09:00-18:00")
        return parsed

    # -- experiments and policy --------------------------------------------
    def read_experiment(self, node: yaml.Node) -> None:
        entries = self.mapping(node, "an experiment", EXPERIMENT_KEYS)
        if entries is None:
            return
        experiment_id = self.named_id(node, entries, "experiment")
        salt = experiment_id
        if "salt" in entries:
            salt = self.text(entries["salt"][1], "salt")
        weights: list[tuple[str, int]] = []
        ok = True
        if "variants" in entries:
            variants = self.mapping(entries["variants"][1], "variants", ())
            for name, (key_node, weight_node) in (variants or {}).items():
                if name == "control" or not RULE_ID.fullmatch(name):
                    self.report(key_node, f"invalid variant name {name!r}")
                    ok = False
                    continue
                weight = self.weight(weight_node)
                ok = ok and weight is not None
                if weight is not None:
                    weights.append((name, weight))
        if "control" in entries:
            weight = self.weight(entries["control"][1])
            ok = ok and weight is not None
            if weight:
                weights.append(("control", weight))
        total = sum(weight for _, weight in weights)
        if ok and total != 100:
            shares = ", ".join(f"{name} {weight}" for name, weight in weights) or "none"
            self.report(node, f"the weights of an experiment are percentages of the people it "
                              f"draws and must add up to 100 with the control; these add up to "
                              f"{total} ({shares})")
            ok = False
        if ok and experiment_id is not None and salt is not None:
            self.into.experiments.append(
                ExperimentDef(experiment_id, salt, tuple(weights), self.origin(entries["id"][1])))

    def weight(self, node: yaml.Node) -> int | None:
        value = scalar_value(node) if isinstance(node, yaml.ScalarNode) else None
        if value.__class__ is not int or not 0 <= value <= 100:  # type: ignore[operator]
            self.report(node, "a weight must be a whole number from 0 to 100 (a percentage)")
            return None
        return value  # type: ignore[return-value]

    def read_policy(self, node: yaml.Node) -> None:
        entries = self.mapping(node, "policy", POLICY_KEYS)
        if entries is None:
            return
        values: dict = {}
        if "max_messages" in entries:
            value_node = entries["max_messages"][1]
            value = scalar_value(value_node) if isinstance(value_node, yaml.ScalarNode) else None
            if value.__class__ is not int or not 0 <= value <= 20:  # type: ignore[operator]
                self.report(value_node, "max_messages must be a whole number from 0 to 20")
            else:
                values["max_messages"] = value
        if "caps" in entries:
            caps = self.mapping(entries["caps"][1], "caps", ("global", *CHANNELS))
            values["caps"] = tuple(
                (name, tuple(self.caps(cap_node, f"caps.{name}")))
                for name, (_, cap_node) in (caps or {}).items()
            )
        if "channel_order" in entries:
            order = []
            for item_node, text in self.string_list(entries["channel_order"][1], "channel_order"):
                if text not in NOTIFY_CHANNELS:
                    self.report(item_node, f"unknown channel {text!r}; expected one of: "
                                           f"{', '.join(NOTIFY_CHANNELS)}")
                elif text not in order:
                    order.append(text)
            values["channel_order"] = tuple(order) + tuple(
                channel for channel in NOTIFY_CHANNELS if channel not in order)
        if "quiet_hours" in entries:
            values["quiet"] = self.hours(entries["quiet_hours"][1], "quiet_hours")
        self.into.policies.append((PolicyDef(**values), self.origin(node)))

    def priority(self, entries: Entries) -> int | None:
        if "priority" not in entries:
            return 0
        node = entries["priority"][1]
        value = scalar_value(node) if isinstance(node, yaml.ScalarNode) else None
        if value.__class__ is not int:
            self.report(node, "priority must be a whole number")
            return None
        return value  # type: ignore[return-value]


def _offset_of(text: str, line: int, column: int) -> int:
    """Offset in `text` of a 1-based line and column (clamped to the text)."""
    lines = text.split("\n")
    line = min(max(line, 1), len(lines))
    offset = sum(len(previous) + 1 for previous in lines[: line - 1])
    return min(offset + max(column, 1) - 1, len(text))


def _trigger(text: str) -> Trigger | None:
    if not text:
        return None
    if text == "any":
        return Trigger("any")
    if text == "track":
        return Trigger("track", None)
    if text in EVENT_TYPES:
        return Trigger(text)
    if text.startswith("track:"):
        name = text[len("track:") :].strip()
        return Trigger("track", name) if name else None
    return Trigger("track", text)


def _rooted_in_event(node: Node) -> Node | None:
    """Rewrites a field path to start at `event`; None if it is not a plain field path."""
    chain: list[Member] = []
    current = node
    while isinstance(current, Member):
        if not isinstance(current.key, Literal) or current.key.value.__class__ not in (str, int):
            return None
        chain.append(current)
        current = current.target
    if not isinstance(current, Name):
        return None
    rebuilt: Node = current
    if current.name != "event":
        rebuilt = Member(
            Name("event", current.pos), Literal(current.name, current.pos), current.pos
        )
    for member in reversed(chain):
        rebuilt = Member(rebuilt, member.key, member.pos)
    return rebuilt


def node_reader(source: SourceText, problems: list[Problem]) -> _DocumentReader:
    """The generic node readers (mapping, text, expression, template, caps, …) for a
    document of another kind, such as a journey, reporting into `problems`."""
    return _DocumentReader(source, Definitions(), problems)
