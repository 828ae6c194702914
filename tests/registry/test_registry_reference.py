"""Reference grammar, challenge parsing, docker config credentials, plain-http refusal."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from nanodistro.errors import RegistryError
from nanodistro.registry import RegistryClient, parse_reference
from nanodistro.registry.auth import credentials_from_docker_config, parse_challenge

DIGEST = "sha256:" + "ab" * 32


@pytest.mark.parametrize(
    ("text", "registry", "repository", "tag", "digest"),
    [
        ("alpine", "docker.io", "library/alpine", "latest", None),
        ("alpine:3.20", "docker.io", "library/alpine", "3.20", None),
        ("index.docker.io/foo/bar", "docker.io", "foo/bar", "latest", None),
        ("cgr.dev/chainguard/static:latest", "cgr.dev", "chainguard/static", "latest", None),
        ("localhost/a", "localhost", "a", "latest", None),
        ("localhost:5000/a/b-c_d.e:t", "localhost:5000", "a/b-c_d.e", "t", None),
        ("127.0.0.1:5000/repo@" + DIGEST, "127.0.0.1:5000", "repo", None, DIGEST),
        ("127.0.0.1:5000/repo:v1@" + DIGEST, "127.0.0.1:5000", "repo", "v1", DIGEST),
        ("[::1]:5000/repo:v1", "[::1]:5000", "repo", "v1", None),
        ("ghcr.io/a__b/c--d", "ghcr.io", "a__b/c--d", "latest", None),
    ],
)
def test_parse_reference(
    text: str, registry: str, repository: str, tag: str | None, digest: str | None
) -> None:
    ref = parse_reference(text)
    assert (ref.registry, ref.repository, ref.tag, ref.digest) == (
        registry,
        repository,
        tag,
        digest,
    )


def test_reference_round_trip_and_identifier() -> None:
    ref = parse_reference("127.0.0.1:5000/repo:v1@" + DIGEST)
    assert str(ref) == "127.0.0.1:5000/repo:v1@" + DIGEST
    assert ref.identifier == DIGEST
    assert parse_reference("alpine").api_host == "registry-1.docker.io"
    assert parse_reference("[::1]:5000/r").hostname == "::1"


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("Upper/Case", "lowercase"),
        ("host:5000/repo:bad tag", "tag"),
        ("repo@sha256:short", "digest"),
        ("https://host/repo", "scheme"),
        ("host:5000/repo/", "repository"),
        ("", "empty"),
        ("repo:" + "x" * 200, "tag"),
    ],
)
def test_parse_reference_errors_name_the_part(text: str, needle: str) -> None:
    with pytest.raises(RegistryError, match=needle):
        parse_reference(text)


def test_parse_challenge_quoted_commas() -> None:
    challenge = parse_challenge(
        'Bearer realm="https://auth.example/token",service="registry.example",'
        'scope="repository:a/b:pull,push"'
    )
    assert challenge.scheme == "bearer"
    assert challenge.params == {
        "realm": "https://auth.example/token",
        "service": "registry.example",
        "scope": "repository:a/b:pull,push",
    }
    assert parse_challenge('Basic realm="Registry Realm"').scheme == "basic"


def test_credentials_from_docker_config(tmp_path: Path) -> None:
    config = tmp_path / "config.json"
    config.write_text(
        json.dumps(
            {
                "auths": {
                    "https://index.docker.io/v1/": {
                        "auth": base64.b64encode(b"hubuser:hub:pass").decode()
                    },
                    "127.0.0.1:5000": {"username": "alice", "password": "secret"},
                    "http://other.example:8443/v2/": {"auth": base64.b64encode(b"o:p").decode()},
                }
            }
        )
    )
    hub = credentials_from_docker_config("docker.io", config)
    assert hub is not None and (hub.username, hub.password) == ("hubuser", "hub:pass")
    local = credentials_from_docker_config("127.0.0.1:5000", config)
    assert local is not None and local.username == "alice"
    other = credentials_from_docker_config("other.example:8443", config)
    assert other is not None and other.password == "p"
    assert credentials_from_docker_config("127.0.0.1:5001", config) is None
    assert credentials_from_docker_config("x", tmp_path / "missing.json") is None


def test_bad_docker_config_is_a_clear_error(tmp_path: Path) -> None:
    config = tmp_path / "config.json"
    config.write_text('{"auths": {"h:1": {"auth": "bm9jb2xvbg=="}}}')  # "nocolon"
    with pytest.raises(RegistryError, match=r"auths\.h:1"):
        credentials_from_docker_config("h:1", config)
    config.write_text("{not json")
    with pytest.raises(RegistryError, match=r"config\.json"):
        credentials_from_docker_config("h:1", config)


def test_plain_http_refused_for_non_loopback_before_connecting(tmp_path: Path) -> None:
    # 192.0.2.0/24 is TEST-NET-1: nothing answers there, so any attempt to connect would hang
    # or fail with a transport error instead of this message.
    with pytest.raises(RegistryError, match=r"refusing plain http.*insecure"):
        RegistryClient("192.0.2.1:5000", plain_http=True, docker_config=tmp_path / "none.json")
    with RegistryClient(
        "192.0.2.1:5000", plain_http=True, insecure=True, docker_config=tmp_path / "none.json"
    ):
        pass
    with RegistryClient("127.0.0.2:5000", plain_http=True, docker_config=tmp_path / "n.json"):
        pass
    with RegistryClient("localhost:5000", docker_config=tmp_path / "n.json") as client:
        assert client._schemes == ["https", "http"]  # loopback: TLS first, then plain
    with RegistryClient("registry.example", docker_config=tmp_path / "n.json") as client:
        assert client._base_url() == "https://registry.example"


def test_token_realm_over_plain_http_to_other_host_is_refused() -> None:
    import httpx

    from nanodistro.registry.auth import Authenticator, Challenge, Credentials

    auth = Authenticator("registry.example", Credentials("u", "p"))
    challenge = Challenge("bearer", {"realm": "http://192.0.2.1/token", "service": "s"})
    with httpx.Client() as http, pytest.raises(RegistryError, match="plain http"):
        auth._fetch_token(challenge, ["repository:a:pull"], http)
