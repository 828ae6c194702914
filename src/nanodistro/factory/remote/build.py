"""The ``build`` and ``test`` jobs split across the trust boundary.

build:
  prepare (control plane)  the recipe and its files, the build settings, the repository to read
                           from and the PUBLIC keys; the git facts the worker cannot see (default
                           ``package.commit``, the commit time as SOURCE_DATE_EPOCH)
  worker                   fetches sources (its own cache; the recipe's checksums verify them),
                           builds and tests in the bubblewrap sandbox with ``key=None``, returns
                           the unsigned ``.apk`` bytes and the facts provenance needs
  accept (control plane)   checks every package against the job (name one the recipe compiles
                           to, version, arch, origin, recorded recipe hash, unsigned, datahash),
                           signs it (``sign_unsigned_apk``: byte-identical to a local build),
                           signs SLSA provenance naming the worker, publishes through the
                           consistency gate, records the events ``build_handler`` records

The tests of a build run against the just-built unsigned bytes, handed to the resolver as
"packages just built" (builder/environment.py): no temporary repository is signed, so a worker
needs no key at all, not even an ephemeral one.

test: the same split for re-running a recipe's tests against the repository's new packages;
the worker returns the verdict, the control plane records it.
"""

from __future__ import annotations

import collections
import datetime
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nanodistro.errors import (
    BuildError,
    FetchError,
    NanodistroError,
    RepositoryError,
    TransientError,
    TrustError,
)
from nanodistro.factory.remote.packagecheck import check_metadata
from nanodistro.factory.remote.payload import (
    b64,
    build_settings,
    clipped,
    directory_files,
    duration,
    fresh_dir,
    only_fields,
    public_keyring,
    recipe_files,
    records,
    sha256,
    unb64,
    worker_config,
    write_files,
)

if TYPE_CHECKING:
    from nanodistro.factory.remote import WorkerContext
    from nanodistro.formats.apk import ApkPackage

LOG_LINES = 200
BUILD_OUTPUT = frozenset(
    {"status", "error", "transient", "packages", "facts", "tests", "steps", "seconds", "log"}
    | {"started", "finished"}
)
PACKAGE_FIELDS = frozenset({"file", "data", "origins"})
FACT_FIELDS = frozenset(
    {"source_date_epoch", "sources", "toolchain", "sandbox", "environment"}
    | {"environment_packages", "warnings"}
)
TEST_OUTPUT = frozenset({"passed", "error", "transient", "tests", "seconds", "log"})


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat()


def _failure(error: NanodistroError, log: collections.deque[str]) -> dict[str, Any]:
    return {
        "status": "failed",
        "error": str(error),
        "transient": isinstance(error, FetchError | TransientError),
        "log": "\n".join(log),
    }


def _repositories(config: Any, repository_url: str | None) -> list[str]:
    """Where the worker reads packages from: the extra repositories, then the control plane's
    repository as ``repository_url`` (how workers on other machines reach it: any static HTTP
    server over the packages directory) or its path (workers on this machine). Left out while
    it has no index for the arch yet (a first build), as a local build finds it empty."""
    repos = list(config.extra_repos)
    if config.repo is not None and (Path(config.repo) / config.arch / "APKINDEX.tar.gz").is_file():
        repos.append(repository_url.rstrip("/") if repository_url else str(config.repo))
    return repos


def _recipe_payload(
    plan: Any, inputs: dict[str, Any], repository_url: str | None
) -> tuple[Path, Any, dict[str, Any]]:
    """The recipe's path, model and the payload part every recipe job ships."""
    from nanodistro.builder.recipeinfo import git_commit_id, git_commit_time
    from nanodistro.factory.building import recipe_digest
    from nanodistro.recipe.model import load_recipe

    path = Path(inputs["path"])
    recipe = load_recipe(path)
    if recipe_digest(path) != inputs["recipe_sha256"]:
        raise BuildError(
            f"the recipe changed since the job was made (expected recipe sha256 "
            f"{inputs['recipe_sha256'][:12]}); the next cycle builds the new one",
            where=str(path),
        )
    config = plan.config
    settings = build_settings(config)
    if settings["source_date_epoch"] is None:
        # the worker's copy is not in git: the commit time is decided here, as a local build
        # would (builder/orchestrate.py: explicit, else git commit time, else sources)
        settings["source_date_epoch"] = git_commit_time(path)
    payload = {
        "recipe": inputs["recipe"],
        "arch": inputs["arch"],
        "version": inputs["version"],
        "recipe_sha256": inputs["recipe_sha256"],
        "recipe_file": path.name,
        "files": recipe_files(path, recipe.package.name),
        "pipelines": [directory_files(d) for d in config.pipeline_dirs],
        "commit": git_commit_id(path),
        "settings": settings,
        "repositories": _repositories(config, repository_url),
        "keyring": public_keyring(config),
    }
    return path, recipe, payload


