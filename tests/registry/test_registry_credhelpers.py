"""Docker credential helpers (``credHelpers``, ``credsStore``): run as docker runs them, only when
a registry asks for credentials, and only ``docker-credential-<plain name>`` from PATH."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from registry_testdata import make_layout

from nanodistro.errors import RegistryError
from nanodistro.registry import RegistryClient, push_layout
from nanodistro.registry.auth import credentials_from_docker_config
from registry_server import RunningRegistry, start_docker_registry


def _helper(bin_dir: Path, name: str, body: str) -> Path:
    bin_dir.mkdir(parents=True, exist_ok=True)
    path = bin_dir / f"docker-credential-{name}"
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def _config(tmp_path: Path, document: dict[str, object]) -> Path:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(document))
    return path


@pytest.fixture
def bin_on_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return bin_dir


def test_cred_helpers_before_creds_store_before_auths(tmp_path: Path, bin_on_path: Path) -> None:
    asked = tmp_path / "asked"
    _helper(
        bin_on_path,
        "one",
        f'cat >> {asked}; echo >> {asked}; echo \'{{"Username":"u1","Secret":"p1"}}\'\n',
    )
    _helper(bin_on_path, "store", '[ "$1" = get ] && echo \'{"Username":"u2","Secret":"p2"}\'\n')
    config = _config(
        tmp_path,
        {
            "credHelpers": {"reg.example:5000": "one"},
            "credsStore": "store",
            "auths": {"reg.example:5000": {"username": "u3", "password": "p3"}},
        },
    )
    first = credentials_from_docker_config("reg.example:5000", config)
    assert first is not None and (first.username, first.password) == ("u1", "p1")
    other = credentials_from_docker_config("other.example", config)
    assert other is not None and (other.username, other.password) == ("u2", "p2")
    # Docker Hub is asked for under its v1 URL, as docker does
    _config(tmp_path, {"credHelpers": {"docker.io": "one"}})
    credentials_from_docker_config("registry-1.docker.io", config)
    assert asked.read_text().splitlines() == ["reg.example:5000", "https://index.docker.io/v1/"]


def test_helper_not_found_answer_falls_back_to_auths(tmp_path: Path, bin_on_path: Path) -> None:
    _helper(bin_on_path, "empty", "echo 'credentials not found in native keychain'; exit 1\n")
    config = _config(
        tmp_path,
        {"credsStore": "empty", "auths": {"h:1": {"username": "u", "password": "p"}}},
    )
    found = credentials_from_docker_config("h:1", config)
    assert found is not None and found.username == "u"
    assert credentials_from_docker_config("h:2", config) is None


def test_helper_failures_are_clear_and_never_echo_the_secret(
    tmp_path: Path, bin_on_path: Path
) -> None:
    _helper(bin_on_path, "broken", "echo 'keychain locked' >&2; exit 2\n")
    config = _config(tmp_path, {"credsStore": "broken"})
    with pytest.raises(RegistryError) as failed:
        credentials_from_docker_config("h:1", config)
    assert "docker-credential-broken failed for h:1 (exit 2): keychain locked" in str(failed.value)
    assert "credsStore" in str(failed.value)

    _helper(bin_on_path, "garbled", "echo 'Username=u Secret=hunter2'\n")
    _config(tmp_path, {"credsStore": "garbled"})
    with pytest.raises(RegistryError, match="without the JSON object") as garbled:
        credentials_from_docker_config("h:1", config)
    assert "hunter2" not in str(garbled.value)

    _config(tmp_path, {"credHelpers": {"h:1": "absent"}})
    with pytest.raises(RegistryError, match=r"docker-credential-absent is not on PATH"):
        credentials_from_docker_config("h:1", config)


def test_helper_name_cannot_point_outside_path(
    tmp_path: Path, bin_on_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The attack: a config naming ``a/../../evil`` makes ``docker-credential-a/../../evil``
    a relative path that resolves (through a ``docker-credential-a`` directory in the working
    directory) to a program the config's author placed; it must not run."""
    work = tmp_path / "work"
    (work / "docker-credential-a").mkdir(parents=True)
    ran = tmp_path / "ran"
    evil = tmp_path / "evil"
    evil.write_text(f'#!/bin/sh\ntouch {ran}\necho \'{{"Username":"u","Secret":"p"}}\'\n')
    evil.chmod(0o755)
    monkeypatch.chdir(work)
    assert (work / "docker-credential-a/../../evil").resolve() == evil.resolve()
    config = _config(tmp_path, {"credsStore": "a/../../evil"})
    with pytest.raises(RegistryError, match="is not a plain name"):
        credentials_from_docker_config("h:1", config)
    assert not ran.exists()


def test_anonymous_registry_never_runs_a_helper(
    tmp_path: Path, bin_on_path: Path, docker_registry: RunningRegistry
) -> None:
    """A credsStore naming a helper that is not installed (a config copied from a desktop) does
    not stop a push to a registry that asks for no credentials."""
    config = _config(tmp_path, {"credsStore": "desktop"})
    layout = make_layout(tmp_path / "layout").root
    digest = push_layout(layout, docker_registry.ref("anon/app:1"), docker_config=config)
    with RegistryClient(docker_registry.host, docker_config=config) as client:
        assert client.resolve("anon/app", "1") == digest


def test_push_authenticates_with_the_helper(tmp_path: Path, bin_on_path: Path) -> None:
    with start_docker_registry(tmp_path / "reg", htpasswd={"bob": "pw"}) as registry:
        _helper(bin_on_path, "t", '[ "$1" = get ] && echo \'{"Username":"bob","Secret":"pw"}\'\n')
        config = _config(tmp_path, {"credHelpers": {registry.host: "t"}})
        layout = make_layout(tmp_path / "layout").root
        digest = push_layout(layout, registry.ref("app:1"), docker_config=config)
        with RegistryClient(registry.host, username="bob", password="pw") as client:
            assert client.resolve("app", "1") == digest
        _helper(bin_on_path, "t", 'echo \'{"Username":"bob","Secret":"wrong"}\'\n')
        with pytest.raises(RegistryError, match="refused"):
            push_layout(layout, registry.ref("app:2"), docker_config=config)
