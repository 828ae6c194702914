"""Bisect: name the one package change between two images that breaks a command.

The changes between a good and a bad image are their package differences (``image diff``: added,
removed, upgraded, downgraded, by name). Applying a subset of them to the good image's package set
gives an intermediate set; the image config is rebuilt with every package of that set pinned
``name=version``, so the image holds exactly the chosen versions, and the command runs in it in a
real container runtime (``factory.smoke``). Exit status 0 passes, anything else fails.

Not every subset can be installed: ``b-2`` may depend on ``a>=2``. Each change's *needs* are the
other changes without which the packages' dependencies break (found from the index records,
repeated until nothing is missing); the changes are ordered so that every change comes after what
it needs (changes needing each other form one unit), so every prefix of the order is installable.
Each prefix is also checked with the resolver before anything is built; a prefix that does not
resolve to exactly its set is merged with the next unit, and the result says so. Binary search over
the prefixes then finds the first unit whose prefix fails in ``ceil(log2(units))`` image builds.
"""

from __future__ import annotations

import contextlib
import dataclasses
import tempfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nanodistro.errors import ConfigError, ImageError, ResolveError
from nanodistro.formats.version import Dependency, compare
from nanodistro.graph.graph import strongly_connected
from nanodistro.image.build import (
    BuildRequest,
    build_image,
    build_repository_entries,
    load_config_keyring,
    write_result,
)
from nanodistro.image.diff import (
    ArchPackages,
    ImagePackages,
    load_image_packages,
    split_layout_tag,
)
from nanodistro.image.oci_layout import Layout, write_layout_dir
from nanodistro.imageconfig.load import LoadedConfig
from nanodistro.resolve import RepositoryClient, parse_repository, solve
from nanodistro.resolve.universe import Candidate, Universe
from nanodistro.util.host import host_arch

__all__ = [
    "BisectRequest",
    "BisectResult",
    "Change",
    "Step",
    "Unit",
    "bisect",
    "order_changes",
]

RUN_REF = "bisect"  # the tag of every layout the command runs in


@dataclass(frozen=True, order=True)
class Change:
    """One package's change from the good to the bad image (``old``/``new`` None: absent)."""

    name: str
    old: str | None
    new: str | None

    @property
    def kind(self) -> str:
        if self.old is None:
            return "added"
        if self.new is None:
            return "removed"
        return "downgraded" if compare(self.old, self.new) > 0 else "upgraded"

    def __str__(self) -> str:
        if self.old is None:
            return f"+{self.name} {self.new}"
        if self.new is None:
            return f"-{self.name} {self.old}"
        return f"{self.name} {self.old} -> {self.new}"

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "old": self.old, "new": self.new, "kind": self.kind}


@dataclass
class Unit:
    """Changes applied together (one, unless they need each other or the resolver said so)."""

    changes: list[Change]
    #: Why this unit comes where it does: "b 1 -> 2 needs a 1 -> 2 (b-2 depends on a>=2)".
    reasons: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        return ", ".join(str(c) for c in self.changes)


@dataclass
class Step:
    label: str  # "good", "bad", or "k/n" (the first k of n units applied)
    applied: list[Change]
    digest: str  # the platform image's manifest digest
    exit_code: int
    built: bool  # False: the given image itself was run
    output: str = ""
    detail: str = ""

    @property
    def passed(self) -> bool:
        return self.exit_code == 0

    def to_json(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "applied": [str(c) for c in self.applied],
            "digest": self.digest,
            "exit": self.exit_code,
            "passed": self.passed,
            "built": self.built,
            "output": self.output,
            "detail": self.detail,
        }


