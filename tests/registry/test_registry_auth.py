"""Basic (htpasswd) and bearer-token auth against a real docker-registry."""

from __future__ import annotations

import base64
import json
import subprocess
from pathlib import Path

import pytest
from registry_testdata import make_layout

from nanodistro.errors import RegistryError
from nanodistro.registry import RegistryClient, pull, push_layout
from registry_server import TokenServer, find_tool, start_docker_registry

USERS = {"alice": "s3cret-pass"}


def skopeo_inspect(ref: str, *extra: str) -> dict[str, object]:
    result = subprocess.run(
        [find_tool("skopeo"), "inspect", "--tls-verify=false", *extra, f"docker://{ref}"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    document: dict[str, object] = json.loads(result.stdout)
    return document


def test_basic_auth_with_htpasswd(tmp_path: Path) -> None:
    built = make_layout(tmp_path / "layout")
    no_config = tmp_path / "no-docker-config.json"
    with start_docker_registry(tmp_path / "reg", htpasswd=USERS) as registry:
        ref = registry.ref("private/img:v1")
        with pytest.raises(RegistryError, match="requires a username and password"):
            push_layout(built.root, ref, docker_config=no_config)
        with pytest.raises(RegistryError, match="refused the credentials"):
            push_layout(
                built.root, ref, username="alice", password="wrong", docker_config=no_config
            )
        digest = push_layout(built.root, ref, username="alice", password=USERS["alice"])
        assert digest == built.top_digest
        inspected = skopeo_inspect(ref, "--creds", f"alice:{USERS['alice']}")
        assert inspected["Digest"] == digest
        # credentials from a docker config.json ``auths`` entry
        config = tmp_path / "docker" / "config.json"
        config.parent.mkdir()
        token = base64.b64encode(f"alice:{USERS['alice']}".encode()).decode()
        config.write_text(json.dumps({"auths": {registry.host: {"auth": token}}}))
        assert pull(ref, tmp_path / "pulled", docker_config=config) == digest
        with RegistryClient(registry.host, docker_config=config) as client:
            assert client.list_tags("private/img") == ["v1"]


def test_bearer_token_flow(tmp_path: Path) -> None:
    built = make_layout(tmp_path / "layout")
    no_config = tmp_path / "no-docker-config.json"
    with (
        TokenServer(users=USERS) as tokens,
        start_docker_registry(tmp_path / "reg", token_server=tokens) as registry,
    ):
        ref = registry.ref("tokened/img:v1")
        with pytest.raises(RegistryError, match="token server refused"):
            push_layout(built.root, ref, docker_config=no_config)
        digest = push_layout(
            built.root, ref, username="alice", password=USERS["alice"], docker_config=no_config
        )
        assert digest == built.top_digest
        granted = [r for r in tokens.requests if r["user"] == "alice"]
        assert granted, "no token was requested with the credentials"
        scopes = {s for r in granted for s in r["query"]["scope"]}  # type: ignore[index]
        assert "repository:tokened/img:pull,push" in scopes
        assert {tuple(r["query"]["service"]) for r in granted} == {(tokens.service,)}  # type: ignore[index]
        # the token is reused: far fewer token requests than registry requests
        assert len(granted) <= 3
        out = tmp_path / "pulled"
        assert (
            pull(ref, out, username="alice", password=USERS["alice"], docker_config=no_config)
            == digest
        )
        inspected = skopeo_inspect(ref, "--creds", f"alice:{USERS['alice']}")
        assert inspected["Digest"] == digest
