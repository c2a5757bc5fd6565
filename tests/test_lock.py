"""The committed uv.lock agrees with pyproject.toml, and pins every package by hash.

`make serve`, `make test` and `make bench` install exactly uv.lock (`uv sync --locked`);
pyproject.toml keeps the version ranges. When they disagree, `make lock` refreshes the
lock. Offline and fast: this reads the two files, it runs no resolver.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = ROOT / "pyproject.toml"
LOCK = ROOT / "uv.lock"
UV_REQUIREMENTS = ROOT / "uv-requirements.txt"

# pytest depends on packaging, so it is always in the test environment.
from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

SHA256 = re.compile(r"^sha256:[0-9a-f]{64}$")


def canonical_name(name: str) -> str:
    """PEP 503 normalization, as uv writes names in the lock."""
    return re.sub(r"[-_.]+", "-", name).lower()


def normalize_specifier(spec: str) -> frozenset:
    return frozenset(SpecifierSet(spec))  # equality ignores spaces and trailing zeros


def _marker_and(left: str | None, right: str | None) -> str | None:
    parts = [f"({m})" for m in (left, right) if m]
    return " and ".join(parts) or None


# Environments on which two markers must agree to count as the same marker: uv
# rewrites marker expressions (order, parentheses, quotes), so they are compared by
# what they select rather than by their text.
_ENVIRONMENTS = [
    {
        "python_version": py,
        "python_full_version": f"{py}.0",
        "sys_platform": plat,
        "platform_system": system,
        "os_name": os_name,
        "platform_machine": machine,
        "platform_python_implementation": impl,
        "implementation_name": impl.lower(),
        "implementation_version": f"{py}.0",
        "platform_release": "",
        "platform_version": "",
    }
    for py in ("3.11", "3.12", "3.13", "3.14")
    for plat, system, os_name in (
        ("linux", "Linux", "posix"),
        ("darwin", "Darwin", "posix"),
        ("win32", "Windows", "nt"),
    )
    for machine in ("x86_64", "aarch64", "AMD64", "arm64")
    for impl in ("CPython", "PyPy")
]


def _marker_key(marker: str | None, extras: list[str]) -> tuple:
    if not marker:
        return ()
    parsed = Marker(marker)
    selects = []
    for extra in ["", *extras]:
        for env in _ENVIRONMENTS:
            selects.append(parsed.evaluate({**env, "extra": extra}))
    return ("selects", tuple(selects))


def _parse_requirement(text: str) -> dict:
    """A PEP 508 string as a dict shaped like uv.lock's requires-dist entries."""
    req = Requirement(text)
    return {"name": req.name, "extras": sorted(req.extras), "specifier": str(req.specifier),
            "marker": str(req.marker) if req.marker else None, "url": req.url}


def _key(entry: dict, extras: list[str]) -> tuple:
    """What must match between pyproject's and the lock's form of one requirement."""
    url = entry.get("url") or entry.get("git") or entry.get("path") or entry.get("editable")
    return (
        canonical_name(entry["name"]),
        tuple(sorted(canonical_name(e) for e in entry.get("extras") or [])),
        normalize_specifier(entry.get("specifier") or ""),
        _marker_key(entry.get("marker"), extras),
        url or None,
    )


def _describe(entry: dict) -> str:
    text = entry["name"]
    if entry.get("extras"):
        text += "[" + ",".join(entry["extras"]) + "]"
    text += entry.get("specifier") or ""
    if entry.get("marker"):
        text += f"; {entry['marker']}"
    return text


def _diff(where: str, expected: list[dict], locked: list[dict], extras: list[str]) -> list[str]:
    problems = []
    want = {}
    for entry in expected:
        want.setdefault(_key(entry, extras), []).append(entry)
    have = {}
    for entry in locked:
        have.setdefault(_key(entry, extras), []).append(entry)
    for key, entries in want.items():
        missing = len(entries) - len(have.get(key, []))
        if missing > 0:
            problems.append(f"{where}: pyproject has {_describe(entries[0])}, the lock does not")
    for key, entries in have.items():
        extra = len(entries) - len(want.get(key, []))
        if extra > 0:
            problems.append(f"{where}: the lock has {_describe(entries[0])}, pyproject does not")
    return problems