@dataclass
class BisectResult:
    arch: str
    good: str
    bad: str
    command: list[str]
    units: list[Unit]
    notes: list[str]
    steps: list[Step]
    culprit: Unit
    builds: int

    def to_json(self) -> dict[str, Any]:
        return {
            "arch": self.arch,
            "good": self.good,
            "bad": self.bad,
            "command": self.command,
            "changes": sum(len(u.changes) for u in self.units),
            "order": [
                {"changes": [c.to_json() for c in u.changes], "reasons": u.reasons}
                for u in self.units
            ],
            "notes": self.notes,
            "steps": [s.to_json() for s in self.steps],
            "culprit": [c.to_json() for c in self.culprit.changes],
            "culprit_reasons": self.culprit.reasons,
            "builds": self.builds,
        }


@dataclass
class BisectRequest:
    loaded: LoadedConfig  # the image config the intermediate images are built from
    good: str
    bad: str
    command: list[str]
    runtime: str | None = None  # "runc" | "bubblewrap"; default: runc when installed
    arch: str | None = None  # default: the host's
    repositories: list[str] = field(default_factory=list)
    keyring_paths: list[Path] = field(default_factory=list)
    #: A host binary bind-mounted read-only at /.smoke/busybox (images without programs).
    binary: Path | None = None
    source_date_epoch: int | None = None
    allow_downgrade: bool = False


# ---- the changes and their order ------------------------------------------------------------


def changes_between(good: Mapping[str, str], bad: Mapping[str, str]) -> list[Change]:
    return [
        Change(name, good.get(name), bad.get(name))
        for name in sorted(set(good) | set(bad))
        if good.get(name) != bad.get(name)
    ]


def apply_changes(base: Mapping[str, str], changes: list[Change]) -> dict[str, str]:
    result = dict(base)
    for change in changes:
        if change.new is None:
            result.pop(change.name, None)
        else:
            result[change.name] = change.new
    return result


def find_candidate(universe: Universe, name: str, version: str) -> Candidate | None:
    for cand, _ in universe.providers.get(name, []):
        if cand.name == name and cand.version == version and cand.broken is None:
            return cand
    return None


def _satisfied_by(dep: Dependency, cand: Candidate, version: str | None) -> bool:
    return dep.matches_version(version, cand.checksum) if version is not None else not dep.version


def _broken(packages: Mapping[str, Candidate]) -> list[tuple[Candidate, Dependency]]:
    """Dependencies of ``packages`` that the set itself does not meet (conflicts: that it hits)."""
    claims: dict[str, list[tuple[Candidate, str | None]]] = {}
    for cand in packages.values():
        for name, version in cand.claims():
            claims.setdefault(name, []).append((cand, version))
    broken = []
    for cand in packages.values():
        for dep in cand.depends:
            present = [
                c for c, v in claims.get(dep.name, []) if c is not cand and _satisfied_by(dep, c, v)
            ]
            if bool(present) == dep.conflict:
                broken.append((cand, dep))
    return broken


def _fixes(
    cand: Candidate,
    dep: Dependency,
    packages: Mapping[str, Candidate],
    pending: list[Change],
    new_candidates: Mapping[Change, Candidate | None],
) -> list[Change]:
    """The pending changes that may repair ``cand``'s broken ``dep``: changing ``cand`` itself,
    bringing in a provider (a plain dependency) or changing what it conflicts with."""
    fixes = []
    for change in pending:
        if change.name == cand.name:
            fixes.append(change)
        elif dep.conflict:
            held = packages.get(change.name)
            if held is not None and any(n == dep.name for n, _ in held.claims()):
                fixes.append(change)
        else:
            new = new_candidates[change]
            if new is not None and any(
                n == dep.name and _satisfied_by(dep, new, v) for n, v in new.claims()
            ):
                fixes.append(change)
    return fixes


