"""Which aggregates a content template reads, found in its jinja2 syntax tree.

The edge maintains only the aggregates the rules refer to, so a template's
`{{ aggregates.views_7d }}` must count as a reference like a condition's.
"""

from __future__ import annotations

from jinja2 import Environment, meta, nodes

from .names import AGGREGATE_ROOTS


def aggregate_references(environment: Environment, text: str) -> set[tuple[str, int]]:
    """(aggregate id, line) for each `aggregates.x` / `aggregates["x"]` in the template."""
    found: set[tuple[str, int]] = set()
    tree = environment.parse(text)
    for node in tree.find_all((nodes.Getattr, nodes.Getitem)):
        target = node.node
        if not (isinstance(target, nodes.Name) and target.name in AGGREGATE_ROOTS):
            continue
        if isinstance(node, nodes.Getattr):
            found.add((node.attr, node.lineno))
        elif isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, str):
            found.add((node.arg.value, node.lineno))
    return found


# Names a template may read: the variables the edge passes (see rules.render and
# edge.pipeline.handler) and the catalog lists fetched when a template names them.
TEMPLATE_NAMES = frozenset({
    "event", "profile", "traits", "cart", "aggregates", "agg", "context", "segments", "now",
    "currency", "recent_products", "cross_sell", "upsell",
})


def name_problems(environment: Environment, text: str) -> list[tuple[int, str]]:
    """(line, message) for names and functions a template reads that will never exist."""
    tree = environment.parse(text)
    problems = []
    for name in sorted(meta.find_undeclared_variables(tree) - TEMPLATE_NAMES
                       - set(environment.globals)):
        line = next((n.lineno for n in tree.find_all(nodes.Name) if n.name == name), 1)
        problems.append((line, f"unknown name {name!r} in a template; expected one of: "
                               f"{', '.join(sorted(TEMPLATE_NAMES))}"))
    for call in tree.find_all(nodes.Call):
        if isinstance(call.node, nodes.Name) and call.node.name not in environment.globals:
            if call.node.name in TEMPLATE_NAMES:
                problems.append((call.lineno, f"{call.node.name!r} is not a function"))
    return problems