def _unpack_recipe(payload: dict[str, Any], ctx: WorkerContext, job: str) -> tuple[Path, Any]:
    """Write the shipped recipe into a fresh job directory; its config for this worker."""
    from nanodistro.builder.recipeinfo import recipe_hash
    from nanodistro.recipe.model import load_recipe

    base = fresh_dir(ctx.work_dir, job)
    recipes = base / "recipes"
    write_files(payload["files"], recipes, where=f"{job}: files")
    path = recipes / Path(payload["recipe_file"]).name
    if recipe_hash(path, load_recipe(path)) != payload["recipe_sha256"]:
        raise BuildError(
            "the recipe files received do not hash to the job's recipe sha256",
            where=payload["recipe_file"],
        )
    pipeline_dirs = []
    for number, files in enumerate(payload.get("pipelines") or []):
        directory = base / f"pipelines-{number}"
        write_files(files, directory, where=f"{job}: pipelines")
        pipeline_dirs.append(directory)
    config = worker_config(
        payload["settings"],
        repositories=list(payload["repositories"]),
        keyring=payload["keyring"],
        source_cache=ctx.cache_dir / "sources",
        workspace_dir=base / "builds",
        pipeline_dirs=pipeline_dirs,
    )
    return path, config


# ------------------------------------------------------------------------------------ build


def prepare_build(
    plan: Any, repository_url: str | None = None
) -> Callable[[dict[str, Any]], dict[str, Any]]:
    from nanodistro.builder.recipeinfo import existing_build
    from nanodistro.factory import events
    from nanodistro.formats.pkginfo import apk_filename

    def prepare(inputs: dict[str, Any]) -> dict[str, Any]:
        subject = f"recipe:{inputs['recipe']}"
        events.record(plan.state, events.BUILD_STARTED, subject, {"version": inputs["version"]})
        try:
            return _prepare(inputs)
        except NanodistroError as error:  # recorded as build_handler records its failures
            events.record(
                plan.state,
                events.BUILD_FAILED,
                subject,
                {"version": inputs["version"], "error": str(error), "log": ""},
            )
            raise

    def _prepare(inputs: dict[str, Any]) -> dict[str, Any]:
        path, recipe, payload = _recipe_payload(plan, inputs, repository_url)
        config = plan.config
        filename = apk_filename(recipe.package.name, recipe.package.full_version)
        recorded = existing_build(config.repo, config.arch, filename) if config.repo else None
        if recorded == inputs["recipe_sha256"] and not config.rebuild:
            # published from these very recipe bytes (a redelivered or repeated job): nothing
            # to build, as build_recipes skips it
            return {"skip": True, "recipe": inputs["recipe"], "version": inputs["version"]}
        if recorded is not None:
            from nanodistro.builder.recipediff import describe_recipe_change

            published = config.repo / config.arch / filename
            changed = describe_recipe_change(recipe, path, published)
            raise RepositoryError(
                f"{filename} is already published from a different recipe"
                f"{f' ({changed})' if changed else ''}; bump package.epoch to publish the "
                "change ('nanodistro bump --epoch RECIPE'; published packages never change)",
                where=str(published),
            )
        return payload

    return prepare


