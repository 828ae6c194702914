"""Push/pull against real registries (docker-registry, crane) checked by real clients (skopeo, crane)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from registry_testdata import REF_NAME, BuiltLayout, layer_tar_gz, make_layout

from nanodistro.errors import RegistryError
from nanodistro.registry import RegistryClient, pull, push_layout
from registry_server import RunningRegistry, find_tool

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"


def run(*argv: str) -> str:
    result = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"{argv} failed: {result.stderr}"
    return result.stdout


def skopeo(*args: str) -> str:
    return run(find_tool("skopeo"), *args)


def crane(*args: str) -> str:
    return run(find_tool("crane"), *args)


def counter() -> tuple[list[str], Callable[[str], None]]:
    lines: list[str] = []
    return lines, lines.append


def assert_layout_blobs_valid(root: Path) -> None:
    for path in (root / "blobs" / "sha256").iterdir():
        assert hashlib.sha256(path.read_bytes()).hexdigest() == path.name, path


def test_push_is_what_skopeo_and_crane_see(
    docker_registry: RunningRegistry, tmp_path: Path
) -> None:
    built = make_layout(tmp_path / "layout")
    ref = docker_registry.ref("test/img:v1")
    digest = push_layout(built.root, ref)
    assert digest == built.top_digest
    inspected = json.loads(skopeo("inspect", "--tls-verify=false", f"docker://{ref}"))
    assert inspected["Digest"] == digest
    raw = skopeo("inspect", "--raw", "--tls-verify=false", f"docker://{ref}").encode()
    assert raw == (built.root / "blobs/sha256" / digest.split(":")[1]).read_bytes()
    assert crane("digest", "--insecure", ref).strip() == digest
    arm = json.loads(crane("config", "--insecure", "--platform", "linux/arm64", ref))
    assert arm["architecture"] == "arm64"


def test_skopeo_copy_then_our_pull_keeps_the_digest(
    docker_registry: RunningRegistry, tmp_path: Path
) -> None:
    built = make_layout(tmp_path / "layout")
    ref = docker_registry.ref("copied/img:v1")
    skopeo("copy", "--all", "--dest-tls-verify=false", f"oci:{built.root}:v1", f"docker://{ref}")
    out = tmp_path / "pulled"
    lines, progress = counter()
    digest = pull(ref, out, progress=progress)
    assert digest == built.top_digest
    index = json.loads((out / "index.json").read_text())
    [entry] = index["manifests"]
    assert entry["digest"] == built.top_digest
    assert entry["annotations"][REF_NAME] == "v1"
    assert json.loads((out / "oci-layout").read_text()) == {"imageLayoutVersion": "1.0.0"}
    assert_layout_blobs_valid(out)
    # every blob of both platforms came along, plus 2 manifests and the index
    for blob in built.blob_digests:
        assert (out / "blobs/sha256" / blob.split(":")[1]).is_file()
    assert sum(line.startswith("downloaded ") for line in lines) == len(built.blob_digests)


def test_our_pull_is_a_layout_skopeo_reads(
    docker_registry: RunningRegistry, tmp_path: Path
) -> None:
    built = make_layout(tmp_path / "layout")
    ref = docker_registry.ref("test/img:v1")
    push_layout(built.root, ref)
    out = tmp_path / "pulled"
    assert pull(ref, out) == built.top_digest
    inspected = json.loads(skopeo("inspect", f"oci:{out}"))
    assert inspected["Digest"] == built.top_digest
    assert inspected["Architecture"] == "amd64"
    assert json.loads(skopeo("inspect", f"oci:{out}:v1"))["Digest"] == built.top_digest
    # pulling again into the same layout is a no-op for blobs and keeps one index entry
    lines, progress = counter()
    pull(ref, out, progress=progress)
    assert not [line for line in lines if line.startswith("downloaded ")]
    assert len(json.loads((out / "index.json").read_text())["manifests"]) == 1


@pytest.mark.parametrize("server", ["docker_registry", "crane_registry"])
def test_chunked_and_monolithic_uploads(
    server: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    registry: RunningRegistry = request.getfixturevalue(server)
    # crane's registry shares blobs between repositories: a fresh blob for each path
    for threshold, repo in ((1_000_000, "mono"), (10_000, "chunked")):
        blob = os.urandom(50_000)
        digest = "sha256:" + hashlib.sha256(blob).hexdigest()
        source = tmp_path / f"{repo}.blob"
        source.write_bytes(blob)
        with RegistryClient(registry.host, chunk_threshold=threshold, chunk_size=7_000) as client:
            status = client.upload_blob(repo, digest, len(blob), lambda s=source: s.open("rb"))
            assert status == "uploaded"
            assert client.blob_exists(repo, digest)
            client.fetch_blob(repo, digest, tmp_path / f"{repo}.out", size=len(blob))
        assert (tmp_path / f"{repo}.out").read_bytes() == blob
        fetched = subprocess.run(
            [find_tool("crane"), "blob", "--insecure", registry.ref(f"{repo}@{digest}")],
            capture_output=True,
            check=True,
        ).stdout
        assert fetched == blob


def test_push_layout_with_a_big_layer_goes_in_chunks(
    docker_registry: RunningRegistry, tmp_path: Path
) -> None:
    built = make_layout(tmp_path / "layout", big_layer_bytes=200_000)
    ref = docker_registry.ref("big/img:v1")
    digest = push_layout(built.root, ref, chunk_threshold=64 * 1024, chunk_size=50_000)
    assert crane("digest", "--insecure", ref).strip() == digest
    assert pull(ref, tmp_path / "pulled") == digest
    assert_layout_blobs_valid(tmp_path / "pulled")


def test_second_push_uploads_nothing(docker_registry: RunningRegistry, tmp_path: Path) -> None:
    built = make_layout(tmp_path / "layout")
    ref = docker_registry.ref("test/again:v1")
    first, progress = counter()
    push_layout(built.root, ref, progress=progress)
    assert sum(line.startswith("uploaded ") for line in first) == len(built.blob_digests)
    second, progress = counter()
    assert push_layout(built.root, ref, progress=progress) == built.top_digest
    assert not [line for line in second if line.startswith("uploaded ")]
    assert sum(line.startswith("exists ") for line in second) == len(built.blob_digests)


def test_cross_repository_mount(docker_registry: RunningRegistry, tmp_path: Path) -> None:
    blob = layer_tar_gz({"a": b"mount me"})
    digest = "sha256:" + hashlib.sha256(blob).hexdigest()
    (tmp_path / "b").write_bytes(blob)
    with RegistryClient(docker_registry.host) as client:
        assert (
            client.upload_blob("one/src", digest, len(blob), lambda: (tmp_path / "b").open("rb"))
            == "uploaded"
        )
        result = client.upload_blob(
            "two/dst", digest, len(blob), lambda: (tmp_path / "b").open("rb"), mount_from="one/src"
        )
        assert result == "mounted"
        assert client.blob_exists("two/dst", digest)


def test_tampered_local_blob_is_refused_and_nothing_is_tagged(
    docker_registry: RunningRegistry, tmp_path: Path
) -> None:
    built = make_layout(tmp_path / "layout")
    victim = built.root / "blobs/sha256" / built.blob_digests[0].split(":")[1]
    data = bytearray(victim.read_bytes())
    data[-1] ^= 0xFF
    victim.write_bytes(bytes(data))
    ref = docker_registry.ref("test/tampered:v1")
    with pytest.raises(RegistryError, match="does not match its descriptor") as info:
        push_layout(built.root, ref)
    assert built.blob_digests[0] in str(info.value)
    with RegistryClient(docker_registry.host) as client:
        with pytest.raises(RegistryError, match=r"NAME_UNKNOWN|MANIFEST_UNKNOWN"):
            client.get_manifest("test/tampered", "v1")
        assert not client.blob_exists("test/tampered", built.blob_digests[0])


def test_tampered_registry_blob_is_refused_on_pull(
    docker_registry: RunningRegistry, tmp_path: Path
) -> None:
    built = make_layout(tmp_path / "layout")
    ref = docker_registry.ref("test/img:v1")
    push_layout(built.root, ref)
    layer = next(
        d for d in built.blob_digests if docker_registry.blob_data_path(d).stat().st_size > 100
    )
    stored = docker_registry.blob_data_path(layer)
    data = bytearray(stored.read_bytes())
    data[10] ^= 0xFF
    stored.write_bytes(bytes(data))
    out = tmp_path / "pulled"
    with pytest.raises(RegistryError, match="downloaded blob has digest") as info:
        pull(ref, out)
    assert layer in str(info.value)
    assert not (out / "blobs/sha256" / layer.split(":")[1]).exists()
    assert not [p for p in (out / "blobs/sha256").iterdir() if p.name.startswith(".")]
    assert json.loads((out / "index.json").read_text())["manifests"] == []


@pytest.mark.parametrize("name", ["golden", "base_image", "top_image"])
def test_apko_layouts_push_like_crane(
    name: str, third_party: Path, docker_registry: RunningRegistry, tmp_path: Path
) -> None:
    # apko's layouts: index.json is the multi-arch index itself (two platform manifests)
    layout = third_party / "chainguard-dev+apko/internal/cli/testdata" / name
    expected = "sha256:" + hashlib.sha256((layout / "index.json").read_bytes()).hexdigest()
    ours = docker_registry.ref(f"apko/{name}:ours")
    assert push_layout(layout, ours) == expected
    theirs = docker_registry.ref(f"apko/{name}:crane")
    crane("push", "--insecure", "--index", str(layout), theirs)
    assert crane("digest", "--insecure", theirs).strip() == expected
    assert crane("digest", "--insecure", ours).strip() == expected
    inspected = json.loads(skopeo("inspect", "--tls-verify=false", f"docker://{ours}"))
    assert inspected["Digest"] == expected
    assert pull(ours, tmp_path / "pulled") == expected
    assert_layout_blobs_valid(tmp_path / "pulled")


def test_several_manifests_with_platforms_push_index_json_verbatim(
    docker_registry: RunningRegistry, tmp_path: Path
) -> None:
    built = make_layout(tmp_path / "layout", flat=True)
    expected = "sha256:" + hashlib.sha256((built.root / "index.json").read_bytes()).hexdigest()
    assert push_layout(built.root, docker_registry.ref("flat/verbatim:v1")) == expected


def test_several_manifests_without_platforms_get_a_built_index(
    docker_registry: RunningRegistry, tmp_path: Path
) -> None:
    built = make_layout(tmp_path / "layout", flat=True)
    # drop the platform from one descriptor: it must then come from the image config
    index = json.loads((built.root / "index.json").read_text())
    del index["manifests"][1]["platform"]
    (built.root / "index.json").write_text(json.dumps(index))
    ref = docker_registry.ref("flat/img:v1")
    digest = push_layout(built.root, ref)
    pushed = json.loads(crane("manifest", "--insecure", ref))
    assert pushed["mediaType"] == "application/vnd.oci.image.index.v1+json"
    assert [(m["digest"], m["platform"]["architecture"]) for m in pushed["manifests"]] == [
        (built.manifest_digests["amd64"], "amd64"),
        (built.manifest_digests["arm64"], "arm64"),
    ]
    assert crane("digest", "--insecure", ref).strip() == digest


def test_tags_and_resolve(docker_registry: RunningRegistry, tmp_path: Path) -> None:
    built = make_layout(tmp_path / "layout")
    for tag in ("v2", "v1", "latest"):
        push_layout(built.root, docker_registry.ref(f"test/tags:{tag}"))
    with RegistryClient(docker_registry.host) as client:
        assert sorted(client.list_tags("test/tags")) == ["latest", "v1", "v2"]
        assert sorted(client.list_tags("test/tags", page_size=1)) == ["latest", "v1", "v2"]
        assert client.resolve("test/tags", "v1") == built.top_digest


def test_pull_by_digest_and_docker_schema2(
    docker_registry: RunningRegistry, tmp_path: Path
) -> None:
    layer = layer_tar_gz({"hello": b"docker"})
    config = json.dumps(
        {"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}}
    ).encode()
    blobs = {}
    for name, data in (("layer", layer), ("config", config)):
        (tmp_path / name).write_bytes(data)
        blobs[name] = ("sha256:" + hashlib.sha256(data).hexdigest(), len(data))
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": DOCKER_MANIFEST,
            "config": {
                "mediaType": "application/vnd.docker.container.image.v1+json",
                "digest": blobs["config"][0],
                "size": blobs["config"][1],
            },
            "layers": [
                {
                    "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
                    "digest": blobs["layer"][0],
                    "size": blobs["layer"][1],
                }
            ],
        }
    ).encode()
    with RegistryClient(docker_registry.host) as client:
        for name, (digest, size) in blobs.items():
            client.upload_blob(
                "docker/img", digest, size, lambda path=tmp_path / name: path.open("rb")
            )
        digest = client.put_manifest("docker/img", "d1", manifest, DOCKER_MANIFEST)
    assert crane("digest", "--insecure", docker_registry.ref("docker/img:d1")).strip() == digest
    out = tmp_path / "pulled"
    assert pull(docker_registry.ref(f"docker/img@{digest}"), out) == digest
    [entry] = json.loads((out / "index.json").read_text())["manifests"]
    assert entry["mediaType"] == DOCKER_MANIFEST
    assert entry["annotations"][REF_NAME] == docker_registry.ref(f"docker/img@{digest}")
    assert_layout_blobs_valid(out)
    assert json.loads(skopeo("inspect", f"oci:{out}"))["Digest"] == digest


def test_errors_name_reference_and_registry_error(
    docker_registry: RunningRegistry, tmp_path: Path
) -> None:
    built = make_layout(tmp_path / "layout")
    push_layout(built.root, docker_registry.ref("test/img:v1"))
    with pytest.raises(RegistryError) as info:
        pull(docker_registry.ref("test/img:nope"), tmp_path / "out")
    message = str(info.value)
    assert docker_registry.ref("test/img:nope") in message
    assert "MANIFEST_UNKNOWN" in message and "manifest unknown" in message


def test_crane_pushed_index_pulls_with_same_digest(
    crane_registry: RunningRegistry, tmp_path: Path
) -> None:
    built = make_layout(tmp_path / "layout")
    ref = crane_registry.ref("crane/img:v1")
    crane("push", "--insecure", "--index", str(built.root), ref)
    crane_digest = crane("digest", "--insecure", ref).strip()
    out = tmp_path / "pulled"
    assert pull(ref, out) == crane_digest
    assert_layout_blobs_valid(out)
    # and ours back into crane's registry under another tag gives the same digest
    assert push_layout(out, crane_registry.ref("crane/img:v2")) == crane_digest


def test_plain_http_push_to_non_loopback_refused(tmp_path: Path) -> None:
    built: BuiltLayout = make_layout(tmp_path / "layout")
    before = {p: p.read_bytes() for p in sorted(built.root.rglob("*")) if p.is_file()}
    with pytest.raises(RegistryError, match="refusing plain http"):
        push_layout(built.root, "192.0.2.1:5000/x:y", plain_http=True)
    after = {p: p.read_bytes() for p in sorted(built.root.rglob("*")) if p.is_file()}
    assert after == before and before  # layout untouched
