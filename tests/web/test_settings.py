"""[serve] and [webhooks] of nanodistro.toml: checked when the console starts."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from webapp import empty_workspace

from nanodistro.errors import ConfigError
from nanodistro.factory.workspace import load_workspace
from nanodistro.web.settings import DEFAULT_OUT_EVENTS, serve_settings


def settings_of(tmp_path: Path, toml: str) -> object:
    return serve_settings(load_workspace(empty_workspace(tmp_path / "ws", toml)))


def test_defaults(tmp_path: Path) -> None:
    settings = settings_of(tmp_path, "")
    assert settings.public_reads is True  # type: ignore[attr-defined]
    assert settings.interval == timedelta(minutes=10)  # type: ignore[attr-defined]
    assert settings.webhook_url is None  # type: ignore[attr-defined]
    assert settings.webhook_events == DEFAULT_OUT_EVENTS  # type: ignore[attr-defined]


def test_secrets_come_from_files(tmp_path: Path) -> None:
    (tmp_path / "ws").mkdir()
    (tmp_path / "ws" / "gh.secret").write_text("0123456789abcdef-github\n")
    settings = settings_of(
        tmp_path,
        '[webhooks]\nurl = "http://127.0.0.1:9/hook"\ngithub-secret-file = "gh.secret"\n'
        '[serve]\ninterval = "1h30m"\npublic-reads = false\n',
    )
    assert settings.github_secret == b"0123456789abcdef-github"  # type: ignore[attr-defined]
    assert settings.interval == timedelta(minutes=90)  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("toml", "field"),
    [
        ("[serve]\npublic-reads = 'yes'\n", "serve.public-reads"),
        ("[serve]\ninterval = '10 parsecs'\n", "serve.interval"),
        ("[webhooks]\nurl = 'ftp://x'\n", "webhooks.url"),
        ("[webhooks]\nevents = ['promoted', 'prmoted']\n", "webhooks.events"),
        ("[webhooks]\ngithub-secret-file = 'missing'\n", "webhooks.github-secret-file"),
        ("[serve]\nport = 1\n", "serve.port"),
    ],
)
def test_wrong_values_name_their_key(tmp_path: Path, toml: str, field: str) -> None:
    with pytest.raises(ConfigError) as error:
        settings_of(tmp_path, toml)
    assert error.value.field == field
    assert "nanodistro.toml" in str(error.value)