def lock_mismatches(pyproject: dict, lock: dict) -> list[str]:
    """How uv.lock's record of the project differs from pyproject.toml ([] when they agree)."""
    project = pyproject["project"]
    name = canonical_name(project["name"])
    problems = []
    if lock.get("version") != 1:
        problems.append(f"uv.lock version {lock.get('version')!r}: this check knows version 1")
    packages = [p for p in lock.get("package", []) if canonical_name(p["name"]) == name]
    if len(packages) != 1:
        return problems + [f"uv.lock has {len(packages)} packages named {name}, wants 1"]
    package = packages[0]
    if str(package.get("version")) != str(project.get("version")):
        problems.append(
            f"version: pyproject {project.get('version')}, lock {package.get('version')}"
        )
    if "requires-python" in project and normalize_specifier(
        project["requires-python"]
    ) != normalize_specifier(lock.get("requires-python", "")):
        problems.append(
            f"requires-python: pyproject {project['requires-python']!r}, "
            f"lock {lock.get('requires-python')!r}"
        )
    metadata = package.get("metadata", {})
    optional = project.get("optional-dependencies", {})
    extras = sorted(canonical_name(e) for e in optional)

    locked_extras = sorted(canonical_name(e) for e in metadata.get("provides-extras", []))
    if locked_extras != extras:
        problems.append(f"extras: pyproject {extras}, lock provides-extras {locked_extras}")
    locked_optional = sorted(canonical_name(e) for e in package.get("optional-dependencies", {}))
    if locked_optional != extras:
        problems.append(f"extras: pyproject {extras}, lock optional-dependencies {locked_optional}")

    expected = [_parse_requirement(text) for text in project.get("dependencies", [])]
    for extra, requirements in optional.items():
        for text in requirements:
            entry = _parse_requirement(text)
            entry["marker"] = _marker_and(entry["marker"], f"extra == '{canonical_name(extra)}'")
            expected.append(entry)
    problems += _diff("requires-dist", expected, metadata.get("requires-dist", []), extras)

    groups = pyproject.get("dependency-groups", {})
    locked_groups = metadata.get("requires-dev", {})
    for group in sorted(set(groups) | set(locked_groups)):
        wanted = [_parse_requirement(t) for t in groups.get(group, []) if isinstance(t, str)]
        problems += _diff(f"group {group}", wanted, locked_groups.get(group, []), extras)
    return problems


def unhashed_packages(lock: dict) -> list[str]:
    """Locked packages from an index or URL that some artifact of lacks a sha256 hash."""
    problems = []
    for package in lock.get("package", []):
        source = package.get("source", {})
        label = f"{package['name']} {package.get('version', '')}".strip()
        if any(k in source for k in ("editable", "virtual", "directory", "path")):
            continue  # the project itself (or a local path), built from the work tree
        if "git" in source:
            problems.append(f"{label}: from git, no hash to check")
            continue
        artifacts = ([package["sdist"]] if "sdist" in package else []) + package.get("wheels", [])
        if not artifacts:
            problems.append(f"{label}: no sdist or wheel recorded")
        for artifact in artifacts:
            if not SHA256.match(str(artifact.get("hash", ""))):
                where = artifact.get("url") or artifact.get("path") or "artifact"
                problems.append(f"{label}: {where} has no sha256 hash")
    return problems


@pytest.fixture(scope="module")
def pyproject() -> dict:
    return tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def lock() -> dict:
    assert LOCK.exists(), "uv.lock is missing: run `make lock`"
    return tomllib.loads(LOCK.read_text(encoding="utf-8"))


def test_lock_matches_pyproject(pyproject, lock):
    problems = lock_mismatches(pyproject, lock)
    assert not problems, "uv.lock is out of date, run `make lock`:\n" + "\n".join(problems)


def test_every_locked_package_has_hashes(lock):
    assert len(lock["package"]) > 10
    problems = unhashed_packages(lock)
    assert not problems, "\n".join(problems)


def test_pyproject_keeps_ranges(pyproject):
    """pyproject is for people installing the package as a library: ranges, no exact pins."""
    project = pyproject["project"]
    requirements = list(project["dependencies"])
    for group in project["optional-dependencies"].values():
        requirements += group
    pinned = [r for r in requirements if re.search(r"(===|==(?!.*\*))", r.split(";")[0])]
    assert not pinned, f"exact pins belong in uv.lock, not pyproject.toml: {pinned}"
    assert {"test", "bench"} <= set(project["optional-dependencies"])


def test_uv_bootstrap_is_pinned_by_hash():
    text = UV_REQUIREMENTS.read_text(encoding="utf-8")
    assert re.search(r"^uv==\d+\.\d+\.\d+ ", text, re.MULTILINE), text
    hashes = re.findall(r"--hash=sha256:([0-9a-f]+)", text)
    assert len(hashes) >= 4 and all(len(h) == 64 for h in hashes)


# The comparison must be able to fail: mismatched pyproject texts against the real lock.
# The edits are made from whatever pyproject.toml lists, so they outlive its changes.


def _text() -> str:
    return PYPROJECT.read_text(encoding="utf-8")


