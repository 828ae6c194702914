"""Build several recipes and publish each through the repository's consistency gate."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

from nanodistro.builder import environment as env_mod
from nanodistro.builder.config import BuildConfig, BuildResult
from nanodistro.builder.order import build_order
from nanodistro.builder.package import BuiltPackage
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
    from nanodistro.repo import publish

    say = progress or (lambda _m: None)
    if config.repo and config.key is None:
        raise BuildError("publishing to a repository needs a signing key (--key)")
    results: list[BuildResult] = []
    for path in build_order(paths, config.arch, config.pipeline_dirs):
        result = build_recipe(path, config, progress=progress, on_log_line=on_log_line)
        results.append(result)
        if result.skipped or not config.repo or config.key is None:
            continue
        with tempfile.TemporaryDirectory(prefix="nanodistro-publish-") as tmp:
            files = []
            for package in result.packages:
                file = Path(tmp) / package.filename
                file.write_bytes(package.data)
                files.append(file)
            say(f"publish {', '.join(p.filename for p in result.packages)} -> {config.repo}")
            # the consistency gate: refused (nothing written) if a dependency has no provider
            published = publish(
                files,
                config.repo,
                config.key,
                progress=say,
                upstream=upstream_of(config),
                origins=sca_origins(result.packages),
                host_provides=env_mod.ToolchainIndex(config.toolchain).satisfies,
            )
            result.published = [p.path for p in published.packages]
    return results


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
