"""Build several recipes and publish each through the repository's consistency gate."""

from __future__ import annotations

import datetime
import os
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path

from nanodistro.builder import environment as env_mod
from nanodistro.builder.config import BuildConfig, BuildResult
from nanodistro.builder.order import build_order
from nanodistro.builder.package import BuiltPackage
from nanodistro.builder.stages import stage
from nanodistro.errors import BuildError
from nanodistro.repo.consistency import Upstream, load_upstream, package_key
from nanodistro.resolve import parse_repository
from nanodistro.util.progress import Progress


def build_recipes(
    paths: Sequence[Path],
    config: BuildConfig,
    *,
    progress: Progress | None = None,
    on_log_line: Callable[[str, str], None] | None = None,
) -> list[BuildResult]:
    """Build several recipes in dependency order, publishing each to ``config.repo`` (signed
    with ``config.key``) as soon as it built and passed its tests, so later recipes can use it.
    A failure stops the run; what was published before stays (each publish is atomic)."""
    from nanodistro.builder.orchestrate import build_recipe

    if config.repo and config.key is None:
        raise BuildError("publishing to a repository needs a signing key (--key)")
    results: list[BuildResult] = []
    for path in build_order(paths, config.arch, config.pipeline_dirs):
        started = datetime.datetime.now(datetime.UTC)
        clock = time.monotonic()
        result = build_recipe(path, config, progress=progress, on_log_line=on_log_line)
        finished = datetime.datetime.now(datetime.UTC)
        results.append(result)
        if result.skipped or not config.repo or config.key is None:
            continue
        publish_result(result, config, started, finished, progress=progress)
        result.seconds = time.monotonic() - clock
    return results


def publish_result(
    result: BuildResult,
    config: BuildConfig,
    started: datetime.datetime,
    finished: datetime.datetime,
    *,
    progress: Progress | None = None,
    builder_id: str | None = None,
) -> None:
    """Publish a build's (signed) packages to ``config.repo`` through the consistency gate, with
    SLSA provenance signed here when ``config.provenance_key`` is set; sets ``result.published``.
    The control plane's half of a build: ``build_recipes`` calls it for what it just built, the
    remote build kind (factory/remote) for what a worker built and the control plane signed.
    ``builder_id`` overrides the provenance builder id (a worker's build names the worker).
    Publishing the same bytes again is a no-op."""
    from nanodistro.repo import publish

    if config.repo is None or config.key is None:
        raise BuildError("publishing needs a repository and a signing key (--key)")
    say = progress or (lambda _m: None)
    upstream = upstream_of(config)
    host_provides = env_mod.ToolchainIndex(config.toolchain).satisfies
    attestations: dict[str, bytes] = {}
    if config.provenance_key is not None:
        # signed here, in the control plane, from what the build reported
        attestations = package_provenance(
            result, config, started, finished, upstream, host_provides, builder_id=builder_id
        )
    with tempfile.TemporaryDirectory(prefix="nanodistro-publish-") as tmp:
        files = []
        for package in result.packages:
            file = Path(tmp) / package.filename
            file.write_bytes(package.data)
            files.append(file)
        names = ", ".join(p.filename for p in result.packages)
        with stage(
            say,
            result.steps,
            f"publish {names} -> {config.repo}",
            kind="publish",
            package=result.name,
            step="publish",
        ):
            # the consistency gate: refused (nothing written) if a dependency has no provider
            published = publish(
                files,
                config.repo,
                config.key,
                progress=say,
                upstream=upstream,
                origins=sca_origins(result.packages),
                host_provides=host_provides,
                provenance=attestations,
            )
        result.published = [p.path for p in published.packages]


def package_provenance(
    result: BuildResult,
    config: BuildConfig,
    started: datetime.datetime,
    finished: datetime.datetime,
    upstream: Callable[[str], Upstream],
    host_provides: Callable[[str], bool],
    *,
    builder_id: str | None = None,
) -> dict[str, bytes]:
    """File name -> ``.intoto.jsonl`` bytes (one signed envelope) for each package of
    ``result`` not yet in ``config.repo``. A package already published with these very bytes
    keeps the provenance it was first published with (the artifact is the same; provenance
    files never change), so a rebuild that reproduced it publishes as a no-op."""
    from nanodistro.builder.provenance import ProvenanceRun, builder_id_for, package_statement
    from nanodistro.trust.provenance import (
        envelopes_to_jsonl,
        provenance_path,
        sign_statement,
    )

    assert config.provenance_key is not None and config.repo is not None
    run = ProvenanceRun(
        builder_id=builder_id or config.builder_id or builder_id_for(config.namespace),
        started=started,
        finished=finished,
        invocation_id=str(uuid.uuid4()),
        build_options=tuple(config.build_options),
        toolchain_root=str(config.toolchain.host_root),
        providers=[(ref.url, infos) for ref, infos in upstream(result.arch)],
        toolchain_satisfies=host_provides,
    )
    out: dict[str, bytes] = {}
    for package in result.packages:
        existing = config.repo / result.arch / package.filename
        try:
            same = existing.read_bytes() == package.data
        except OSError:
            same = False
        if same and provenance_path(existing).is_file():
            continue
        statement = package_statement(result, package, run)
        out[package.filename] = envelopes_to_jsonl(
            [sign_statement(statement, config.provenance_key)]
        )
    return out


def upstream_of(config: BuildConfig) -> Callable[[str], Upstream]:
    """``config.repo`` and ``config.extra_repos`` as providers (verified indexes, per arch)."""
    refs = [parse_repository(str(r)) for r in config.extra_repos]
    if config.repo:
        refs.append(parse_repository(str(config.repo)))
    keyring = dict(config.keyring or {})
    if config.key is not None:
        keyring.setdefault(config.key.keyname, config.key.public_pem())
    return load_upstream(refs, keyring)


def sca_origins(packages: Sequence[BuiltPackage]) -> dict[str, dict[str, list[str]]]:
    """``name-version`` -> dependency -> where SCA found it (``usr/bin/xzdiff (shebang)``)."""
    return {package_key(p.info): dict(getattr(p.sca, "origins", {})) for p in packages}


def write_packages(result: BuildResult, out_dir: Path) -> list[Path]:
    """Write a result's packages to ``out_dir/<arch>/`` (for builds without a repository)."""
    target = out_dir / result.arch
    target.mkdir(parents=True, exist_ok=True)
    written = []
    for package in result.packages:
        path = target / package.filename
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_bytes(package.data)
        os.replace(tmp, path)
        written.append(path)
    return written
