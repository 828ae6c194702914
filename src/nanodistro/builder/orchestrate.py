"""Build recipes into packages: the sequence of melange ``BuildPackage`` (reference §7.1).

For one recipe and architecture: compile (build/compile.py) -> skip if the repository already
holds this exact build -> fetch sources outside the sandbox (build/sources.py) -> assemble the
sandbox root (build/environment.py) -> run every step of the main package and then of each
subpackage in a bubblewrap sandbox (build/runners/) -> SBOM + SCA + ``.apk``
(build/package.py) -> run the ``test:`` pipelines in fresh sandboxes -> publish. Nothing is
published unless every package of every given recipe built and passed its tests.

SOURCE_DATE_EPOCH (every mtime, ``builddate``, SBOM ``created``) is, in order of preference:
the explicit value (``BuildConfig.source_date_epoch`` or the ``SOURCE_DATE_EPOCH`` environment
variable, read by the CLI), the time of the last git commit that touched the recipe file, the
newest file time inside the fetched sources (or the checked-out commit time), else 0.
"""

from __future__ import annotations

import dataclasses
import functools
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import yaml

from nanodistro.builder import environment as env_mod
from nanodistro.builder import sources as src_mod
from nanodistro.builder.cache import SourceCache
from nanodistro.builder.compile import CompiledBuild, CompiledStep, compile_recipe

# re-exported: the builder's public API stays importable from here
from nanodistro.builder.config import BuildConfig, BuildResult, FailedStep, TestOutcome
from nanodistro.builder.order import build_order
from nanodistro.builder.package import (
    BuiltPackage,
    PackageSpec,
    emit_package,
    read_output,
)
from nanodistro.builder.publishing import (
    build_recipes,
    sca_origins,
    upstream_of,
    write_packages,
)
from nanodistro.builder.recipeinfo import (
    existing_build,
    git_commit_id,
    git_commit_time,
    log_slug,
    log_tail,
    recipe_hash,
)
from nanodistro.builder.runners import StepRun
from nanodistro.builder.runners.bubblewrap import BubblewrapRunner
from nanodistro.builder.stages import finish_workspace, stage
from nanodistro.builder.testphase import run_tests, test_recipe
from nanodistro.errors import (
    BuildError,
    RepositoryError,
)
from nanodistro.formats.pkginfo import apk_filename
from nanodistro.formats.tarball import TarEntry
from nanodistro.recipe.model import Recipe, load_recipe
from nanodistro.recipe.substitute import substitute
from nanodistro.repo.consistency import check_packages
from nanodistro.resolve import parse_repository
from nanodistro.util.host import host_arch
from nanodistro.util.progress import Progress

__all__ = [
    "BuildConfig",
    "BuildResult",
    "TestOutcome",
    "build_order",
    "build_recipe",
    "build_recipes",
    "existing_build",
    "git_commit_id",
    "git_commit_time",
    "recipe_hash",
    "test_recipe",
    "write_packages",
]


# -------------------------------------------------------------------------------- builder