def _closures(
    good: Mapping[str, Candidate],
    changes: list[Change],
    new_candidates: Mapping[Change, Candidate | None],
) -> dict[Change, dict[Change, str]]:
    """For every change, the other changes it needs (with why), repeated until its set is whole."""
    baseline = {(c.name, c.version, str(d)) for c, d in _broken(good)}  # not ours to repair
    needs: dict[Change, dict[Change, str]] = {}
    for change in changes:
        chosen = {change}
        why: dict[Change, str] = {}
        while True:
            packages = dict(good)
            for applied in chosen:
                packages.pop(applied.name, None)
                new = new_candidates[applied]
                if new is not None:
                    packages[applied.name] = new
            pending = [c for c in changes if c not in chosen]
            added = False
            for cand, dep in _broken(packages):
                if (cand.name, cand.version, str(dep)) in baseline:
                    continue
                for fix in _fixes(cand, dep, packages, pending, new_candidates):
                    if fix not in chosen:
                        chosen.add(fix)
                        why[fix] = f"{cand.name}-{cand.version} depends on {dep}"
                        added = True
            if not added:
                break
        needs[change] = why
    return needs


def order_changes(good: Mapping[str, str], changes: list[Change], universe: Universe) -> list[Unit]:
    """Changes in units, each unit after the units it needs: every prefix is dependency-closed."""
    good_candidates = {}
    for name, version in good.items():
        cand = find_candidate(universe, name, version)
        if cand is not None:  # missing ones were refused before (_check_available)
            good_candidates[name] = cand
    new_candidates = {
        c: (find_candidate(universe, c.name, c.new) if c.new is not None else None) for c in changes
    }
    needs = _closures(good_candidates, changes, new_candidates)
    edges = {c: set(needs[c]) for c in changes}
    units = []
    for component in strongly_connected(sorted(changes), edges):
        reasons = [
            f"{change} needs {needed} ({why})"
            for change in component
            for needed, why in sorted(needs[change].items())
        ]
        if len(component) > 1:
            reasons.insert(0, "these changes need each other: applied together")
        units.append(Unit(component, reasons))
    return units


def _pins(packages: Mapping[str, str]) -> list[str]:
    return [f"{name}={version}" for name, version in sorted(packages.items())]


def _resolves(universe: Universe, packages: Mapping[str, str]) -> str | None:
    """None when pinning every package resolves to exactly them; else why not."""
    try:
        resolution = solve(universe, _pins(packages))
    except ResolveError as error:
        return error.message
    got = {p.name: p.version for p in resolution.packages}
    if got == dict(packages):
        return None
    extra = sorted(f"{n}-{v}" for n, v in got.items() if packages.get(n) != v)
    return f"the resolver also installs {', '.join(extra)}"


def check_prefixes(
    good: Mapping[str, str], units: list[Unit], universe: Universe
) -> tuple[list[Unit], list[str]]:
    """Merge each unit whose prefix the resolver cannot install exactly into the next one."""
    merged: list[Unit] = []
    notes: list[str] = []
    carry: Unit | None = None
    applied: list[Change] = []
    for position, unit in enumerate(units):
        if carry is not None:
            unit = Unit(carry.changes + unit.changes, carry.reasons + unit.reasons)
            carry = None
        applied_here = applied + unit.changes
        last = position == len(units) - 1
        problem = None if last else _resolves(universe, apply_changes(good, applied_here))
        if problem is not None:
            notes.append(
                f"good + {len(applied_here)} changes does not resolve ({problem}): "
                f"{unit} applied together with the next change"
            )
            carry = Unit(unit.changes, [*unit.reasons, f"extended: {problem}"])
            continue
        merged.append(unit)
        applied = applied_here
    return merged, notes


# ---- images ---------------------------------------------------------------------------------


@dataclass
class _Ref:
    source: str
    packages: ImagePackages
    location: Path | None  # the layout or archive (None: a lock file)
    tag: str | None


def _load_ref(source: str) -> _Ref:
    path = Path(source)
    tagged = None if path.exists() else split_layout_tag(source)
    if not path.exists() and tagged is None:
        raise ConfigError(
            "expected an OCI layout (DIR or DIR:TAG), an oci-archive or a lock file",
            where=source,
        )
    packages = load_image_packages(source)
    if packages.kind == "lock":
        return _Ref(source, packages, None, None)
    location, tag = tagged if tagged is not None else (path, None)
    return _Ref(source, packages, location, tag)