def worker_build(payload: dict[str, Any], ctx: WorkerContext) -> dict[str, Any]:
    """Build (and test) one recipe unsigned; never raises for a build failure (the verdict is
    the output)."""
    import shutil

    from nanodistro.builder.orchestrate import build_recipe

    if payload.get("skip"):
        return {"status": "skipped"}
    log: collections.deque[str] = collections.deque(maxlen=LOG_LINES)
    job = f"build-{payload['recipe']}-{uuid.uuid4().hex[:8]}"
    started, clock = _now(), time.monotonic()
    try:
        path, config = _unpack_recipe(payload, ctx, job)
        result = build_recipe(
            path,
            config,
            progress=lambda message: log.append(str(message)),
            on_log_line=lambda step, line: log.append(f"{step}: {line}"),
            commit=payload["commit"],
        )
    except NanodistroError as error:
        return _failure(error, log)
    finally:
        shutil.rmtree(ctx.work_dir / job, ignore_errors=True)
    return {
        "status": "built",
        "packages": [
            {"file": p.filename, "data": b64(p.data), "origins": dict(p.sca.origins)}
            for p in result.packages
        ],
        "facts": {
            "source_date_epoch": result.source_date_epoch,
            "sources": [s.__dict__ for s in result.sources],
            "toolchain": result.toolchain,
            "sandbox": result.sandbox,
            "environment": result.environment,
            "environment_packages": [p.__dict__ for p in result.environment_packages],
            "warnings": result.warnings,
        },
        "tests": [t.__dict__ for t in result.tests],
        "steps": [s.to_json() for s in result.steps],
        "started": started,
        "finished": _now(),
        "seconds": time.monotonic() - clock,
        "log": "\n".join(log),
    }


def _failed(output: dict[str, Any], worker: str) -> NanodistroError:
    error = f"on worker {worker}: {clipped(output.get('error') or 'failed')}"
    return TransientError(error) if output.get("transient") is True else BuildError(error)


def _check_package(
    item: Any, *, inputs: dict[str, Any], expected: set[str], where: str
) -> tuple[str, bytes, dict[str, list[str]], ApkPackage]:
    """(file, unsigned bytes, SCA origins, parsed) of one returned package, or ``TrustError``."""
    from nanodistro.builder.recipeinfo import recorded_recipe_hash
    from nanodistro.formats.apk import read_apk
    from nanodistro.formats.pkginfo import apk_filename

    item = only_fields(item, PACKAGE_FIELDS, where=where)
    data = unb64(item.get("data"), where=where)
    file = str(item.get("file"))
    where = f"{where}: {file}"
    try:
        package = read_apk(data, where=where)
    except NanodistroError as error:
        raise TrustError(f"not a package: {error}", where=where) from None
    info = package.info
    problems = []
    if info.name not in expected:
        problems.append(
            f"package {info.name!r} is not one the recipe makes ({', '.join(sorted(expected))})"
        )
    if info.version != inputs["version"]:
        problems.append(f"version {info.version}, the job is for {inputs['version']}")
    if info.arch != inputs["arch"]:
        problems.append(f"arch {info.arch}, the job is for {inputs['arch']}")
    if (info.origin or info.name) != inputs["recipe"]:
        problems.append(f"origin {info.origin}, the job is recipe {inputs['recipe']}")
    if file != apk_filename(info.name, info.version):
        problems.append(f"file name {file!r} is not {apk_filename(info.name, info.version)!r}")
    recorded = recorded_recipe_hash(package.extra_control)
    if recorded != inputs["recipe_sha256"]:
        problems.append(
            f"recipe_sha256 {recorded[:12] or '(none)'}, the job's is {inputs['recipe_sha256'][:12]}"
        )
    if problems:
        raise TrustError("refused: " + "; ".join(problems), where=where)
    origins = item.get("origins") or {}
    if not isinstance(origins, dict):
        raise TrustError("origins: expected an object", where=where)
    return file, data, origins, package


