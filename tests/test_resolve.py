"""The solver on small hand-written indexes and on Alpine 3.16's real index."""

from __future__ import annotations

from pathlib import Path

import pytest

from nanodistro.errors import ResolveError
from nanodistro.formats.apkindex import parse_apkindex_text, read_index
from nanodistro.resolve import RepositoryRef, Universe, solve
from nanodistro.trust.keys import load_keyring


def universe(*indexes: str, tags: tuple[str | None, ...] = ()) -> Universe:
    repos = []
    for i, text in enumerate(indexes):
        tag = tags[i] if i < len(tags) else None
        repos.append((RepositoryRef(f"repo{i}", tag), parse_apkindex_text(text, where=f"repo{i}")))
    return Universe.build(repos, arch="x86_64")


def names(resolution_universe: Universe, *world: str) -> list[str]:
    return [f"{p.name}-{p.version}" for p in solve(resolution_universe, world).packages]


BASE = """\
C:Q1musl0000000000000000000000000=
P:musl
V:1.2.4-r0
A:x86_64
p:so:libc.musl-x86_64.so.1=1

C:Q1busybox000000000000000000000000=
P:busybox
V:1.36.1-r0
D:so:libc.musl-x86_64.so.1
p:/bin/sh cmd:sh=1.36.1-r0

C:Q1bash000000000000000000000000000=
P:bash
V:5.2-r0
D:so:libc.musl-x86_64.so.1 so:libreadline.so.8
p:cmd:bash=5.2-r0

C:Q1readline00000000000000000000000=
P:readline
V:8.2-r0
D:so:libc.musl-x86_64.so.1
p:so:libreadline.so.8=8.2

C:Q1readline70000000000000000000000=
P:readline7
V:7.0-r0
p:so:libreadline.so.7=7.0

C:Q1python311000000000000000000000=
P:python3
V:3.11.6-r0
D:so:libc.musl-x86_64.so.1 /bin/sh

C:Q1python312000000000000000000000=
P:python3
V:3.12.1-r0
D:so:libc.musl-x86_64.so.1 /bin/sh

C:Q1dash0000000000000000000000000000=
P:dash-binsh
V:0.5.12-r0
p:/bin/sh
k:50

C:Q1bbbinsh0000000000000000000000000=
P:busybox-binsh
V:1.36.1-r0
D:busybox
p:/bin/sh
k:100

C:Q1bashdoc000000000000000000000000=
P:bash-doc
V:5.2-r0
i:docs bash=5.2-r0

C:Q1docs0000000000000000000000000000=
P:docs
V:1-r0

C:Q1old00000000000000000000000000000=
P:oldtool
V:1.0-r0
D:!busybox

"""


def test_transitive_closure_in_install_order() -> None:
    assert names(universe(BASE), "bash") == ["musl-1.2.4-r0", "readline-8.2-r0", "bash-5.2-r0"]


def test_newest_version_and_constraints() -> None:
    u = universe(BASE)
    assert "python3-3.12.1-r0" in names(u, "python3")
    assert "python3-3.11.6-r0" in names(u, "python3<3.12")
    assert "python3-3.11.6-r0" in names(u, "python3~3.11")
    assert "python3-3.12.1-r0" in names(u, "python3>=3.12")
    assert names(u, "python3=3.11.6-r0")[-1] == "python3-3.11.6-r0"


def test_virtual_provider_by_priority_and_existing_selection() -> None:
    u = universe(BASE)
    # /bin/sh: busybox-binsh (k:100) beats dash-binsh (k:50).
    assert names(u, "python3")[:4] == [
        "musl-1.2.4-r0",
        "busybox-1.36.1-r0",
        "busybox-binsh-1.36.1-r0",
        "python3-3.12.1-r0",
    ]
    # An explicitly selected provider satisfies the virtual name.
    assert names(u, "dash-binsh", "python3") == [
        "dash-binsh-0.5.12-r0",
        "musl-1.2.4-r0",
        "python3-3.12.1-r0",
    ]


def test_versioned_provides_are_auto_selected() -> None:
    assert names(universe(BASE), "cmd:bash")[-1] == "bash-5.2-r0"
    assert names(universe(BASE), "so:libreadline.so.7") == ["readline7-7.0-r0"]


def test_install_if_after_its_conditions() -> None:
    assert names(universe(BASE), "bash", "docs") == [
        "musl-1.2.4-r0",
        "readline-8.2-r0",
        "bash-5.2-r0",
        "docs-1-r0",
        "bash-doc-5.2-r0",
    ]


def test_conflict_is_explained() -> None:
    with pytest.raises(ResolveError) as info:
        solve(universe(BASE), ["oldtool", "busybox"])
    message = str(info.value)
    assert "oldtool" in message and "busybox" in message and "!busybox" in message


