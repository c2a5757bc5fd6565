"""A compiled set of rules: decide() and aggregate_updates() for the edge."""

from __future__ import annotations

from .aggregates import AggregateSpec
from .arbitration import Arbiter, RulePlan
from .decision import Decision
from .definitions import AggregateDef, ExperimentDef, PolicyDef, SegmentDef, action_templates
from .dispatch import DispatchTable


class Ruleset:
    """Built by rules.load_ruleset; immutable and safe to share between requests."""

    def __init__(
        self,
        *,
        version: str,
        aggregates: tuple[AggregateSpec, ...],
        decide_table: DispatchTable,
        updates_table: DispatchTable,
        rule_count: int,
        segment_count: int,
        event_types_with_rules: frozenset[str],
        generated_source: str,
        plans: tuple[RulePlan, ...] = (),
        policy: PolicyDef | None = None,
        experiments: tuple[ExperimentDef, ...] = (),
        catalog_lists: frozenset[str] = frozenset(),
        segments: tuple[SegmentDef, ...] = (),
        aggregate_definitions: tuple[AggregateDef, ...] = (),
    ) -> None:
        self.version = version
        self.aggregates = aggregates
        self.rule_count = rule_count
        self.segment_count = segment_count
        self.event_types_with_rules = event_types_with_rules
        # Kept for debugging and for the docs: the Python the rules were compiled to.
        self.generated_source = generated_source
        # Rules by position (decide() names them by position), and what arbitrates them.
        self.plans = plans
        self.policy = policy = policy or PolicyDef()
        self.experiments = {experiment.id: experiment for experiment in experiments}
        self.arbiter = Arbiter(plans, policy)
        # Catalog lists that conditions read (`catalog.upsell`): the caller puts them in
        # profile["catalog"] before decide(); rules.names.CATALOG_LISTS names them all.
        self.catalog_lists = catalog_lists
        # The segment definitions by id (as decide() lists them), for /v1/explain.
        self.segments = segments
        # The definitions of the aggregates kept (those of `aggregates`), for /v1/explain.
        self.aggregate_definitions = aggregate_definitions
        # Top-level names any rule's content reads: the edge fetches catalog lists for
        # the winners' templates only when some template could read one.
        self.content_names = frozenset(
            name for plan in plans for action in plan.rule.actions
            for template in action_templates(action) for name in template.names)
        self._decide_table = decide_table
        self._updates_table = updates_table
        # decide() reads these directly: one method call less per event.
        self._decide_by_type = decide_table.by_type
        self._decide_by_track_name = decide_table.by_track_name
        self._decide_any_track = decide_table.any_track
        self._decide_other = decide_table.other

    def decide(self, event: dict, profile: dict, context: dict, now_ms: int) -> Decision:
        """Segments, and the rules whose condition holds, for this event.

        Equal inputs give equal answers; rules.arbitration picks the winners.
        """
        # Generated code indexes these as dictionaries; anything else reads as empty.
        if event.__class__ is not dict:
            event = {}
        if profile.__class__ is not dict:
            profile = {}
        if context.__class__ is not dict:
            context = {}
        # The same dispatch as DispatchTable.lookup, written out because it runs per event.
        kind = event.get("type")
        if kind == "track":
            name = event.get("event")
            if name.__class__ is str:
                decide = self._decide_by_track_name.get(name, self._decide_any_track)
            else:
                decide = self._decide_any_track
        elif kind.__class__ is str:
            decide = self._decide_by_type.get(kind, self._decide_other)
        else:
            decide = self._decide_other
        return decide(event, profile, context, now_ms)

    def aggregate_updates(self, event: dict) -> list[tuple[AggregateSpec, object]]:
        """What this event adds to each referenced aggregate: (spec, value) pairs, sorted by id.

        count -> 1; sum -> the `of` value as a float (skipped unless a finite number);
        last -> the value (skipped unless str/int/float/bool); distinct -> the value as text.
        """
        if event.__class__ is not dict:
            return []
        return self._updates_table.lookup(event)(event)

    def __repr__(self) -> str:
        return (
            f"Ruleset(version={self.version!r}, rules={self.rule_count}, "
            f"segments={self.segment_count}, aggregates={len(self.aggregates)})"
        )
