"""The repository consistency gate: nothing is published that depends on a name no package
provides (DESIGN invariant 6), and ``nanodistro repo check`` reports the same on any repository."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from cli_runner import run_cli
from nanodistro.errors import ConsistencyError
from nanodistro.formats.apk import write_apk
from nanodistro.formats.pkginfo import PackageInfo
from nanodistro.formats.signature import SigningKey
from nanodistro.repo import publish
from nanodistro.repo.consistency import check_packages
from needs_tools import require_tools
from signing_keys import make_key


@pytest.fixture
def key(tmp_path: Path) -> tuple[SigningKey, Path]:
    keys = tmp_path / "keys"
    keys.mkdir()
    signing, _ = make_key(keys, "gate")
    return signing, next(keys.glob("*.rsa"))


def apk(
    directory: Path,
    key: SigningKey,
    name: str,
    version: str = "1.0-r0",
    *,
    depends: list[str] | None = None,
    provides: list[str] | None = None,
) -> Path:
    info = PackageInfo(
        name=name,
        version=version,
        arch="x86_64",
        description=name,
        depends=depends or [],
        provides=provides or [],
    )
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}-{version}.apk"
    path.write_bytes(write_apk(info, [], key=key, source_date_epoch=1_700_000_000))
    return path


def tree_digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_check_packages_versions_conflicts_and_messages() -> None:
    infos = [
        PackageInfo(name="zlib", version="1.1-r0", arch="x86_64", provides=["so:libz.so.1=1.1"]),
        PackageInfo(
            name="app",
            version="2-r0",
            arch="x86_64",
            depends=["so:libz.so.1>=1.2", "!oldapp", "cmd:bash", "zlib"],
        ),
    ]
    report = check_packages(
        infos,
        arch="x86_64",
        origins={"app-2-r0": {"cmd:bash": ["usr/bin/app-wrapper (shebang)"]}},
        host_provides=lambda name: name == "cmd:bash",
    )
    assert [str(m) for m in report.missing] == [
        "app-2-r0: so:libz.so.1>=1.2 has no matching provider (only so:libz.so.1=1.1)",
        "app-2-r0: cmd:bash has no provider (← usr/bin/app-wrapper (shebang)); provided on the "
        "build host by the toolchain root, not by any package",
    ]
    # apk index only names what has no provider at all, not version mismatches
    assert report.apk_index_warnings() == [
        "WARNING: No provider for the dependencies: cmd:bash",
        "WARNING: Total of 1 unsatisfiable package names. Your repository may be broken.",
    ]


def test_publish_refuses_a_missing_provider_and_writes_nothing(
    tmp_path: Path, key: tuple[SigningKey, Path]
) -> None:
    signing, _ = key
    repo = tmp_path / "repo"
    publish([apk(tmp_path / "in", signing, "base")], repo, signing)
    before = tree_digest(repo)
    broken = apk(tmp_path / "in", signing, "xz", "5.6.2-r0", depends=["cmd:bash", "base"])
    with pytest.raises(ConsistencyError) as caught:
        publish(
            [broken],
            repo,
            signing,
            origins={"xz-5.6.2-r0": {"cmd:bash": ["usr/bin/xzdiff (shebang)"]}},
        )
    assert "xz-5.6.2-r0: cmd:bash has no provider (← usr/bin/xzdiff (shebang))" in str(caught.value)
    assert str(repo) in str(caught.value)
    assert tree_digest(repo) == before  # refused before anything was written
    # a partial repository on purpose
    publish([broken], repo, signing, allow_missing=True)
    assert (repo / "x86_64" / "xz-5.6.2-r0.apk").is_file()


def test_a_problem_the_repository_already_had_does_not_block_other_publishes(
    tmp_path: Path, key: tuple[SigningKey, Path]
) -> None:
    signing, _ = key
    repo = tmp_path / "repo"
    broken = apk(tmp_path / "in", signing, "xz", "5.6.2-r0", depends=["cmd:bash"])
    publish([broken], repo, signing, allow_missing=True)  # broken before (an older publisher)
    said: list[str] = []
    result = publish([apk(tmp_path / "in", signing, "base")], repo, signing, progress=said.append)
    assert [p.path.name for p in result.added] == ["base-1.0-r0.apk"]
    assert (
        "warning: x86_64: already in the repository: xz-5.6.2-r0: cmd:bash has no provider" in said
    )
    # a new problem is still refused
    before = tree_digest(repo)
    with pytest.raises(ConsistencyError, match=r"lz-1\.0-r0: cmd:perl has no provider"):
        publish([apk(tmp_path / "in", signing, "lz", depends=["cmd:perl"])], repo, signing)
    assert tree_digest(repo) == before
    check = run_cli(tmp_path, "repo", "check", repo, "--keyring", tmp_path / "keys")
    assert check.returncode == 1  # repo check still reports what the repository had
    assert "xz-5.6.2-r0: cmd:bash has no provider" in check.stdout + check.stderr


def test_repo_check_and_publish_through_the_cli(
    tmp_path: Path, key: tuple[SigningKey, Path]
) -> None:
    signing, private = key
    keys_dir = private.parent
    made = tmp_path / "in"
    # an upstream repository that provides cmd:sh
    upstream = tmp_path / "upstream"
    shell = apk(made, signing, "busybox", "1.36-r0", provides=["cmd:sh=1.36-r0"])
    assert run_cli(tmp_path, "publish", shell, "--repo", upstream, "--key", private).returncode == 0

    repo = tmp_path / "repo"
    good = [
        apk(made, signing, "zlib", "1.3-r0", provides=["so:libz.so.1=1.3"]),
        apk(made, signing, "pkgconf", "2-r0", provides=["cmd:pkg-config=2-r0", "pc:zlib=1.3"]),
        apk(
            made,
            signing,
            "zlib-dev",
            "1.3-r0",
            depends=["so:libz.so.1>=1.2", "pc:zlib", "cmd:pkg-config", "cmd:sh", "!zlib-old"],
        ),
    ]
    # cmd:sh comes only from the upstream repository: refused without it, accepted with it
    refused = run_cli(tmp_path, "publish", *good, "--repo", repo, "--key", private)
    assert refused.returncode == 1
    assert "zlib-dev-1.3-r0: cmd:sh has no provider" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1
    assert not (repo / "x86_64").exists()  # nothing written (the lock file aside)
    done = run_cli(
        tmp_path, "publish", *good, "--repo", repo, "--key", private, "--repository", upstream,
        "--keyring", keys_dir,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr

    check = ["repo", "check", repo, "--keyring", keys_dir]
    ok = run_cli(tmp_path, *check, "--repository", upstream)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "x86_64: 3 packages, consistent" in ok.stdout
    assert "every dependency has a provider" in ok.stdout

    # without the upstream repository, cmd:sh has no provider (and apk index would say so)
    alone = run_cli(tmp_path, *check)
    assert alone.returncode == 1
    assert "zlib-dev-1.3-r0: cmd:sh has no provider" in alone.stdout
    assert "apk index: WARNING: No provider for the dependencies: cmd:sh" in alone.stdout

    # a versioned dependency that the published version does not satisfy, and a missing name
    newer = [
        apk(made, signing, "app", "1-r0", depends=["so:libz.so.1>=1.4", "libmissing"]),
    ]
    published = run_cli(
        tmp_path, "publish", *newer, "--repo", repo, "--key", private, "--allow-missing"
    )
    assert published.returncode == 0, published.stderr
    broken = run_cli(tmp_path, *check, "--repository", upstream, "--json")
    assert broken.returncode == 1
    (report,) = json.loads(broken.stdout)["archs"]
    assert [(m["package"], m["dependency"], m["problem"]) for m in report["missing"]] == [
        ("app-1-r0", "so:libz.so.1>=1.4", "has no matching provider"),
        ("app-1-r0", "libmissing", "has no provider"),
    ]
    assert report["apk_index_warnings"][0] == (
        "WARNING: No provider for the dependencies: libmissing"
    )

    # the repository's own keys are used when --keyring is not given; a wrong key is refused
    (repo / "keys").mkdir()
    (repo / "keys" / private.with_suffix(".rsa.pub").name).write_bytes(
        private.with_name(private.name + ".pub").read_bytes()
    )
    own = run_cli(tmp_path, "repo", "check", repo, "--repository", upstream)
    assert own.returncode == 1 and "app-1-r0: libmissing has no provider" in own.stdout
    other_dir = tmp_path / "other"
    other_dir.mkdir()
    make_key(other_dir, "other")
    untrusted = run_cli(tmp_path, "repo", "check", repo, "--keyring", other_dir)
    assert untrusted.returncode == 1 and "UNTRUSTED" in untrusted.stderr


BASH_SCRIPT_RECIPE = """package:
  name: xzlike
  version: "5.6.2"
  epoch: 0
  description: a package whose script found the host's bash
  copyright:
    - license: MIT