def test_missing_dependency_names_the_chain() -> None:
    text = BASE + "C:Q1app00000000000000000000000000000=\nP:app\nV:1-r0\nD:bash libmissing\n\n"
    with pytest.raises(ResolveError) as info:
        solve(universe(text), ["app"])
    message = str(info.value)
    assert "libmissing" in message
    assert message == (
        "unable to select packages: no candidate for app, required by world[app] "
        "(app-1-r0: needs libmissing, which nothing provides)"
    )


def test_unsatisfiable_version_lists_available_versions() -> None:
    with pytest.raises(ResolveError) as info:
        solve(universe(BASE), ["python3>=4"])
    message = str(info.value)
    assert "python3-3.12.1-r0" in message and "python3>=4" in message


def test_backtracks_to_an_older_version() -> None:
    text = """\
P:a
V:2
D:b d>1.5

P:a
V:1
D:b

P:b
V:1
D:d<2.0

P:d
V:1.5

P:d
V:2.0

"""
    assert names(universe(text), "a") == ["d-1.5", "b-1", "a-1"]


def test_tagged_repository_only_when_pinned() -> None:
    edge = "C:Q1edge0000000000000000000000000=\nP:bash\nV:5.3-r0\nD:so:libc.musl-x86_64.so.1\n\n"
    u = universe(BASE, edge, tags=(None, "edge"))
    assert names(u, "bash")[-1] == "bash-5.2-r0"
    resolution = solve(u, ["bash@edge"])
    last = resolution.packages[-1]
    assert (last.display_name, last.version, last.repository.url) == (
        "bash@edge",
        "5.3-r0",
        "repo1",
    )
    with pytest.raises(ResolveError, match="not pinned"):
        solve(u, ["bash>=5.3"])


def test_identity_constraint() -> None:
    u = universe(BASE)
    assert names(u, "python3><Q1python311000000000000000000000=")[-1] == "python3-3.11.6-r0"


def test_deterministic() -> None:
    u = universe(BASE)
    first = names(u, "python3", "bash", "docs")
    for _ in range(3):
        assert names(universe(BASE), "docs", "bash", "python3") == first


def test_invalid_world_atom() -> None:
    with pytest.raises(ResolveError, match="foo=bar"):
        solve(universe(BASE), ["foo=bar"])


# ------------------------------------------------------------------------------------------------
# Alpine 3.16: apk-tools resolves this world to 86 packages.

ALPINE_WORLD = [
    *("alpine-base", "python3", "gcc", "g++", "make", "cmake", "perl", "git"),
    *("openssh-client", "clang", "llvm", "postgresql", "nginx"),
]


def test_alpine_316_closure_matches_apk(third_party: Path) -> None:
    index_path = third_party / "chainguard-dev+apko/pkg/apk/apk/testdata/alpine-316/APKINDEX.tar.gz"
    keyring = load_keyring(third_party / "alpinelinux+alpine-chroot-install/alpine-keys")
    index = read_index(index_path.read_bytes(), where=str(index_path), keyring=keyring)
    u = Universe.build([(RepositoryRef("alpine-316"), index.packages)], arch="x86_64")
    resolution = solve(u, ALPINE_WORLD)
    got = [p.name for p in resolution.packages]
    assert len(got) == 86
    assert len(set(got)) == 86
    # Order: dependencies before dependents.
    position = {name: i for i, name in enumerate(got)}
    for p in resolution.packages:
        for dep in p.candidate.depends:
            if dep.conflict:
                continue
            owner = next(
                (
                    q.name
                    for q in resolution.packages
                    if q.name == dep.name or any(pr.name == dep.name for pr in q.candidate.provides)
                ),
                None,
            )
            assert owner is not None, f"{p.name} needs {dep}"
            if owner != p.name and position[owner] > position[p.name]:
                # Only a dependency cycle may put a dependency later.
                cyc = resolution.packages[position[owner]].candidate.depends
                assert any(d.name in (p.name, *[x.name for x in p.candidate.provides]) for d in cyc)
    # install_if: git + perl bring git-perl; openrc brings the -openrc subpackages.
    assert {"git-perl", "nginx-openrc", "postgresql14-openrc"} <= set(got)
    assert got[:2] == ["alpine-baselayout-data", "musl"]


def test_hole_deep_below_fails_without_search() -> None:
    """30 names x 20 versions above a missing dependency: pruned up front, not backtracked."""
    from nanodistro.formats.pkginfo import PackageInfo

    packages = []
    for i in range(30):
        for v in range(20):
            deps = [f"p{i + 1}"] if i < 29 else ["missing-thing"]
            info = PackageInfo(name=f"p{i}", version=f"{v}.0-r0", depends=deps)
            info.checksum = f"Q1p{i}v{v}"
            packages.append(info)
    u = Universe.build([(RepositoryRef("r"), packages)])
    with pytest.raises(ResolveError, match="nothing installable provides"):
        solve(u, ["p0"], budget=200)


# ------------------------------------------------------------------------------------------------
# Property: on small random repositories (plain names, versioned depends, conflicts) the solver
# finds a solution exactly when one exists, and what it returns is consistent.

