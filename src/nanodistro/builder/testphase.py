"""The ``test:`` phase of a build, and ``test_recipe`` (tests against given or published
packages): each test in a fresh closed-world sandbox holding the package under test, the test's
declared packages and their closure, from the repositories and the just-built packages only
(split out of builder/orchestrate.py, which drives it)."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from nanodistro.builder import environment as env_mod
from nanodistro.builder.config import BuildConfig, BuildResult, TestOutcome
from nanodistro.builder.package import BuiltPackage
from nanodistro.builder.recipeinfo import log_slug
from nanodistro.builder.runners.bubblewrap import BubblewrapRunner
from nanodistro.builder.sca import ScaResult
from nanodistro.builder.stages import finish_workspace, stage
from nanodistro.errors import BuildError, ResolveError
from nanodistro.formats.apk import read_apk
from nanodistro.formats.pkginfo import apk_filename
from nanodistro.util.progress import Progress

if TYPE_CHECKING:
    from nanodistro.builder.orchestrate import _Build

__all__ = ["run_tests", "test_recipe"]


def run_tests(build: _Build, base: Path, built: Sequence[BuiltPackage]) -> None:
    """Run each ``test:`` in a closed world: a root holding the package under test (the
    just-built bytes, pinned by version and checksum), the test's declared packages and
    their closure, from the repositories and the just-built packages only. The host
    toolchain is mounted only when the test declares names it stands in for."""
    by_name = {b.info.name: b for b in built}
    for index, test in enumerate(build.compiled.tests):
        package = by_name.get(test.package)
        if package is None:
            build.say(f"test [{test.package}] skipped: not among the packages under test")
            continue
        info = package.info
        testing = (
            f"testing {info.name}-{info.version} "
            f"(sha256:{hashlib.sha256(package.data).hexdigest()[:12]})"
        )
        declared = {env_mod.split_atom(n) for n in test.environment_packages}
        # a name the repositories have comes from them even where the toolchain could stand
        # in for it (busybox): the test sees the distribution, not the build host
        toolchain_names = frozenset(
            n
            for n in declared
            if n in build.config.toolchain.provides
            and n not in by_name
            and n not in build._repository_names()
        )
        test_base = base / f"test-{index}-{log_slug(test.package)}"
        home, logs = build._new_home(test_base)
        host = f" with the host toolchain for {', '.join(sorted(toolchain_names))}"
        build.say(
            f"test [{test.package}] {testing} in a fresh sandbox" + host * bool(toolchain_names)
        )

        def failed(message: str, steps: int = 0, name: str = test.package) -> BuildError:
            build.result.tests.append(TestOutcome(name, False, steps))
            return BuildError(f"test failed: {message}", where=str(build.path))

        try:
            with stage(
                build.say,
                build.result.steps,
                f"environment [{test.package}] install the test environment",
                kind="test-environment",
                package=test.package,
                step="environment",
            ):
                root, installed = build._sandbox_root(
                    test_base,
                    [f"{info.name}={info.version}", *test.environment_packages],
                    built,
                    toolchain_names,
                )
        except ResolveError as error:
            (logs / "test.log").write_text(f"nanodistro: {testing}\n{error.message}\n")
            raise failed(f"{testing}: cannot install it: {error.message}") from None
        (logs / "test.log").write_text(
            f"nanodistro: {testing}\n" + "".join(f"installed {n}\n" for n in installed)
        )
        if not toolchain_names and not os.path.lexists(root / "bin/sh"):
            raise failed(
                f"{testing}: the test root has no /bin/sh to run the steps with; declare a "
                f"shell package (e.g. busybox) in {test.package}'s "
                "test.environment.contents.packages"
            )
        runner = BubblewrapRunner(
            root,
            home,
            # closed world: nothing of the host unless the test declared toolchain names
            toolchain=(
                build.config.toolchain
                if toolchain_names
                else dataclasses.replace(build.config.toolchain, paths=())
            ),
            env={**test.env, "SOURCE_DATE_EPOCH": str(build.result.source_date_epoch)},
            policy=build.config.sandbox,
        )
        # xtrace: a failing `test -e ...` prints nothing; the trace shows which line failed
        steps = [
            dataclasses.replace(s, script=f"set -x\n{s.script}") if s.kind == "runs" else s
            for s in test.steps
        ]
        counter = [0]
        try:
            build._run_steps(runner, steps, home, logs, counter, "test", header=testing)
        except BuildError as error:
            raise failed(f"{testing}: {error.message}", len(test.steps)) from None
        build.result.tests.append(TestOutcome(test.package, True, len(test.steps)))


def test_recipe(
    path: Path,
    config: BuildConfig,
    *,
    packages: Sequence[Path] = (),
    progress: Progress | None = None,
    on_log_line: Callable[[str, str], None] | None = None,
) -> BuildResult:
    """Run a recipe's ``test:`` pipelines against ``packages`` (.apk files) or, if none are given,
    against its packages in ``config.repo``."""
    from nanodistro.builder.orchestrate import _Build

    build = _Build(Path(path), config, progress, on_log_line)
    built: list[BuiltPackage] = []
    files = list(packages)
    if not files and config.repo:
        for compiled in build.compiled.packages:
            file = (
                config.repo
                / config.arch
                / apk_filename(compiled.name, build.recipe.package.full_version)
            )
            if file.is_file():
                files.append(file)
    for file in files:
        data = file.read_bytes()
        info = read_apk(data, where=str(file)).info
        built.append(BuiltPackage(info=info, data=data, sca=ScaResult(), filename=file.name))
    if not built:
        raise BuildError("no packages to test: build first or pass --package", where=str(path))
    if config.workspace_dir:
        config.workspace_dir.mkdir(parents=True, exist_ok=True)
    base = Path(tempfile.mkdtemp(prefix="nanodistro-test-", dir=config.workspace_dir))
    build.result.workspace = base
    build.result.packages = built
    ok = False
    try:
        run_tests(build, base, built)
        ok = True
    finally:
        if finish_workspace(base, config, success=ok, say=build.say):
            build.result.workspace = None
        build.result.seconds = time.monotonic() - build.started
    return build.result