class _Build:
    def __init__(
        self,
        path: Path,
        config: BuildConfig,
        progress: Progress | None,
        on_log_line: Callable[[str, str], None] | None,
    ) -> None:
        self.path = path
        self.config = config
        self.say = progress or (lambda _m: None)
        self.on_log_line = on_log_line
        host = host_arch()
        if config.arch != host:
            raise BuildError(
                f"cannot build for {config.arch} on this {host} machine: the sandbox runs the "
                f"host toolchain natively (no emulation); build on a {config.arch} worker",
                where=str(path),
            )
        self.recipe = load_recipe(path)
        self.compiled: CompiledBuild = compile_recipe(
            self.recipe,
            config.arch,
            pipeline_dirs=config.pipeline_dirs,
            build_options=config.build_options,
        )
        self.hash = recipe_hash(path, self.recipe)
        self.default_commit = git_commit_id(path)
        self.started = time.monotonic()
        self._offered: frozenset[str] | None = None
        # name=version atoms added to the build root's world (a rebuild of a published package
        # installs exactly the environment it recorded, not what the repository offers now)
        self.environment_pins: list[str] = []
        self.result = BuildResult(
            recipe_path=path,
            name=self.recipe.package.name,
            version=self.recipe.package.full_version,
            arch=config.arch,
            warnings=list(self.compiled.warnings),
        )

    # -- timeouts
    def _step_timeout(self) -> float | None:
        limits = [t for t in (self.config.step_timeout,) if t]
        if self.config.build_timeout:
            remaining = self.config.build_timeout - (time.monotonic() - self.started)
            if remaining <= 0:
                raise BuildError(
                    f"build timed out after {self.config.build_timeout:g}s", where=str(self.path)
                )
            limits.append(remaining)
        return min(limits) if limits else None

    def _run_steps(
        self,
        runner: BubblewrapRunner,
        steps: Sequence[CompiledStep],
        home: Path,
        logs: Path,
        counter: list[int],
        what: str,
        header: str = "",
    ) -> None:
        for step in steps:
            counter[0] += 1
            label = f"[{step.package}] {step.name}"
            if step.kind != "runs":
                self._source_step(step, home, label)
                continue
            log = logs / f"{counter[0]:03d}-{log_slug(step.package)}-{log_slug(step.name)}.log"
            timeout = self._step_timeout()

            def line_cb(line: str, label: str = label) -> None:
                if self.on_log_line:
                    self.on_log_line(label, line)

            run = StepRun(step.name, step.script, step.workdir, step.env, timeout)
            status = 0
            try:
                with stage(
                    self.say,
                    self.result.steps,
                    f"{what} {label}",
                    kind=what,
                    package=step.package,
                    step=step.name,
                ):
                    status = runner.run(run, log_path=log, on_line=line_cb)
                    if header:  # the step is over: nothing writes the log any more
                        log.write_text(f"nanodistro: {header}\n{log.read_text(errors='replace')}")
                    if status != 0:
                        raise self._step_failed(step, what, status, timeout, log)
            except BuildError:
                hook = self.config.on_step_failure
                if status != 0 and hook is not None:
                    hook(FailedStep(label, step.workdir, log, functools.partial(runner.shell, run)))
                raise

    def _step_failed(
        self, step: CompiledStep, what: str, status: int, timeout: float | None, log: Path
    ) -> BuildError:
        reason = "timed out" if status == 124 and timeout else f"exited with status {status}"
        # the log is named only where it will still be when the message is read
        kept = self.config.keep_workspace or self.config.keep_failed_logs
        where = f"last lines of {log}" if kept else "its last lines"
        return BuildError(
            f"{what} step {step.name!r} ({step.origin}) of {step.package} {reason}; "
            f"{where}:\n{log_tail(log) or '(the step printed nothing)'}",
            where=str(self.path),
        )

    def _source_step(self, step: CompiledStep, home: Path, label: str) -> None:
        with stage(
            self.say,
            self.result.steps,
            f"source {label}",
            kind="source",
            package=step.package,
            step=step.name,
        ):
            self._fetch_source(step, home)

    def _fetch_source(self, step: CompiledStep, home: Path) -> None:
        cache = SourceCache(self.config.source_cache)
        if step.kind == "fetch":
            self.result.sources.append(
                src_mod.fetch(
                    step.inputs,
                    workspace=home,
                    workdir=step.workdir,
                    cache=cache,
                    step=step.origin,
                    progress=self.say,
                    mirrors=self.config.mirrors,
                )
            )
        elif step.kind == "git-checkout":
            self.result.sources.append(
                src_mod.git_checkout(
                    step.inputs,
                    workspace=home,
                    workdir=step.workdir,
                    cache=cache,
                    step=step.origin,
                    source_date_epoch=self._sde_for_git(),
                    progress=self.say,
                )
            )
        elif step.kind == "patch":
            src_mod.apply_patches(
                step.inputs,
                workspace=home,
                workdir=step.workdir,
                patch_dirs=[self.path.parent / self.recipe.package.name, self.path.parent],
                step=step.origin,
                progress=self.say,
            )

    def _sde_for_git(self) -> int:
        explicit = self.config.source_date_epoch
        if explicit is not None:
            return explicit
        return git_commit_time(self.path) or 0

    def _source_date_epoch(self) -> int:
        if self.config.source_date_epoch is not None:
            return self.config.source_date_epoch
        committed = git_commit_time(self.path)
        if committed:
            return committed
        return max((s.newest_mtime for s in self.result.sources), default=0)

    def _new_home(self, base: Path) -> tuple[Path, Path]:
        """Create ``base/home`` (populated with the recipe's files) and ``base/logs``: the
        layout both the build and each test sandbox start from."""
        home, logs = base / "home", base / "logs"
        home.mkdir(parents=True)
        logs.mkdir()
        self._populate(home)
        return home, logs

    def _populate(self, home: Path) -> None:
        """Copy the recipe's source directory into the workspace (melange populateWorkspace)."""
        source_dir = self.path.parent / self.recipe.package.name
        if source_dir.is_dir():
            for file in sorted(source_dir.rglob("*")):
                if file.is_file() and not file.is_symlink():
                    target = home / file.relative_to(source_dir)
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(file, target)

    def _sources(
        self, built: Sequence[BuiltPackage] = (), toolchain_only: frozenset[str] | None = None
    ) -> env_mod.PackageSources:
        config = self.config
        repos = [*config.extra_repos, *([str(config.repo)] if config.repo else [])]
        refs = [parse_repository(str(r)) for r in repos]
        refs += [
            parse_repository(r, where=f"{self.path}: environment.contents.repositories")
            for r in self.recipe.environment.contents.repositories
        ]
        keyring = dict(config.keyring or {})
        if config.key is not None:
            keyring.setdefault(config.key.keyname, config.key.public_pem())
        toolchain = config.toolchain
        if built:
            # The packages under test are installed even where the toolchain stands in for their
            # names (busybox, ca-certificates-bundle): otherwise the test checks the host's.
            own = {b.info.name for b in built}
            toolchain = dataclasses.replace(toolchain, provides=toolchain.provides - own)
        return env_mod.PackageSources(
            arch=config.arch,
            repositories=refs,
            keyring=keyring,
            built=[b.data for b in built],
            toolchain=toolchain,
            toolchain_only=toolchain_only,
            allow_downgrade=config.allow_downgrade,
        )

    def _repository_names(self) -> frozenset[str]:
        """Every name (package or provide) the configured repositories offer (cached)."""
        if self._offered is None:
            env = env_mod.load_environment(self._sources())
            try:
                self._offered = frozenset(env.universe.providers)
            finally:
                env.close()
        return self._offered

    def _sandbox_root(
        self,
        base: Path,
        names: Sequence[str],
        built: Sequence[BuiltPackage] = (),
        toolchain_only: frozenset[str] | None = None,
        record: list[env_mod.InstalledPackage] | None = None,
    ) -> tuple[Path, list[str]]:
        root = base / "root"
        root.mkdir(parents=True)
        installed = env_mod.assemble_root(names, root, self._sources(built, toolchain_only), record)
        return root, installed

    def _spec(self, compiled_index: int) -> PackageSpec:
        return package_spec(
            self.recipe,
            self.compiled,
            compiled_index,
            arch=self.config.arch,
            default_commit=self.default_commit,
        )

    # -- the phases
    def run(self, *, skip_check: bool = True) -> BuildResult:
        main = self.recipe.package
        # the recipe as a whole is a stage too (the CLI heads its steps with it); its time is
        # BuildResult.seconds, not one of the steps
        with stage(
            self.say,
            [],
            f"{main.name}-{main.full_version} ({self.path})",
            kind="recipe",
            package=main.name,
            step="recipe",
        ):
            return self._run(skip_check)

    def _run(self, skip_check: bool) -> BuildResult:
        config = self.config
        main = self.recipe.package
        filename = apk_filename(main.name, main.full_version)
        if skip_check and config.repo and not config.rebuild:
            recorded = existing_build(config.repo, config.arch, filename)
            if recorded == self.hash:
                self.result.skipped = True
                self.result.skip_reason = f"{filename} with this recipe is already published"
                self.say(f"skip {main.name}: {self.result.skip_reason}")
                return self.result
            if recorded is not None:
                from nanodistro.builder.recipediff import describe_recipe_change

                published = config.repo / config.arch / filename
                changed = describe_recipe_change(self.recipe, self.path, published)
                raise RepositoryError(
                    f"{filename} is already published from a different recipe"
                    f"{f' ({changed})' if changed else ''}; bump package.epoch to publish "
                    "the change ('nanodistro bump --epoch RECIPE'; published packages never "
                    "change)",
                    where=str(published),
                )
        if config.workspace_dir:
            config.workspace_dir.mkdir(parents=True, exist_ok=True)
        base = Path(tempfile.mkdtemp(prefix=f"nanodistro-{main.name}-", dir=config.workspace_dir))
        self.result.workspace = base
        success = False
        try:
            self._build(base)
            success = True
            return self.result
        finally:
            if finish_workspace(base, config, success=success, say=self.say):
                self.result.workspace = None
                self.result.log_dir = None
            self.result.seconds = time.monotonic() - self.started

    def _build(self, base: Path) -> None:
        config = self.config
        home, logs = self._new_home(base)
        self.result.log_dir = logs
        for package in self.compiled.packages:
            (home / "melange-out" / package.name).mkdir(parents=True, exist_ok=True)
        # Sources first, outside the sandbox, in recipe order (hermetic build).
        for package in self.compiled.packages:
            for step in package.steps:
                if step.kind != "runs":
                    self._source_step(step, home, f"[{step.package}] {step.name}")
        sde = self._source_date_epoch()
        self.result.source_date_epoch = sde
        self.result.toolchain = config.toolchain.identity()
        main = self.recipe.package.name
        with stage(
            self.say,
            self.result.steps,
            f"environment [{main}] install the build environment",
            kind="environment",
            package=main,
            step="environment",
        ):
            root, installed = self._sandbox_root(
                base,
                [*self.compiled.environment_packages, *self.environment_pins],
                record=self.result.environment_packages,
            )
        self.result.environment = installed
        runner = BubblewrapRunner(
            root,
            home,
            toolchain=config.toolchain,
            env={**self.compiled.env, "SOURCE_DATE_EPOCH": str(sde)},
            cap_add=self.recipe.capabilities.add if self.recipe.capabilities else None,
            cap_drop=self.recipe.capabilities.drop if self.recipe.capabilities else None,
            cache_dir=base / "cache",
            policy=config.sandbox,
        )
        self.result.sandbox = runner.describe()
        counter = [0]
        for package in self.compiled.packages:
            steps = [s for s in package.steps if s.kind == "runs"]
            self._run_steps(runner, steps, home, logs, counter, "build")
        config_yaml = self._locked_config()
        # Every output tree is read (without following links: the steps were untrusted) before
        # any package is emitted, so SCA can resolve a -dev link into its sibling's files.
        outputs = {
            package.name: read_output(
                home / "melange-out" / package.name, workspace=base, source_date_epoch=sde
            )
            for package in self.compiled.packages
        }
        for index, package in enumerate(self.compiled.packages):
            spec = self._spec(index)
            with stage(
                self.say,
                self.result.steps,
                f"package {spec.filename}",
                kind="package",
                package=spec.name,
                step="package",
            ):
                built = self._emit(spec, package.name, outputs, home, sde, config_yaml)
            self.result.packages.append(built)
            self.result.warnings += [f"{spec.name}: {w}" for w in built.sca.warnings]
        self._consistency_warnings()
        if config.run_tests:
            run_tests(self, base, self.result.packages)

    def _emit(
        self,
        spec: PackageSpec,
        name: str,
        outputs: dict[str, list[TarEntry]],
        home: Path,
        sde: int,
        config_yaml: bytes,
    ) -> BuiltPackage:
        config = self.config
        return emit_package(
            spec,
            outputs[name],
            siblings={n: e for n, e in outputs.items() if n != name},
            where=str(home / "melange-out" / name),
            source_date_epoch=sde,
            sources=self.result.sources,
            recipe_path=self.path.name,
            recipe_hash=self.hash,
            config_yaml=config_yaml,
            key=config.key,
            provenance={"toolchain": self.result.toolchain},
            namespace=config.namespace,
        )

    def _locked_config(self) -> bytes:
        """The recipe with its environment pinned to what was installed (``name=version``),
        for the ``.melange.yaml`` control file (melange: the locked configuration)."""
        data = self.recipe.model_dump(mode="json", by_alias=True, exclude_defaults=True)
        locked = []
        for item in self.result.environment:
            name, version, release = item.rsplit("-", 2)
            locked.append(f"{name}={version}-{release}")
        toolchain = [
            n
            for n in self.compiled.environment_packages
            if self.config.toolchain.provides
            and env_mod.split_atom(n) in self.config.toolchain.provides
        ]
        contents = data.setdefault("environment", {}).setdefault("contents", {})
        contents["packages"] = [*toolchain, *locked]
        return yaml.safe_dump(data, sort_keys=False, allow_unicode=True).encode()

    def _consistency_warnings(self) -> None:
        """What the publish gate (``repo/consistency.py``, run by ``build_recipes``) would
        refuse, as warnings for a build that is not published: dependencies that neither the
        built packages nor ``config.repo`` and ``config.extra_repos`` provide."""
        report = check_packages(
            [b.info for b in self.result.packages],
            arch=self.config.arch,
            upstream=upstream_of(self.config)(self.config.arch),
            origins=sca_origins(self.result.packages),
            host_provides=env_mod.ToolchainIndex(self.config.toolchain).satisfies,
        )
        self.result.warnings.extend(str(m) for m in report.missing)


