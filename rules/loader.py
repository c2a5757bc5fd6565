"""load_ruleset and check_documents: from YAML texts to a Ruleset or problems."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from .aggregates import AggregateSpec, bucket_ms_for
from .arbitration import RulePlan
from .definitions import Definitions, PolicyDef
from .dispatch import DispatchTable
from .generate import ModuleWriter
from .problems import Problem, RulesInvalid, errors_of, sorted_problems
from .ruleset import Ruleset
from .schema import read_document
from .validation import References, check_definitions
from .yaml_source import SourceText, compose_documents

Document = tuple[str, str]


def check_documents(documents: Iterable[Document]) -> list[Problem]:
    """Every problem in the documents, warnings too, sorted by position; empty when they
    are valid and nothing in them looks like a slip."""
    try:
        problems, _, _ = _read_and_check(documents)
    except Exception as error:  # a bug here must not take down the caller's check command
        return [Problem("<rules>", 1, 1, f"internal error while checking rules: {error!r}")]
    return problems


def load_ruleset(documents: Iterable[Document]) -> Ruleset:
    """Compile documents into a Ruleset; raises RulesInvalid listing every error (warnings
    do not stop a load: check_documents reports them)."""
    documents = list(documents)
    problems, definitions, references = _read_and_check(documents)
    errors = errors_of(problems)
    if errors:
        raise RulesInvalid(errors)
    return _build(documents, definitions, references)


def _read_and_check(documents: Iterable[Document]) -> tuple[list[Problem], Definitions, References]:
    problems: list[Problem] = []
    definitions = Definitions()
    for name, text in documents:
        if isinstance(text, bytes):
            try:
                text = text.decode("utf-8")
            except UnicodeDecodeError as error:
                problems.append(Problem(str(name), 1, 1, f"not UTF-8 text: {error}"))
                continue
        if not isinstance(text, str):
            problems.append(Problem(str(name), 1, 1, "document must be text"))
            continue
        source = SourceText(str(name), text)
        for root in compose_documents(source, problems):
            read_document(source, root, definitions, problems)
    references = check_definitions(definitions, problems)
    return sorted_problems(problems), definitions, references


def content_version(documents: list[Document]) -> str:
    """A short hash of the documents, independent of the order they were given in."""
    digest = hashlib.sha256()
    for name, text in sorted(documents, key=lambda document: document[0]):
        for piece in (name, text):
            data = (
                piece.encode("utf-8", "surrogatepass") if isinstance(piece, str) else bytes(piece)
            )
            digest.update(len(data).to_bytes(8, "big"))
            digest.update(data)
    return digest.hexdigest()[:12]


def _build(documents: list[Document], definitions: Definitions, references: References) -> Ruleset:
    version = content_version(documents)
    aggregate_kinds = {aggregate.id: aggregate.kind for aggregate in definitions.aggregates}
    segments = sorted(definitions.segments, key=lambda segment: segment.id)
    used_aggregates = [a for a in definitions.aggregates if a.id in references.aggregates]

    specs = {
        a.id: AggregateSpec(a.id, a.kind, a.window_ms, bucket_ms_for(a.window_ms))  # type: ignore[arg-type]
        for a in used_aggregates
    }
    rules = sorted(definitions.rules, key=lambda rule: rule.id)
    positions = {rule.id: index for index, rule in enumerate(rules)}
    experiments = {experiment.id: experiment for experiment in definitions.experiments}
    plans = tuple(RulePlan.of(rule, experiments.get(rule.experiment or "")) for rule in rules)
    policy = definitions.policies[0][0] if definitions.policies else PolicyDef()
    writer = ModuleWriter(aggregate_kinds, segments, specs, positions)
    # The tables are first filled with the names of generated functions, then,
    # once the module is compiled, with the functions themselves.
    decide_table = DispatchTable(definitions.rules, lambda rule: rule.triggers, writer.add_decide)  # type: ignore[arg-type]
    updates_table = DispatchTable(used_aggregates, lambda a: a.triggers, writer.add_updates)  # type: ignore[arg-type]
    namespace, source = writer.build(f"<rules {version}>")
    decide_table.replace_functions(namespace.__getitem__)  # type: ignore[arg-type]
    updates_table.replace_functions(namespace.__getitem__)  # type: ignore[arg-type]

    labels = frozenset(trigger.label() for rule in definitions.rules for trigger in rule.triggers)
    return Ruleset(
        version=version,
        aggregates=tuple(specs[aggregate_id] for aggregate_id in sorted(specs)),
        decide_table=decide_table,
        updates_table=updates_table,
        rule_count=len(definitions.rules),
        segment_count=len(definitions.segments),
        event_types_with_rules=labels,
        generated_source=source,
        plans=plans,
        policy=policy,
        experiments=tuple(definitions.experiments),
        catalog_lists=frozenset(references.catalog),
        segments=tuple(segments),
        aggregate_definitions=tuple(sorted(used_aggregates, key=lambda a: a.id)),
    )
