"""The miniature catalog: upstream release tarballs made here, melange recipes and apko image
configs for a tiny distribution (a base layout, a CA bundle, a static C library with a pkg-config
file, a C program using it), built with the host's gcc in the bubblewrap sandbox.

Shared by tests/factory/test_catalog_e2e.py (the factory end to end) and
tests/test_apk_reference_clients.py (the result judged by the reference apk clients).
"""

from __future__ import annotations

import contextlib
import hashlib
import http.server
import io
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path

from signing_keys import self_signed_cert

MTIME = 1_700_000_000

UPSTREAMS: dict[str, dict[str, str]] = {
    "mini-baselayout-1.0": {
        # no passwd/group: the image writes them from its accounts (a package's passwd changed
        # by the image would be a modified package file to `apk audit`)
        "etc/os-release": 'NAME="minidistro"\nID=minidistro\n',
    },
    "libgreet-1.2.0": {
        "greet.h": "const char *greet(const char *who);\n",
        "greet.c": '#include <stdio.h>\n#include "greet.h"\n'
        "static char buffer[256];\n"
        'const char *greet(const char *who) { snprintf(buffer, sizeof buffer, "hello, %s", who);'
        " return buffer; }\n",
        "greet.pc.in": "prefix=@PREFIX@\nincludedir=${prefix}/include\nlibdir=${prefix}/lib\n"
        "Name: greet\nDescription: greetings\nVersion: 1.2.0\n"
        "Cflags: -I${includedir}\nLibs: -L${libdir} -lgreet\n",
        "Makefile": "PREFIX ?= /usr\n"
        "libgreet.a: greet.o\n\tar rcs $@ $^\n"
        "install: libgreet.a\n"
        "\tinstall -D -m 0644 libgreet.a $(DESTDIR)$(PREFIX)/lib/libgreet.a\n"
        "\tinstall -D -m 0644 greet.h $(DESTDIR)$(PREFIX)/include/greet.h\n"
        "\tmkdir -p $(DESTDIR)$(PREFIX)/lib/pkgconfig\n"
        "\tsed 's|@PREFIX@|$(PREFIX)|' greet.pc.in > $(DESTDIR)$(PREFIX)/lib/pkgconfig/greet.pc\n",
    },
    "hello-2.0": {
        "hello.c": "#include <stdio.h>\n#include <greet.h>\n"
        'int main(int argc, char **argv) { puts(greet(argc > 1 ? argv[1] : "world"));'
        " return 0; }\n",
        "Makefile": "hello: hello.c\n"
        "\t$(CC) -static -O2 -o $@ hello.c $$(pkg-config --cflags --libs greet)\n"
        "install: hello\n\tinstall -D -m 0755 hello $(DESTDIR)/usr/bin/hello\n",
    },
}


def tarball(top: str, files: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, text in sorted(files.items()):
            data = text.encode()
            info = tarfile.TarInfo(f"{top}/{name}")
            info.size, info.mtime, info.mode = len(data), MTIME, 0o644
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _ca_bundle() -> str:
    """A real self-signed CA certificate in PEM, standing in for Mozilla's bundle."""
    return self_signed_cert("minidistro test root", days=3650, ca=True).decode()


RECIPES = {
    "mini-baselayout": """
package:
  name: mini-baselayout
  version: "1.0"
  epoch: 0
  description: base layout of the mini distribution
  copyright:
    - license: Apache-2.0
environment:
  contents:
    packages: [build-base]
pipeline:
  - uses: fetch
    with:
      uri: mirror://upstream/mini-baselayout-${{package.version}}.tar.gz
      expected-sha256: @mini-baselayout-1.0@
  - runs: |
      mkdir -p ${{targets.destdir}}/etc ${{targets.destdir}}/home ${{targets.destdir}}/tmp
      cp etc/os-release ${{targets.destdir}}/etc/
""",
    "ca-certs": """
package:
  name: ca-certs
  version: "2024.1"
  epoch: 0
  description: CA certificates as one PEM bundle
  copyright:
    - license: MPL-2.0
environment:
  contents:
    packages: [build-base]
pipeline:
  - uses: fetch
    with:
      uri: mirror://upstream/ca-certs-${{package.version}}.tar.gz
      expected-sha256: @ca-certs-2024.1@
  - runs: |
      install -D -m 0644 bundle.pem ${{targets.destdir}}/etc/ssl/certs/ca-certificates.crt
test:
  environment:
    contents:
      packages: [build-base]  # sh and grep: the catalog has no shell of its own
  pipeline:
    - runs: grep -q 'BEGIN CERTIFICATE' /etc/ssl/certs/ca-certificates.crt
""",
    "libgreet": """
package:
  name: libgreet
  version: 1.2.0
  epoch: 0
  description: a static greeting library with a pkg-config file
  copyright:
    - license: MIT
environment:
  contents:
    packages: [build-base]
pipeline:
  - uses: fetch
    with:
      uri: mirror://upstream/libgreet-${{package.version}}.tar.gz
      expected-sha256: @libgreet-1.2.0@
  - uses: autoconf/make
  - uses: autoconf/make-install
""",
    "hello": """
package:
  name: hello
  version: "2.0"
  epoch: 0
  description: says hello through libgreet
  copyright:
    - license: MIT
environment:
  contents:
    packages: [build-base, libgreet]
pipeline:
  - uses: fetch
    with:
      uri: mirror://upstream/hello-${{package.version}}.tar.gz
      expected-sha256: @hello-2.0@
  - uses: autoconf/make
  - uses: autoconf/make-install
test:
  environment:
    contents:
      packages: [build-base]  # sh: the catalog has no shell of its own
  pipeline:
    - runs: test "$(hello tests)" = "hello, tests"
""",
}

ACCOUNTS = """
accounts:
  run-as: nonroot
  users:
    - username: nonroot
      uid: 65532
      gid: 65532
      homedir: /home/nonroot
  groups:
    - groupname: nonroot
      gid: 65532
work-dir: /home/nonroot
"""

IMAGES = {
    "static": """
contents:
  packages: [mini-baselayout, ca-certs]
"""
    + ACCOUNTS
    + """
annotations:
  dev.nanodistro.smoke.binary: busybox-static
  dev.nanodistro.smoke.args: '["/.smoke/busybox", "sh", "-c", "grep ^ID= /etc/os-release; id -u; ls /etc/ssl/certs"]'
  dev.nanodistro.smoke.expect: "ID=minidistro\\n65532\\nca-certificates.crt"
""",
    "hello": """
contents:
  packages: [mini-baselayout, hello]
entrypoint:
  command: /usr/bin/hello
"""
    + ACCOUNTS
    + """
annotations:
  dev.nanodistro.smoke.args: '["catalog"]'
  dev.nanodistro.smoke.expect: "hello, catalog"
""",
}


@contextlib.contextmanager
def serve_upstream(directory: Path) -> Iterator[tuple[str, dict[str, str]]]:
    """Release tarballs served on 127.0.0.1 from ``directory``; yields (base URL, sha256 by
    release)."""
    served = directory / "upstream"
    served.mkdir()
    releases = dict(UPSTREAMS)
    releases["ca-certs-2024.1"] = {"bundle.pem": _ca_bundle()}
    digests = {}
    for release, files in releases.items():
        data = tarball(release, files)
        (served / f"{release}.tar.gz").write_bytes(data)
        digests[release] = hashlib.sha256(data).hexdigest()

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):  # type: ignore[no-untyped-def]
            super().__init__(*args, directory=str(served), **kwargs)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", digests
    finally:
        server.shutdown()
        server.server_close()