def _choose_arch(good: _Ref, bad: _Ref, wanted: str | None) -> str:
    both = sorted(set(good.packages.archs) & set(bad.packages.archs))
    arch = wanted or host_arch()
    if arch not in both:
        have = ", ".join(both) or "none"
        raise ConfigError(
            f"both images need architecture {arch} (in both: {have}); choose one with --arch"
        )
    return arch


def _extract(ref: _Ref, arch: ArchPackages, target: Path) -> None:
    """The given image's platform manifest alone in a layout tagged RUN_REF (umoci reads it)."""
    assert ref.location is not None
    layout = Layout(ref.location)
    for image in layout.images(ref.tag):
        if image.descriptor.digest == arch.digest:
            blobs = {image.descriptor.digest: layout.blob(image.descriptor.digest)}
            blobs[image.manifest.config.digest] = layout.blob(image.manifest.config.digest)
            for layer in image.manifest.layers:
                blobs[layer.digest] = layout.blob(layer.digest)
            write_layout_dir(target, blobs, image.descriptor, RUN_REF)
            return
    raise ImageError(f"no image {arch.digest} in the layout", where=ref.source)


class _Session:
    """What one bisect run shares: the request, the universe, a work dir, the build count."""

    def __init__(self, request: BisectRequest, arch: str, work: Path) -> None:
        self.request = request
        self.arch = arch
        self.work = work
        self.builds = 0
        self.build_request = BuildRequest(
            loaded=request.loaded,
            archs=[arch],
            repositories=list(request.repositories),
            keyring_paths=list(request.keyring_paths),
            source_date_epoch=request.source_date_epoch,
            ref_name=RUN_REF,
            allow_downgrade=request.allow_downgrade,
        )

    def universe(self) -> Universe:
        entries = build_repository_entries(self.build_request)
        if not entries:
            raise ImageError(
                "no repositories configured (contents.repositories, --repo or a workspace)",
                where=str(self.request.loaded.path or ""),
            )
        with RepositoryClient({}, allow_downgrade=self.request.allow_downgrade) as client:
            client.keyring = load_config_keyring(self.build_request, client)
            repos = [parse_repository(e, where="contents.repositories") for e in entries]
            return client.load_universe(repos, self.arch)

    def build(self, packages: Mapping[str, str], name: str) -> tuple[Path, str]:
        """An image of the config holding exactly ``packages``; its layout and digest."""
        loaded = self.request.loaded
        contents = loaded.config.contents.model_copy(update={"packages": _pins(packages)})
        config = loaded.config.model_copy(update={"contents": contents})
        request = dataclasses.replace(
            self.build_request, loaded=dataclasses.replace(loaded, config=config)
        )
        result = build_image(request)
        self.builds += 1
        image = result.images[0]
        got = {p.apk.name: p.apk.version for p in image.root.packages}
        if got != dict(packages):
            differ = sorted(f"{n}-{v}" for n, v in set(got.items()) ^ set(packages.items()))
            raise ImageError(
                f"the image for step {name} holds other packages than asked ({', '.join(differ)})",
                where=str(loaded.path or ""),
            )
        layout = self.work / name
        write_result(result, layout)
        return layout, image.descriptor.digest

    def run(self, layout: Path) -> tuple[int, str, str]:
        from nanodistro.factory.smoke import SmokeTest, run_smoke_test

        test = SmokeTest(args=list(self.request.command), expect="", binary=self.request.binary)
        result = run_smoke_test(layout, RUN_REF, test, [], runtime=self.request.runtime)
        # the runner's detail is "exit N; stderr: ..."; the exit status is reported on its own
        stderr = result.detail.partition("stderr: ")[2].strip() if result.returncode else ""
        return result.returncode, result.output, stderr


