"""Real registries on 127.0.0.1 for tests: Debian's ``docker-registry`` and ``crane registry serve``.

Use the fixtures from any test module (tests/ is on sys.path, there is no tests package)::

    from registry_server import docker_registry  # noqa: F401  (pytest fixture)

    def test_x(docker_registry):
        ref = docker_registry.ref("repo:tag")   # "127.0.0.1:PORT/repo:tag"

or start one with options (Basic auth from an htpasswd file, bearer-token auth)::

    with start_docker_registry(tmp_path, htpasswd={"alice": "secret"}) as registry: ...
    with TokenServer(users={"alice": "secret"}) as tokens, \\
         start_docker_registry(tmp_path, token_server=tokens) as registry: ...

``TokenServer`` is a minimal token issuer (docs/spec/auth/token.md of distribution): it answers
``GET /token?service=&scope=`` with an ES256 JWT carrying an ``x5c`` self-signed certificate that
the registry trusts via ``rootcertbundle``; it grants every requested scope to a known user and
refuses everyone else.
"""

from __future__ import annotations

import base64
import contextlib
import http.server
import json
import os
import shutil
import socket
import subprocess
import threading
import time
import urllib.parse
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from signing_keys import self_signed

REPO_ROOT = Path(__file__).resolve().parents[1]
TOOLS_BIN = REPO_ROOT / ".tools" / "bin"


def find_tool(name: str) -> str:
    """Path of a real client (PATH first, then .tools/bin); fail the test if it is missing."""
    found = shutil.which(name) or shutil.which(name, path=str(TOOLS_BIN))
    if not found:
        pytest.fail(f"{name} not found on PATH or in {TOOLS_BIN} (run `make sysdeps tools`)")
    return found


def free_port() -> int:
    """A port nothing listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class RunningRegistry:
    host: str  # "127.0.0.1:PORT"
    storage: Path | None
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    def ref(self, name: str) -> str:
        """``"repo:tag"`` -> ``"127.0.0.1:PORT/repo:tag"``."""
        return f"{self.host}/{name}"

    def blob_data_path(self, digest: str) -> Path:
        """Where docker-registry's filesystem driver keeps a blob (to tamper with it in tests)."""
        assert self.storage is not None
        algorithm, hexdigest = digest.split(":", 1)
        return (
            self.storage
            / "docker/registry/v2/blobs"
            / algorithm
            / hexdigest[:2]
            / hexdigest
            / "data"
        )