pipeline:
  - runs: |
      mkdir -p ${{targets.destdir}}/usr/bin
      printf '#!/bin/bash\\necho diff\\n' > ${{targets.destdir}}/usr/bin/xzdiff
      chmod 755 ${{targets.destdir}}/usr/bin/xzdiff
"""


@pytest.mark.slow
def test_build_that_picked_up_the_host_bash_is_not_published(
    tmp_path: Path, key: tuple[SigningKey, Path]
) -> None:
    """A real sandbox build: the installed script's shebang makes SCA depend on cmd:bash, which
    only the build host has; `nanodistro build` refuses to publish, the repository is unchanged."""
    require_tools("bwrap")
    signing, private = key
    repo = tmp_path / "repo"
    publish([apk(tmp_path / "in", signing, "base")], repo, signing)
    before = tree_digest(repo)
    recipes = tmp_path / "recipes"
    recipes.mkdir()
    recipe = recipes / "xzlike.yaml"
    recipe.write_text(BASH_SCRIPT_RECIPE)
    done = run_cli(
        tmp_path, "build", recipe, "--repo", repo, "--key", private, "--no-test",
        "--source-cache", tmp_path / "cache", "--workspace-dir", tmp_path / "ws",
        "--no-workspace",
    )  # fmt: skip
    assert done.returncode == 1, done.stdout + done.stderr
    assert "xzlike-5.6.2-r0: cmd:bash has no provider" in done.stderr
    assert "usr/bin/xzdiff" in done.stderr
    assert tree_digest(repo) == before
