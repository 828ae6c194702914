"""apk-tools' own solver test cases, run through nanodistro's resolver.

Only fresh installs apply (an ``add`` into an empty root: no ``@INSTALLED``/``--test-instdb``,
no cache); every other case (upgrade, del, fix, installed state) is listed as not applicable.
A case passes when the install list (``(i/N) Installing name (version)`` lines, in order) is
identical, or when both apk-tools and nanodistro refuse the request.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from nanodistro.errors import NanodistroError, ResolveError, VersionError
from nanodistro.formats.apkindex import parse_apkindex_text
from nanodistro.formats.pkginfo import PackageInfo
from nanodistro.formats.version import is_valid, parse_dependency
from nanodistro.resolve.solver import solve
from nanodistro.resolve.universe import RepositoryRef, Universe

ARCH = "x86_64"


@dataclass
class Case:
    path: Path
    args: list[str]
    repos: list[tuple[str | None, str]] = field(default_factory=list)
    world: list[str] = field(default_factory=list)
    expect: list[str] = field(default_factory=list)
    not_applicable: str | None = None
    virtual_version_is_time: bool = False


def parse_case(path: Path) -> Case:
    """Read a 3.0 (``@ARGS``/``@REPO``/``@EXPECT``) or 2.x (``--test-repo`` in @ARGS) case."""
    text = path.read_text()
    sections: list[tuple[str, str]] = []
    for line in text.splitlines():
        if line.startswith("@"):
            key, _, value = line.partition(" ")
            sections.append((key, value))
        elif sections:
            key, value = sections[-1]
            sections[-1] = (key, f"{value}\n{line}" if value else line)
    case = Case(path, [])
    for key, value in sections:
        if key == "@ARGS":
            case.args = shlex.split(value)
        elif key == "@REPO":
            words = value.split()
            if len(words) == 2 and words[0].startswith("@"):
                case.repos.append((words[0][1:], words[1]))
            else:
                case.repos.append((None, words[0]))
        elif key == "@WORLD":
            case.world.extend(value.split())
        elif key == "@EXPECT":
            case.expect = value.splitlines()
        elif key in ("@INSTALLED", "@CACHE"):
            case.not_applicable = f"{key} state"
    args = case.args
    rest: list[str] = []
    i = 0
    while i < len(args):
        word = args[i]
        if word == "--test-repo":
            spec = args[i + 1]
            if spec.startswith("!"):
                case.not_applicable = "cache repository"
            tag, sep, name = spec.partition(":")
            case.repos.append((tag, name) if sep else (None, spec))
            i += 2
            continue
        if word == "--test-world":
            case.world.extend(args[i + 1].split())
            i += 2
            continue
        if word == "--test-instdb":
            case.not_applicable = "installed state"
        rest.append(word)
        i += 1
    case.args = rest
    if "-t" in rest and not any(c in rest[rest.index("-t") + 1] for c in "=<>~"):
        case.virtual_version_is_time = True
    if case.not_applicable is None:
        commands = [w for w in rest if not w.startswith("-")]
        if not commands or commands[0] != "add":
            case.not_applicable = f"command {commands[0] if commands else '(none)'}"
    return case


def expected_installs(case: Case) -> list[str] | None:
    """The ``name (version)`` install list, or None when apk-tools expects an error."""
    if any(line.startswith("ERROR") for line in case.expect):
        return None
    out = []
    for line in case.expect:
        if ") Installing " in line:
            out.append(line.split(") Installing ", 1)[1].strip())
    return out


def run_case(case: Case) -> list[str]:
    """Resolve the case; returns the install list or raises NanodistroError."""
    indexes: list[tuple[RepositoryRef, list[PackageInfo]]] = []
    for tag, name in case.repos:
        repo_path = case.path.parent / name
        packages = parse_apkindex_text(repo_path.read_text(), where=str(repo_path))
        indexes.append((RepositoryRef(name, tag), packages))
    add_index = case.args.index("add")
    options = case.args[:add_index] + [w for w in case.args[add_index + 1 :] if w.startswith("-")]
    atoms = [w for w in case.args[add_index + 1 :] if not w.startswith("-")]
    virtual: str | None = None
    if "-t" in case.args:
        virtual = case.args[case.args.index("-t") + 1]
        atoms.remove(virtual)
    world = list(case.world)
    if virtual is not None:
        # apk add -t NAME[=VERSION] ATOM...: a package NAME depending on the atoms.
        name, sep, version = virtual.partition("=")
        if any(c in name for c in "<>~@") or (sep and not is_valid(version)):
            raise VersionError(f"{virtual}: bad package specifier")
        for atom in atoms:
            if parse_dependency(atom).tag:
                raise VersionError(f"{atom!r} is not a valid package dependency")
        info = PackageInfo(name=name, version=version or "0", depends=atoms)
        indexes.append((RepositoryRef("(virtual)"), [info]))
        world.append(name)
    else:
        world.extend(atoms)
    universe = Universe.build(indexes, arch=ARCH)
    resolution = solve(
        universe, world, drop_broken_world=bool({"--force-broken-world", "--force"} & set(options))
    )
    return [f"{p.display_name} ({p.version})" for p in resolution.packages]


def _solver_dirs(third_party: Path) -> list[tuple[str, Path]]:
    return [
        ("apk-tools 3.0", third_party / "alpinelinux+apk-tools" / "test" / "solver"),
        ("apk-tools 2.14", third_party / "alpinelinux+apk-tools@v2.14.10" / "test"),
    ]


def evaluate(directory: Path) -> tuple[list[str], list[str], list[str]]:
    passed, failed, skipped = [], [], []
    for path in sorted(directory.glob("*.test")):
        case = parse_case(path)
        if case.not_applicable:
            skipped.append(f"{path.name}: {case.not_applicable}")
            continue
        want = expected_installs(case)
        if case.virtual_version_is_time and want is not None:
            skipped.append(f"{path.name}: the virtual package's version is the current time")
            continue
        try:
            got: list[str] | None = run_case(case)
            error = ""
        except NanodistroError as exc:
            got, error = None, str(exc)
        if got == want:
            passed.append(path.name)
        elif want is None:
            failed.append(f"{path.name}: apk refuses, we install {got}")
        elif got is None:
            failed.append(f"{path.name}: expected {want}, we refuse: {error}")
        else:
            failed.append(f"{path.name}: expected {want}, got {got}")
    return passed, failed, skipped


# Floors actually reached (see the report printed by the test); raise them when the solver
# learns more, never lower them silently.
FLOORS = {"apk-tools 3.0": 64, "apk-tools 2.14": 49}


@pytest.mark.parametrize("label", ["apk-tools 3.0", "apk-tools 2.14"])
def test_apk_tools_solver_cases(
    third_party: Path, label: str, scoreboard: Callable[[str], None]
) -> None:
    directory = dict(_solver_dirs(third_party))[label]
    passed, failed, skipped = evaluate(directory)
    total = len(passed) + len(failed)
    scoreboard(
        f"{label} solver cases (fresh install): {len(passed)}/{total} passed "
        f"({len(skipped)} need installed state: not applicable)"
    )
    for line in failed:
        print(f"  FAIL {line}")
    for line in skipped:
        print(f"  n/a  {line}")
    assert len(passed) >= FLOORS[label], failed


def test_error_is_resolve_error(third_party: Path) -> None:
    case = parse_case(third_party / "alpinelinux+apk-tools" / "test" / "solver" / "error4.test")
    with pytest.raises(ResolveError, match="nonexistant"):
        run_case(case)
