"""SLSA provenance of built packages: every input named, any input change shows, published
beside each .apk (and in repository versions), immutable, schema-valid."""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from build_testlib import Upstream

from nanodistro.builder.orchestrate import BuildConfig, build_recipe, build_recipes
from nanodistro.builder.provenance import ProvenanceRun, package_statement
from nanodistro.builder.publishing import upstream_of
from nanodistro.errors import RepositoryError
from nanodistro.formats.apk import write_apk
from nanodistro.formats.intoto import parse_provenance, parse_statement
from nanodistro.formats.pkginfo import PackageInfo
from nanodistro.formats.tarball import TarEntry
from nanodistro.repo import publish, set_channel, snapshot
from nanodistro.trust.ecdsa import EcdsaSigner, generate_signer
from nanodistro.trust.keys import load_signing_key
from nanodistro.trust.provenance import read_envelopes, verify_provenance

SCHEMA = json.loads(
    (Path(__file__).parents[1] / "formats/data/slsa_provenance_v1.schema.json").read_text()
)
RECIPE = """package:
  name: hello
  version: "1.0"
  epoch: 0
  description: says hello
  copyright:
    - license: MIT
  dependencies:
    runtime: [envtool]
environment:
  contents:
    packages: [busybox, envtool]
pipeline:
  - uses: fetch
    with:
      uri: {url}
      expected-sha256: {sha}
  - uses: patch
    with:
      patches: fix.patch
  - runs: |
      mkdir -p ${{{{targets.destdir}}}}/usr/share/hello
      cp hello.txt ${{{{targets.destdir}}}}/usr/share/hello/
"""
PATCH = """--- a/hello.txt
+++ b/hello.txt
@@ -1 +1 @@
-{old}
+{new}
"""


def envtool(version: str, key: Any) -> bytes:
    info = PackageInfo(
        name="envtool", version=version, arch="x86_64", description="t", license="MIT"
    )
    entries = [
        TarEntry("usr", "dir", mode=0o755, mtime=1_700_000_000),
        TarEntry("usr/share", "dir", mode=0o755, mtime=1_700_000_000),
        TarEntry(
            "usr/share/envtool", "file", mode=0o644, mtime=1_700_000_000, data=version.encode()
        ),
    ]
    return write_apk(info, entries, key=key, source_date_epoch=1_700_000_000)


def make_repo(tmp_path: Path, key_path: Path, version: str = "1") -> Path:
    key = load_signing_key(key_path)
    repo = tmp_path / f"env-repo-{version}"
    file = tmp_path / f"envtool-{version}-r0.apk"
    file.write_bytes(envtool(f"{version}-r0", key))
    publish([file], repo, key)
    return repo


def workspace(tmp_path: Path, upstream: Upstream, text: str = "hi") -> tuple[Path, str]:
    url, sha = upstream.add_tarball(f"hello-{text}.tar.gz", {"hello.txt": f"{text}\n"}, top="h")
    root = tmp_path / "ws-git"
    recipes = root / "recipes"
    (recipes / "hello").mkdir(parents=True, exist_ok=True)
    (recipes / "hello" / "fix.patch").write_text(PATCH.format(old=text, new=text + " there"))
    recipe = recipes / "hello.yaml"
    recipe.write_text(RECIPE.format(url=url, sha=sha))
    git = ["git", "-C", str(root), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-qm", "recipe"], check=True)
    return recipe, sha


def config(tmp_path: Path, key_path: Path, repos: list[Path], **kwargs: Any) -> BuildConfig:
    key = load_signing_key(key_path)
    return BuildConfig(
        source_cache=tmp_path / "cache",
        workspace_dir=tmp_path / "builds",
        key=key,
        keyring={key.keyname: key.public_pem()},
        extra_repos=[str(r) for r in repos],
        run_tests=False,
        source_date_epoch=1_700_000_000,
        **kwargs,
    )


RUN = ProvenanceRun(
    builder_id="https://nanodistro.dev/factory/v1",
    started=datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC),
    finished=datetime.datetime(2024, 1, 1, 0, 1, tzinfo=datetime.UTC),
    invocation_id="test",
)


def definition(recipe: Path, cfg: BuildConfig) -> dict[str, Any]:
    result = build_recipe(recipe, cfg)
    providers = [(ref.url, infos) for ref, infos in upstream_of(cfg)(cfg.arch)]
    run = dataclasses.replace(RUN, providers=providers)
    statement = package_statement(result, result.packages[0], run).to_json()
    jsonschema.validate(statement, SCHEMA)
    return statement["predicate"]["buildDefinition"]  # type: ignore[no-any-return]