def accept_build(plan: Any, builder_id: Callable[[str], str]) -> Callable[..., dict[str, Any]]:
    from nanodistro.builder.compile import compile_recipe
    from nanodistro.builder.config import BuildResult, StepTiming, TestOutcome
    from nanodistro.builder.environment import InstalledPackage
    from nanodistro.builder.package import BuiltPackage
    from nanodistro.builder.publishing import publish_result
    from nanodistro.builder.sca import ScaResult
    from nanodistro.builder.sources import SourceRecord
    from nanodistro.factory import events
    from nanodistro.factory.building import (
        log_path_of,
        published_files,
        recipe_digest,
        record_build_tests,
    )
    from nanodistro.formats.apk import read_apk, sign_unsigned_apk
    from nanodistro.recipe.model import load_recipe

    def accept(inputs: dict[str, Any], output: dict[str, Any], worker: str) -> dict[str, Any]:
        where = f"worker {worker}: build {inputs['recipe']}-{inputs['version']}"
        output = only_fields(output, BUILD_OUTPUT, where=where)
        seconds = duration(output.get("seconds"), where=where)
        subject, version = f"recipe:{inputs['recipe']}", inputs["version"]
        config = plan.config
        status = output.get("status")
        if status == "failed":
            error = _failed(output, worker)
            events.record(
                plan.state,
                events.BUILD_FAILED,
                subject,
                {"version": version, "error": str(error), "log": log_path_of(str(error))},
            )
            raise error
        path = Path(inputs["path"])
        if status == "skipped":
            from nanodistro.builder.orchestrate import existing_build
            from nanodistro.formats.pkginfo import apk_filename

            main = apk_filename(inputs["recipe"], version)
            if existing_build(config.repo, config.arch, main) != inputs["recipe_sha256"]:
                raise TrustError("skipped a build the job asked for; refused", where=where)
            published: list[dict[str, str]] = []
        elif status == "built":
            if recipe_digest(path) != inputs["recipe_sha256"]:
                raise BuildError(
                    "the recipe changed while the job ran; the next cycle builds the new one",
                    where=str(path),
                )
            recipe = load_recipe(path)
            compiled = compile_recipe(
                recipe,
                config.arch,
                pipeline_dirs=config.pipeline_dirs,
                build_options=config.build_options,
            )
            expected = [p.name for p in compiled.packages]
            items = output.get("packages")
            if not isinstance(items, list):
                raise TrustError("packages: expected a list", where=where)
            checked = [
                _check_package(item, inputs=inputs, expected=set(expected), where=where)
                for item in items
            ]
            names = [package.info.name for _f, _d, _o, package in checked]
            if sorted(names) != sorted(expected):
                raise TrustError(
                    f"returned packages {', '.join(sorted(names)) or '(none)'}; the recipe "
                    f"makes {', '.join(sorted(expected))}; refused",
                    where=where,
                )
            by_name = dict(zip(names, checked, strict=True))
            check_metadata(
                recipe,
                compiled,
                {name: package for name, (_f, _d, _o, package) in by_name.items()},
                path=path,
                arch=config.arch,
                where=where,
            )
            facts = only_fields(output.get("facts"), FACT_FIELDS, where=f"{where}: facts")
            tests = records(TestOutcome, output.get("tests", []), where=f"{where}: tests")
            if any(not t.passed for t in tests):
                raise TrustError("reports a failed test as a successful build", where=where)
            built = []
            for name in expected:  # the recipe's order, as a local build emits them
                file, data, origins, _package = by_name[name]
                try:
                    signed = sign_unsigned_apk(data, config.key, where=f"{where}: {file}")
                except NanodistroError as error:
                    raise TrustError(f"refused: {error.message}", where=error.where) from None
                info = read_apk(signed, where=file).info
                sca = ScaResult(origins=_origins(origins, where=f"{where}: {file}"))
                built.append(BuiltPackage(info=info, data=signed, sca=sca, filename=file))
            try:
                result = BuildResult(
                    recipe_path=path,
                    name=inputs["recipe"],
                    version=version,
                    arch=inputs["arch"],
                    packages=built,
                    source_date_epoch=int(facts.get("source_date_epoch") or 0),
                    sources=records(SourceRecord, facts.get("sources", []), where=where),
                    toolchain=dict(facts.get("toolchain") or {}),
                    sandbox=dict(facts.get("sandbox") or {}),
                    tests=tests,
                    environment=list(facts.get("environment") or []),
                    environment_packages=records(
                        InstalledPackage, facts.get("environment_packages", []), where=where
                    ),
                    warnings=list(facts.get("warnings") or []),
                    steps=records(StepTiming, output.get("steps", []), where=f"{where}: steps"),
                )
            except (TypeError, ValueError) as error:  # facts of the wrong shapes
                raise TrustError(f"malformed facts: {error}", where=where) from None
            finished = datetime.datetime.now(datetime.UTC)
            started = finished - datetime.timedelta(seconds=seconds)
            publish_result(
                result,
                config,
                _time(output.get("started"), started),
                _time(output.get("finished"), finished),
                progress=plan.say,
                builder_id=builder_id(worker),
            )
            published = published_files(result)
            record_build_tests(plan.state, subject, version, result.tests)
        else:
            raise TrustError(f"unknown status {status!r}", where=where)
        outcome = "unchanged" if status == "skipped" else "built"
        events.record(
            plan.state,
            events.BUILD_SUCCEEDED,
            subject,
            {
                "version": version,
                "status": outcome,
                "triggers": inputs["triggers"],
                "packages": published,
                "log": "",
                "worker": worker,
            },
        )
        return {
            "status": outcome,
            "published": published,
            "seconds": seconds,
        }

    return accept