def _wait_ready(process: subprocess.Popen[bytes], url: str, log: Path, ok: tuple[int, ...]) -> bool:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        try:
            if httpx.get(url, timeout=1.0, verify=False).status_code in ok:
                return True
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    process.kill()
    raise RuntimeError(f"registry at {url} not ready in 20 s; log:\n{log.read_text()[-2000:]}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def write_htpasswd(path: Path, users: dict[str, str]) -> Path:
    """A bcrypt htpasswd file (the only hash docker-registry's htpasswd auth accepts)."""
    import bcrypt

    lines = [
        f"{user}:{bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4)).decode()}"
        for user, password in users.items()
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def write_self_signed_tls(workdir: Path) -> tuple[Path, Path]:
    """A self-signed ECDSA certificate for 127.0.0.1/localhost: (tls.crt, tls.key)."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    key, certificate = self_signed(
        "127.0.0.1",
        days=2,
        san=[x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")],
    )
    cert_path, key_path = workdir / "tls.crt", workdir / "tls.key"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@contextlib.contextmanager
def start_docker_registry(
    workdir: Path,
    *,
    htpasswd: dict[str, str] | None = None,
    token_server: TokenServer | None = None,
    tls: bool = False,
) -> Iterator[RunningRegistry]:
    """Run Debian's docker-registry (distribution 2.8) with filesystem storage in ``workdir``.
    With ``tls`` it serves HTTPS with a self-signed certificate for 127.0.0.1 (its PEM is
    ``workdir / "tls.crt"``)."""
    binary = find_tool("docker-registry")
    workdir.mkdir(parents=True, exist_ok=True)
    storage = workdir / "storage"
    storage.mkdir(exist_ok=True)
    auth: dict[str, object] = {}
    if htpasswd is not None:
        auth = {
            "htpasswd": {
                "realm": "nanodistro-test",
                "path": str(write_htpasswd(workdir / "htpasswd", htpasswd)),
            }
        }
    elif token_server is not None:
        auth = {"token": token_server.registry_auth_config(workdir)}
    http_tls = {}
    if tls:
        certificate, key = write_self_signed_tls(workdir)
        http_tls = {"tls": {"certificate": str(certificate), "key": str(key)}}
    for _attempt in range(3):
        port = free_port()
        config = {
            "version": 0.1,
            "log": {"level": "warn", "accesslog": {"disabled": True}},
            "storage": {"filesystem": {"rootdirectory": str(storage)}, "delete": {"enabled": True}},
            "http": {"addr": f"127.0.0.1:{port}", "secret": "nanodistro-test", **http_tls},
            **({"auth": auth} if auth else {}),
        }
        config_path = workdir / "config.yml"
        config_path.write_text(json.dumps(config))  # JSON is YAML
        log = workdir / "registry.log"
        with log.open("wb") as log_handle:
            process = subprocess.Popen(
                [binary, "serve", str(config_path)],
                stdout=log_handle,
                stderr=subprocess.STDOUT,
                env={**os.environ, "OTEL_TRACES_EXPORTER": "none"},
            )
        try:
            scheme = "https" if tls else "http"
            if _wait_ready(process, f"{scheme}://127.0.0.1:{port}/v2/", log, ok=(200, 401)):
                yield RunningRegistry(f"127.0.0.1:{port}", storage, process, log)
                return
        finally:
            _stop(process)
    raise RuntimeError(f"docker-registry did not start; log:\n{log.read_text()[-2000:]}")


@contextlib.contextmanager
def start_crane_registry(workdir: Path) -> Iterator[RunningRegistry]:
    """Run ``crane registry serve`` (go-containerregistry's in-memory registry)."""
    binary = find_tool("crane")
    workdir.mkdir(parents=True, exist_ok=True)
    for _attempt in range(3):
        port = free_port()
        log = workdir / "crane-registry.log"
        with log.open("wb") as log_handle:
            process = subprocess.Popen(
                [binary, "registry", "serve", "--address", f"127.0.0.1:{port}"],
                stdout=log_handle,
                stderr=subprocess.STDOUT,
            )
        try:
            if _wait_ready(process, f"http://127.0.0.1:{port}/v2/", log, ok=(200,)):
                yield RunningRegistry(f"127.0.0.1:{port}", None, process, log)
                return
        finally:
            _stop(process)
    raise RuntimeError(f"crane registry did not start; log:\n{log.read_text()[-2000:]}")


@pytest.fixture
def docker_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningRegistry]:
    with start_docker_registry(tmp_path_factory.mktemp("docker-registry")) as registry:
        yield registry


@pytest.fixture
def crane_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningRegistry]:
    with start_crane_registry(tmp_path_factory.mktemp("crane-registry")) as registry:
        yield registry


# -- bearer tokens ----------------------------------------------------------------------------


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


@dataclass
class TokenServer:
    """A token issuer on 127.0.0.1 for docker-registry's ``auth: token``."""

    users: dict[str, str]
    service: str = "nanodistro-test-registry"
    issuer: str = "nanodistro-test-issuer"
    requests: list[dict[str, object]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._key, self._cert = self_signed(self.issuer, days=2, ca=True)
        self._server: http.server.ThreadingHTTPServer | None = None

    @property
    def realm(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}/token"

    def registry_auth_config(self, workdir: Path) -> dict[str, str]:
        from cryptography.hazmat.primitives.serialization import Encoding

        bundle = workdir / "token-root.pem"
        bundle.write_bytes(self._cert.public_bytes(Encoding.PEM))
        return {
            "realm": self.realm,
            "service": self.service,
            "issuer": self.issuer,
            "rootcertbundle": str(bundle),
        }

    def issue(self, subject: str, scopes: list[str]) -> str:
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
        from cryptography.hazmat.primitives.serialization import Encoding

        access = []
        for scope in scopes:
            kind, _, rest = scope.partition(":")
            name, _, actions = rest.rpartition(":")
            access.append({"type": kind, "name": name, "actions": actions.split(",")})
        now = int(time.time())
        header = {
            "typ": "JWT",
            "alg": "ES256",
            "x5c": [base64.b64encode(self._cert.public_bytes(Encoding.DER)).decode()],
        }
        claims = {
            "iss": self.issuer,
            "sub": subject,
            "aud": self.service,
            "exp": now + 300,
            "nbf": now - 60,
            "iat": now,
            "jti": uuid.uuid4().hex,
            "access": access,
        }
        signing_input = (
            f"{_b64url(json.dumps(header).encode())}.{_b64url(json.dumps(claims).encode())}"
        )
        r, s = decode_dss_signature(
            self._key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256()))
        )
        return f"{signing_input}.{_b64url(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"

    def __enter__(self) -> TokenServer:
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                url = urllib.parse.urlsplit(self.path)
                query = urllib.parse.parse_qs(url.query)
                user = None
                authorization = self.headers.get("Authorization", "")
                if authorization.startswith("Basic "):
                    raw = base64.b64decode(authorization[6:]).decode()
                    name, _, password = raw.partition(":")
                    if outer.users.get(name) == password:
                        user = name
                outer.requests.append({"user": user, "query": query})
                if url.path != "/token" or user is None:
                    self.send_response(401)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                token = outer.issue(user, query.get("scope", []))
                body = json.dumps({"token": token, "expires_in": 300}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *_exc: object) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
