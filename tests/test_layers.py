"""The packages import only from the layers below them (docs/architecture.md's table).

Every import of every module counts, including those inside functions and under
TYPE_CHECKING: a layer that reaches up, even lazily, is a circle waiting to happen.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Top to bottom; a module may import from its own layer and from the layers below.
LAYERS = [
    ("edge.cli", "edge.app"),
    ("edge.http",),
    ("edge.worker",),
    ("edge.connectors",),
    ("edge.pipeline",),
    ("edge.catalog",),
    ("edge.ingest",),
    ("edge.store",),
    ("edge.runtime",),
    ("rules",),
]

# Reaching up is allowed here only, each for a stated reason.
EXCEPTIONS = {
    # The product record the store writes and reads is the catalog's validated type;
    # the store does not validate, it only encodes and decodes it.
    ("edge.store.catalog", "edge.catalog.products"),
    # Validation errors are one type across ingest and the catalog: the product record
    # raises the same InputError the error table answers as 400.
    ("edge.catalog.products", "edge.ingest.wire"),
}


def _layer_of(module: str) -> int | None:
    if module == "edge":  # the package itself holds only its version: importable by all
        return len(LAYERS)
    for index, prefixes in enumerate(LAYERS):
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return index
    return None


def _module_name(path: Path, root: Path = ROOT) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path, root: Path = ROOT) -> set[str]:
    """Every module a file imports, by absolute name."""
    module = _module_name(path, root)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            found.add(base)
            if (root / base.replace(".", "/")).is_dir():
                # `from edge.ingest import consent` imports the module edge.ingest.consent
                found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def _sources() -> list[Path]:
    return sorted([*ROOT.glob("edge/**/*.py"), *ROOT.glob("rules/**/*.py")])


def layer_violations(sources: list[Path], root: Path = ROOT) -> list[str]:
    problems = []
    for path in sources:
        module = _module_name(path, root)
        own = _layer_of(module)
        assert own is not None, f"{module} belongs to no layer: add it to LAYERS"
        for imported in sorted(imports_of(path, root)):
            target = _layer_of(imported)
            if target is None or target >= own:
                continue
            if any(module.startswith(m) and imported.startswith(t) for m, t in EXCEPTIONS):
                continue
            problems.append(f"{module} imports {imported} from a layer above it")
    return problems


def test_every_layer_imports_only_from_below():
    problems = layer_violations(_sources())
    assert not problems, "\n".join(problems)


def test_rules_import_nothing_from_edge():
    offenders = [f"{_module_name(p)} imports {i}" for p in ROOT.glob("rules/**/*.py")
                 for i in imports_of(p) if i == "edge" or i.startswith("edge.")]
    assert not offenders, offenders


def test_an_upward_import_is_reported(tmp_path: Path):
    """The check can fail: a store module that reaches into the pipeline, even lazily."""
    store = tmp_path / "edge" / "store"
    store.mkdir(parents=True)
    (tmp_path / "edge" / "ingest").mkdir()
    bad = store / "bad.py"
    bad.write_text("def f():\n    from edge.pipeline.handler import Pipeline\n"
                   "    from ..ingest import normalize\n")
    assert layer_violations([bad], tmp_path) == [
        "edge.store.bad imports edge.ingest from a layer above it",
        "edge.store.bad imports edge.ingest.normalize from a layer above it",
        "edge.store.bad imports edge.pipeline.handler from a layer above it",
    ]