def by_kind(definition: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [d for d in definition["resolvedDependencies"] if d["annotations"]["kind"] == kind]


@pytest.mark.slow
def test_every_input_is_named_and_any_change_shows(
    upstream: Upstream, tmp_path: Path, signing_key_path: Path
) -> None:
    repo1 = make_repo(tmp_path, signing_key_path, "1")
    recipe, sha = workspace(tmp_path, upstream)
    cfg = config(tmp_path, signing_key_path, [repo1])
    first = definition(recipe, cfg)

    # every input: recipe (bytes + path) and its patch, the git commit, the source with its
    # digest, the environment package with its checksum, the toolchain, the runtime dependency
    (named,) = by_kind(first, "recipe")
    assert named["name"] == "recipes/hello.yaml"
    assert named["digest"]["sha256"] == hashlib.sha256(recipe.read_bytes()).hexdigest()
    assert [d["name"] for d in by_kind(first, "recipe-file")] == ["recipes/hello/fix.patch"]
    head = subprocess.run(
        ["git", "-C", str(recipe.parent), "rev-parse", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    (ws,) = by_kind(first, "workspace")
    assert ws["digest"] == {"gitCommit": head} and ws["annotations"]["dirty"] is False
    (source,) = by_kind(first, "source")
    assert source["digest"]["sha256"] == sha and len(source["digest"]["sha512"]) == 128
    assert source["uri"].startswith(upstream.base_url)
    (env,) = by_kind(first, "environment")
    env_file = repo1 / "x86_64" / "envtool-1-r0.apk"
    assert env["name"] == "envtool-1-r0"
    assert env["digest"]["sha256"] == hashlib.sha256(env_file.read_bytes()).hexdigest()
    assert env["annotations"]["apkChecksum"].startswith("Q1")
    (toolchain,) = by_kind(first, "toolchain")
    assert toolchain["annotations"]["identity"]  # the same identity as .nanodistro.json
    (runtime,) = by_kind(first, "runtime")
    assert runtime["name"] == "envtool" and runtime["annotations"]["package"] == "envtool-1-r0"
    assert first["externalParameters"]["package"] == "hello"

    # same inputs -> the same definition
    assert definition(recipe, cfg) == first

    # a recipe byte
    recipe.write_text(recipe.read_text() + "# comment\n")
    changed = definition(recipe, cfg)
    assert by_kind(changed, "recipe") != by_kind(first, "recipe")
    assert by_kind(changed, "workspace")[0]["annotations"]["dirty"] is True
    # a source digest (another tarball) and a patch
    recipe2, sha2 = workspace(tmp_path, upstream, "yo")
    changed = definition(recipe2, cfg)
    assert by_kind(changed, "source")[0]["digest"]["sha256"] == sha2 != sha
    assert by_kind(changed, "recipe-file") != by_kind(first, "recipe-file")
    # an environment package
    subprocess.run(["git", "-C", str(recipe.parent), "checkout", "-q", "--", "."], check=True)
    recipe3, _ = workspace(tmp_path, upstream)  # back to the first inputs
    assert definition(recipe3, cfg)["resolvedDependencies"] != []
    repo2 = make_repo(tmp_path, signing_key_path, "2")
    changed = definition(recipe3, config(tmp_path, signing_key_path, [repo2]))
    assert by_kind(changed, "environment")[0]["name"] == "envtool-2-r0"
    assert by_kind(changed, "environment") != by_kind(first, "environment")


@pytest.mark.slow
def test_published_beside_every_apk_signed_and_in_versions(
    upstream: Upstream, tmp_path: Path, signing_key_path: Path
) -> None:
    repo1 = make_repo(tmp_path, signing_key_path, "1")
    recipe, _ = workspace(tmp_path, upstream)
    signer: EcdsaSigner = generate_signer()
    repo = tmp_path / "repo"
    cfg = config(tmp_path, signing_key_path, [repo1], repo=repo, provenance_key=signer)
    build_recipes([recipe], cfg)
    apk = repo / "x86_64" / "hello-1.0-r0.apk"
    attestation = repo / "x86_64" / "hello-1.0-r0.apk.intoto.jsonl"
    assert apk.is_file() and attestation.is_file()
    (envelope,) = read_envelopes(attestation.read_bytes(), where=str(attestation))
    verified = verify_provenance([envelope], signer.public_pem, where="t")
    jsonschema.validate(verified.statement.to_json(), SCHEMA)
    (subject,) = verified.statement.subject
    assert subject.name == apk.name
    assert subject.digest["sha256"] == hashlib.sha256(apk.read_bytes()).hexdigest()
    assert verified.provenance.builder_id == "https://nanodistro.dev/factory/v1"
    assert verified.provenance.started_on <= verified.provenance.finished_on
    assert parse_provenance(parse_statement(envelope.payload)).invocation_id

    # a rebuild reproducing the same bytes keeps the first provenance (no-op publish)
    before = attestation.read_bytes()
    build_recipes([recipe], BuildConfig(**{**cfg.__dict__, "rebuild": True}))
    assert attestation.read_bytes() == before

    # immutable: another provenance for the published package is refused, the same is fine
    other = apk.with_name("x.apk")
    other.write_bytes(apk.read_bytes())
    publish([apk], repo, cfg.key, provenance={apk.name: before})  # type: ignore[arg-type]
    with pytest.raises(RepositoryError, match="another provenance"):
        publish([apk], repo, cfg.key, provenance={apk.name: before + b"\n"})  # type: ignore[arg-type]
    assert attestation.read_bytes() == before

    # repository versions carry it, so stable/<arch>/ has it
    number = snapshot(repo)
    set_channel(repo, "stable", number)
    assert (repo / "stable" / "x86_64" / attestation.name).read_bytes() == before
    assert (repo / "versions" / str(number) / "x86_64" / attestation.name).is_file()
