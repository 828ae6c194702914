"""A published repository served over HTTP on 127.0.0.1 is consumable by the repository client
(index signature-checked, every package matching the identity and size its index gives)."""

from __future__ import annotations

import functools
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from fixture_paths import THIRD_PARTY
from nanodistro.repo import publish
from nanodistro.resolve.repositories import RepositoryClient, RepositoryRef
from nanodistro.trust.keys import generate_key, load_keyring, load_signing_key

APKO_PACKAGES = THIRD_PARTY / "chainguard-dev+apko/internal/cli/testdata/packages"


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture()
def served(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield root, f"http://127.0.0.1:{server.server_address[1]}/repo"
    finally:
        server.shutdown()
        server.server_close()


def test_served_repository_verifies_end_to_end(served, tmp_path):
    root, url = served
    private, public = generate_key("serve", tmp_path / "keys", bits=2048)
    key = load_signing_key(private)
    melange = load_keyring(APKO_PACKAGES / "melange.rsa.pub")  # the fixtures' signer
    publish(sorted(APKO_PACKAGES.glob("*/*.apk")), root / "repo", key, melange)
    keyring = load_keyring(public)
    with RepositoryClient(keyring) as client:
        for arch in ("x86_64", "aarch64"):
            index = client.fetch_index(RepositoryRef(url), arch)
            assert index.verified_by == public.name
            assert len(index.packages) == 4
            for info in index.packages:
                data = client.fetch_package(RepositoryRef(url), arch, info)
                assert len(data) == info.file_size