def _check_available(universe: Universe, packages: Mapping[str, str], where: str) -> None:
    missing = [
        f"{n}-{v}" for n, v in sorted(packages.items()) if not find_candidate(universe, n, v)
    ]
    if missing:
        repos = ", ".join(str(r) for r in universe.repositories)
        raise ImageError(
            f"not in the repositories ({repos}): {', '.join(missing)}; bisect rebuilds images "
            "from the repository, which must keep every published version",
            where=where,
        )


@contextlib.contextmanager
def _work_dir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="nanodistro-bisect-") as tmp:
        yield Path(tmp)


def bisect(
    request: BisectRequest,
    *,
    on_plan: Callable[[list[Unit], list[str]], None] | None = None,
    on_step: Callable[[Step], None] | None = None,
) -> BisectResult:
    """Find the unit of package changes between ``good`` and ``bad`` that makes the command fail.

    ``on_plan`` sees the order of the changes (and the resolver's notes) before anything runs,
    ``on_step`` every step as it finishes (the CLI prints them)."""
    if not request.command:
        raise ConfigError("no command to run (give it after --)")
    good_ref, bad_ref = _load_ref(request.good), _load_ref(request.bad)
    arch = _choose_arch(good_ref, bad_ref, request.arch)
    good_arch, bad_arch = good_ref.packages.archs[arch], bad_ref.packages.archs[arch]
    good, bad = good_arch.packages, bad_arch.packages
    changes = changes_between(good, bad)
    if not changes:
        raise ConfigError(
            f"the good and bad images hold the same packages ({len(good)} on {arch}): "
            "nothing to bisect",
            where=f"{request.good} .. {request.bad}",
        )
    steps: list[Step] = []

    def record(step: Step) -> Step:
        steps.append(step)
        if on_step is not None:
            on_step(step)
        return step

    with _work_dir() as work:
        session = _Session(request, arch, work)
        universe = session.universe()
        _check_available(universe, good, request.good)
        _check_available(universe, bad, request.bad)
        units, notes = check_prefixes(good, order_changes(good, changes, universe), universe)
        if on_plan is not None:
            on_plan(units, notes)

        def run_given(ref: _Ref, arch_packages: ArchPackages, label: str) -> Step:
            applied = [] if label == "good" else [c for u in units for c in u.changes]
            if ref.location is None:  # a lock file: the image is built from its packages
                layout, digest = session.build(arch_packages.packages, label)
            else:
                layout, digest = work / label, arch_packages.digest or ""
                _extract(ref, arch_packages, layout)
            code, output, detail = session.run(layout)
            return record(Step(label, applied, digest, code, ref.location is None, output, detail))

        command = " ".join(request.command)
        first = run_given(good_ref, good_arch, "good")
        if not first.passed:
            said = first.detail or first.output
            raise ImageError(
                f"the good image already fails: {command!r} exited {first.exit_code}"
                f"{f' ({said})' if said else ''}; nothing to bisect",
                where=request.good,
            )
        last = run_given(bad_ref, bad_arch, "bad")
        if last.passed:
            raise ImageError(
                f"the bad image passes: {command!r} exited 0; nothing to bisect",
                where=request.bad,
            )
        low, high = 0, len(units)  # prefix `low` passes, prefix `high` fails
        while high - low > 1:
            middle = (low + high) // 2
            applied = [c for u in units[:middle] for c in u.changes]
            layout, digest = session.build(apply_changes(good, applied), f"step-{middle}")
            code, output, detail = session.run(layout)
            record(Step(f"{middle}/{len(units)}", applied, digest, code, True, output, detail))
            if code == 0:
                low = middle
            else:
                high = middle
    return BisectResult(
        arch=arch,
        good=request.good,
        bad=request.bad,
        command=list(request.command),
        units=units,
        notes=notes,
        steps=steps,
        culprit=units[high - 1],
        builds=session.builds,
    )