import itertools  # noqa: E402

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from nanodistro.formats.pkginfo import PackageInfo  # noqa: E402
from nanodistro.formats.version import parse_dependency  # noqa: E402

_NAMES = ["a", "b", "c", "d", "e"]


@st.composite
def _repos(draw: st.DrawFn) -> tuple[list[PackageInfo], list[str]]:
    packages = []
    for name in _NAMES:
        for version in sorted(draw(st.sets(st.integers(1, 4), min_size=1, max_size=3))):
            deps = []
            for other in draw(st.lists(st.sampled_from(_NAMES), max_size=2, unique=True)):
                if other == name:
                    continue
                op = draw(st.sampled_from(["", ">=", "<", "=", "!"]))
                bound = draw(st.integers(1, 4))
                if op == "":
                    deps.append(other)
                elif op == "!":
                    deps.append(f"!{other}")
                else:
                    deps.append(f"{other}{op}{bound}")
            info = PackageInfo(name=name, version=str(version), depends=deps)
            info.checksum = f"Q1{name}{version}"
            packages.append(info)
    world = draw(st.lists(st.sampled_from(_NAMES), min_size=1, max_size=2, unique=True))
    return packages, world


def _consistent(chosen: dict[str, PackageInfo], world: list[str]) -> bool:
    def ok(atom: str) -> bool:
        dep = parse_dependency(atom)
        present = chosen.get(dep.name)
        if dep.conflict:
            return present is None or not dep.matches_version(present.version)
        return present is not None and dep.matches_version(present.version)

    return all(ok(a) for a in world) and all(
        ok(d) or (d.startswith("!") and d[1:] == p.name) for p in chosen.values() for d in p.depends
    )


def _brute_force(packages: list[PackageInfo], world: list[str]) -> bool:
    by_name: dict[str, list[PackageInfo | None]] = {n: [None] for n in _NAMES}
    for p in packages:
        by_name[p.name].append(p)
    for combo in itertools.product(*by_name.values()):
        chosen = {p.name: p for p in combo if p is not None}
        if _consistent(chosen, world):
            return True
    return False


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(_repos())
def test_solver_is_sound_and_complete_on_small_repos(
    case: tuple[list[PackageInfo], list[str]],
) -> None:
    packages, world = case
    u = Universe.build([(RepositoryRef("r"), packages)])
    try:
        resolution = solve(u, world)
    except ResolveError:
        assert not _brute_force(packages, world), "solver missed a solution"
        return
    chosen = {p.name: p.candidate.info for p in resolution.packages}
    assert len(chosen) == len(resolution.packages)
    assert _consistent(chosen, world)
    position = {p.name: i for i, p in enumerate(resolution.packages)}
    edges = {
        p.name: {d.name for d in p.candidate.depends if not d.conflict} for p in resolution.packages
    }

    def reaches(start: str, goal: str) -> bool:
        seen, stack = set(), [start]
        while stack:
            node = stack.pop()
            if node == goal:
                return True
            if node not in seen:
                seen.add(node)
                stack.extend(edges.get(node, ()))
        return False

    for p in resolution.packages:
        for dep_name in edges[p.name]:
            if position[dep_name] > position[p.name]:
                assert reaches(dep_name, p.name), "dependency after dependent outside a cycle"


def test_alpine_316_legacy_versions_resolve(third_party: Path) -> None:
    """opensmtpd-6.8.0p2-r4 has a version only apk-tools 2.x accepts; Alpine installs it."""
    index_path = third_party / "chainguard-dev+apko/pkg/apk/apk/testdata/alpine-316/APKINDEX.tar.gz"
    index = read_index(index_path.read_bytes(), where=str(index_path))
    u = Universe.build([(RepositoryRef("alpine-316"), index.packages)], arch="x86_64")
    # Like apk, /bin/sh (provided by busybox without provider_priority) is not auto-selected.
    with pytest.raises(ResolveError, match=r"/bin/sh \(virtual\).*busybox"):
        solve(u, ["opensmtpd-pam"])
    resolution = solve(u, ["busybox", "opensmtpd-pam"])
    got = {p.name: p.version for p in resolution.packages}
    assert got["opensmtpd"] == got["opensmtpd-pam"] == "6.8.0p2-r4"


def test_same_identity_is_one_package() -> None:
    """``...ysE=`` and ``...ysF=`` differ only in base64 padding bits: one SHA-1, one package
    (apk-tools keys packages by identity; apk's own installif1 case depends on it)."""
    text = (
        "C:Q1hdUpqRv5mYgJEqW52UmVsvmyysF=\nP:bar\nV:1\n\n"
        "C:Q1hdUpqRv5mYgJEqW52UmVsvmyysE=\nP:libiif\nV:1\ni:bar\n\n"
    )
    u = universe(text)
    assert [c.name for c in u.candidates] == ["bar"]
    assert names(u, "bar") == ["bar-1"]