# ------------------------------------------------------------------------------ public API


def build_recipe(
    path: Path,
    config: BuildConfig,
    *,
    progress: Progress | None = None,
    on_log_line: Callable[[str, str], None] | None = None,
    environment_pins: Sequence[str] = (),
    commit: str | None = None,
) -> BuildResult:
    """Build one recipe (and run its tests unless ``config.run_tests`` is false); no publish.
    A rebuild of a published package passes what that package recorded: ``environment_pins``
    (``name=version``) fix the build environment, ``commit`` the default ``package.commit``."""
    build = _Build(Path(path), config, progress, on_log_line)
    build.environment_pins = list(environment_pins)
    if commit is not None:
        build.default_commit = commit
    return build.run()


def package_spec(
    recipe: Recipe, build: CompiledBuild, compiled_index: int, *, arch: str, default_commit: str
) -> PackageSpec:
    """What a build writes into package ``compiled_index``'s metadata besides its files (also
    what the control plane checks a worker's package against: factory/remote)."""
    package = recipe.package
    compiled = build.packages[compiled_index]
    licenses = [c.license for c in package.copyright]
    attestation = "\n".join(c.attestation for c in package.copyright if c.attestation)
    where = recipe.where

    def sub(text: str) -> str:
        return substitute(text, compiled.substitutions, where)

    if compiled.subpackage is None:
        deps = package.dependencies.model_copy(deep=True)
        deps.runtime = [sub(d) for d in deps.runtime]
        deps.provides = [sub(d) for d in deps.provides]
        deps.replaces = [sub(d) for d in deps.replaces]
        return PackageSpec(
            name=package.name,
            origin=package.name,
            version=package.version,
            epoch=package.epoch,
            arch=arch,
            description=sub(package.description),
            url=sub(package.url),
            commit=package.commit or default_commit,
            licenses=licenses,
            copyright_text=attestation,
            dependencies=deps,
            options=package.options,
            scriptlets=package.scriptlets,
            setcap=list(package.setcap),
        )
    sub_spec = compiled.subpackage
    sub_licenses = [c.license for c in sub_spec.spec.copyright] or licenses
    return PackageSpec(
        name=sub_spec.name,
        origin=package.name,
        version=package.version,
        epoch=package.epoch,
        arch=arch,
        description=sub_spec.description,
        url=sub_spec.url or sub(package.url),
        commit=sub_spec.spec.commit or package.commit or default_commit,
        licenses=sub_licenses,
        copyright_text=attestation,
        dependencies=sub_spec.dependencies,
        options=sub_spec.spec.options,
        scriptlets=sub_spec.spec.scriptlets,
        setcap=list(sub_spec.spec.setcap),
    )