def write_workspace(root: Path, base_url: str, digests: dict[str, str]) -> Path:
    (root / "recipes").mkdir(parents=True)
    (root / "images").mkdir()
    for name, text in RECIPES.items():
        for release, digest in digests.items():
            text = text.replace(f"@{release}@", digest)
        (root / "recipes" / f"{name}.yaml").write_text(text.lstrip())
    for name, text in IMAGES.items():
        (root / "images" / f"{name}.yaml").write_text(text.lstrip())
    (root / "nanodistro.toml").write_text(
        f"""
[workspace]
name = "mini"
archs = ["x86_64"]

[keys]
name = "mini"

[sources]
cache = "cache"

[mirrors]
upstream = "{base_url}/"

[toolchain]
root = "/usr"
provides = ["build-base"]
"""
    )
    return root


# The factory tests watch libgreet's upstream (the loopback server) and publish new releases.
LIBGREET_UPDATE = """
update:
  enabled: true
  http-regex:
    url: {base}/
    pattern: 'libgreet-([0-9.]+)\\.tar\\.gz'
"""
GOOD_GREET = UPSTREAMS["libgreet-1.2.0"]["greet.c"].replace(
    "static char buffer[256];", "static char buffer[512]; /* a later release: a bigger buffer */"
)
BAD_GREET = UPSTREAMS["libgreet-1.2.0"]["greet.c"].replace('"hello, %s"', '"hi, %s"')


def watch_libgreet(root: Path, base_url: str) -> None:
    """Give the workspace's libgreet recipe an ``update:`` block pointing at the upstream."""
    recipe = root / "recipes" / "libgreet.yaml"
    recipe.write_text(recipe.read_text() + LIBGREET_UPDATE.format(base=base_url))


def release_libgreet(served: Path, version: str, greet_c: str = GOOD_GREET) -> Path:
    """Upstream publishes libgreet ``version`` (the 1.2.0 sources with ``greet_c``)."""
    files = dict(UPSTREAMS["libgreet-1.2.0"], **{"greet.c": greet_c})
    path = served / f"libgreet-{version}.tar.gz"
    path.write_bytes(tarball(f"libgreet-{version}", files))
    return path


def commit_workspace(root: Path) -> None:
    """Make the workspace a git work tree with one commit (the factory commits each bump)."""
    import subprocess

    def git(*args: str) -> None:
        subprocess.run(["git", "-C", str(root), *args], capture_output=True, check=True)

    git("init", "-q")
    (root / ".gitignore").write_text("out/\ncache/\n.nanodistro/\nkeys/*.rsa\nkeys/*.key\n")
    git("add", "-A")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "catalog")


def factory_once(root: Path, *extra: str) -> dict[str, object]:
    """``nanodistro factory run ROOT --once --json --quiet [extra]``: the cycle's report."""
    import json

    from typer.testing import CliRunner

    from nanodistro.cli import app

    result = CliRunner().invoke(
        app, ["factory", "run", str(root), "--once", "--json", "--quiet", *extra]
    )
    assert result.stdout.strip(), result.output
    report: dict[str, object] = json.loads(result.stdout)
    return report