def _origins(value: dict[str, Any], *, where: str) -> dict[str, list[str]]:
    """SCA origins (``{"so:libfoo.so.1": ["usr/bin/foo (needed)"]}``) as returned, checked."""
    if not all(isinstance(v, list) and all(isinstance(i, str) for i in v) for v in value.values()):
        raise TrustError("origins: expected lists of paths", where=where)
    return {str(k): list(v) for k, v in value.items()}


def _time(value: Any, default: datetime.datetime) -> datetime.datetime:
    try:
        parsed = datetime.datetime.fromisoformat(str(value))
    except ValueError:
        return default
    return parsed if parsed.tzinfo else default


# ------------------------------------------------------------------------------------- test


def prepare_test(
    plan: Any, repository_url: str | None = None
) -> Callable[[dict[str, Any]], dict[str, Any]]:
    def prepare(inputs: dict[str, Any]) -> dict[str, Any]:
        _path, _recipe, payload = _recipe_payload(plan, inputs, repository_url)
        arch_dir = Path(plan.config.repo) / plan.config.arch
        packages = {}
        for file, digest in sorted(inputs["packages"].items()):
            data = (arch_dir / file).read_bytes()
            if sha256(data) != digest:
                raise BuildError(
                    f"expected sha256 {digest[:12]} (the job's), the repository holds "
                    f"{sha256(data)[:12]}",
                    where=str(arch_dir / file),
                )
            packages[file] = b64(data)  # published, signed packages: nothing secret
        return {**payload, "packages": packages}

    return prepare


def worker_test(payload: dict[str, Any], ctx: WorkerContext) -> dict[str, Any]:
    """Run a recipe's tests against the packages sent (their dependencies from the
    repository, indexes verified with the public keys); the verdict is the output."""
    import shutil

    from nanodistro.builder.orchestrate import test_recipe

    log: collections.deque[str] = collections.deque(maxlen=LOG_LINES)
    job = f"test-{payload['recipe']}-{uuid.uuid4().hex[:8]}"
    clock = time.monotonic()
    try:
        path, config = _unpack_recipe(payload, ctx, job)
        files = []
        for file, text in payload["packages"].items():
            target = ctx.work_dir / job / "packages" / Path(file).name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(unb64(text, where=file))
            files.append(target)
        result = test_recipe(
            path,
            config,
            packages=files,
            progress=lambda message: log.append(str(message)),
            on_log_line=lambda step, line: log.append(f"{step}: {line}"),
        )
    except NanodistroError as error:
        failed = _failure(error, log)
        return {**{k: failed[k] for k in ("error", "transient", "log")}, "passed": False}
    finally:
        shutil.rmtree(ctx.work_dir / job, ignore_errors=True)
    return {
        "passed": True,
        "tests": [t.__dict__ for t in result.tests],
        "seconds": time.monotonic() - clock,
        "log": "\n".join(log),
    }


def accept_test(plan: Any) -> Callable[..., dict[str, Any]]:
    from nanodistro.factory import events
    from nanodistro.factory.building import log_path_of

    def accept(inputs: dict[str, Any], output: dict[str, Any], worker: str) -> dict[str, Any]:
        where = f"worker {worker}: test {inputs['recipe']}-{inputs['version']}"
        output = only_fields(output, TEST_OUTPUT, where=where)
        subject = f"recipe:{inputs['recipe']}"
        payload = {"version": inputs["version"], "against": sorted(inputs["against"])}
        if output.get("passed") is not True:
            error = _failed(output, worker)
            events.record(
                plan.state,
                events.TEST_FAILED,
                subject,
                {**payload, "error": str(error), "log": log_path_of(str(error))},
            )
            raise error
        events.record(plan.state, events.TEST_PASSED, subject, {**payload, "worker": worker})
        return {"passed": True}

    return accept