def _quoted(requirement: str) -> str:
    return f'"{requirement}"'


def _first(pyproject: dict, extra: str | None = None) -> str:
    project = pyproject["project"]
    return (project["optional-dependencies"][extra] if extra else project["dependencies"])[0]


def _name(requirement: str) -> str:
    return _parse_requirement(requirement)["name"]


def _edit(text: str, old: str, new: str) -> str:
    assert old in text, old
    return text.replace(old, new, 1)


def _range_moved(text, pp):
    dep = _first(pp)
    return _edit(text, _quoted(dep), _quoted(f"{_name(dep)}>=999")), _name(dep)


def _dependency_added(text, pp):
    dep = _first(pp)
    return _edit(text, _quoted(dep), f'{_quoted(dep)}, "kairos-not-locked>=1"'), "not-locked"


def _dependency_dropped(text, pp):
    dep = _first(pp)
    return _edit(text, _quoted(dep) + ",", ""), _name(dep)


def _extra_of_dependency_dropped(text, pp):
    with_extras = [d for d in pp["project"]["dependencies"] if _parse_requirement(d)["extras"]]
    if not with_extras:
        pytest.skip("no dependency with extras")
    dep = _parse_requirement(with_extras[0])
    plain = _quoted(dep["name"] + dep["specifier"])
    return _edit(text, _quoted(with_extras[0]), plain), dep["name"]


def _test_dependency_dropped(text, pp):
    dep = _first(pp, "test")
    return _edit(text, _quoted(dep) + ",", ""), _name(dep)


def _bench_dependency_dropped(text, pp):
    dep = _first(pp, "bench")
    return _edit(text, _quoted(dep) + ",", ""), _name(dep)


def _marker_added(text, pp):
    dep = _first(pp, "test")
    return _edit(text, _quoted(dep), _quoted(f"{dep}; sys_platform == 'linux'")), _name(dep)


def _extra_renamed(text, pp):
    return _edit(text, "\nbench = [", "\nbenchmarks = ["), "extras"


def _version_bumped(text, pp):
    version = pp["project"]["version"]
    return _edit(text, f'version = "{version}"', 'version = "999.0"'), "version"


def _python_raised(text, pp):
    spec = pp["project"]["requires-python"]
    return _edit(text, f'requires-python = "{spec}"', 'requires-python = ">=3.99"'), "python"


@pytest.mark.parametrize(
    "edit",
    [
        _range_moved,
        _dependency_added,
        _dependency_dropped,
        _extra_of_dependency_dropped,
        _test_dependency_dropped,
        _bench_dependency_dropped,
        _marker_added,
        _extra_renamed,
        _version_bumped,
        _python_raised,
    ],
)
def test_a_mismatched_pyproject_is_reported(pyproject, lock, edit):
    text, reported = edit(_text(), pyproject)
    problems = lock_mismatches(tomllib.loads(text), lock)
    assert problems, f"{edit.__name__} went unnoticed"
    assert any(reported in p for p in problems), problems


def test_a_dependency_moved_between_extras_is_reported(pyproject, lock):
    edited = tomllib.loads(_text())
    extras = edited["project"]["optional-dependencies"]
    dep = extras["test"].pop(0)
    extras["bench"].append(dep)
    problems = lock_mismatches(edited, lock)
    assert any(_name(dep) in p and "extra == 'test'" in p for p in problems), problems
    assert any(_name(dep) in p and "extra == 'bench'" in p for p in problems), problems


def test_spelling_differences_are_not_mismatches(pyproject, lock):
    """Case, separators, spaces and a trailing zero are not changes (as for uv)."""
    text = _text()
    for requirement in pyproject["project"]["dependencies"]:
        dep = _parse_requirement(requirement)
        if dep["marker"] or dep["url"]:
            continue
        name = dep["name"].upper().replace("-", "_")
        extras = f"[{','.join(e.upper() for e in dep['extras'])}]" if dep["extras"] else ""
        spec = ", ".join(
            f"{s.operator} {s.version}.0" if s.operator == ">=" else str(s)
            for s in SpecifierSet(dep["specifier"])
        )
        text = _edit(text, _quoted(requirement), _quoted(f"{name} {extras} {spec}".strip()))
    assert text != _text()
    assert lock_mismatches(tomllib.loads(text), lock) == []


def test_a_lock_without_hashes_is_reported(lock):
    package = next(p for p in lock["package"] if p.get("wheels"))
    stripped = {
        **package,
        "wheels": [{k: v for k, v in w.items() if k != "hash"} for w in package["wheels"]],
    }
    broken = {**lock, "package": [stripped if p is package else p for p in lock["package"]]}
    problems = unhashed_packages(broken)
    assert problems and all(package["name"] in p for p in problems)
