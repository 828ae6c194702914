"""``run_catalog`` end to end on a miniature catalog, offline.

The test makes the upstream release tarballs itself (a baselayout, a CA bundle, a static C
library with a pkg-config file, a C program using it), serves them on 127.0.0.1 as the
``mirror://upstream/`` of the workspace, writes melange recipes and apko image configs, and lets
the catalog build everything with the host's gcc in the bubblewrap sandbox. The images' smoke
tests run under runc; a second run must rebuild nothing.
"""

from __future__ import annotations

import hashlib
import http.server
import io
import json
import shutil
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from nanodistro.cli import app
from nanodistro.factory.catalog import CatalogReport, run_catalog
from nanodistro.factory.workspace import load_workspace
from nanodistro.formats.apk import read_apk
from needs_tools import require_tools
from signing_keys import self_signed_cert

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def _tools() -> None:
    # scripts/install-system-deps.sh installs them
    require_tools("bwrap", "gcc", "umoci", "runc")


MTIME = 1_700_000_000

UPSTREAMS: dict[str, dict[str, str]] = {
    "mini-baselayout-1.0": {
        "etc/os-release": 'NAME="minidistro"\nID=minidistro\n',
        "etc/passwd": "root:x:0:0:root:/root:/sbin/nologin\n"
        "nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n",
        "etc/group": "root:x:0:\nnonroot:x:65532:\n",
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


def _tarball(top: str, files: dict[str, str]) -> bytes:
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
      mkdir -p ${{targets.destdir}}/etc ${{targets.destdir}}/home/nonroot ${{targets.destdir}}/tmp
      cp etc/os-release etc/passwd etc/group ${{targets.destdir}}/etc/
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


@pytest.fixture
def upstream(tmp_path: Path) -> Iterator[tuple[str, dict[str, str]]]:
    """Release tarballs served on 127.0.0.1; yields (base URL, sha256 by release)."""
    served = tmp_path / "upstream"
    served.mkdir()
    releases = dict(UPSTREAMS)
    releases["ca-certs-2024.1"] = {"bundle.pem": _ca_bundle()}
    digests = {}
    for release, files in releases.items():
        data = _tarball(release, files)
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


def _write_workspace(root: Path, base_url: str, digests: dict[str, str]) -> Path:
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


def _by_name(report: CatalogReport) -> tuple[dict[str, str], dict[str, str]]:
    return (
        {r.name: r.status for r in report.recipes},
        {i.name: i.status for i in report.images},
    )


def test_mini_catalog_builds_runs_and_rebuilds_nothing(
    tmp_path: Path, upstream: tuple[str, dict[str, str]]
) -> None:
    base_url, digests = upstream
    root = _write_workspace(tmp_path / "ws", base_url, digests)
    workspace = load_workspace(root)
    messages: list[str] = []

    first = run_catalog(workspace, progress=messages.append)

    failures = [(r.name, r.error) for r in first.recipes if r.status == "failed"]
    assert not failures, failures
    assert first.key_generated and workspace.signing_key() is not None
    recipes, images = _by_name(first)
    assert recipes == dict.fromkeys(RECIPES, "built")
    # libgreet is built before hello, which needs it in its build environment
    order = [r.name for r in first.recipes]
    assert order.index("libgreet") < order.index("hello")
    assert images == {"hello": "built", "static": "built"}, [i.error for i in first.images]
    for image in first.images:
        assert image.smoke.status == "passed", (image.name, image.smoke)
        assert image.smoke.runtime == "runc"
        assert image.digest.startswith("sha256:") and image.size > 0
        assert (Path(image.layout) / "index.json").is_file()
        assert image.sboms and all(Path(s).is_file() for s in image.sboms)
    # the static image's closure is the base layout and the certificates, nothing else
    static = next(i for i in first.images if i.name == "static")
    assert sorted(p.rsplit("-", 2)[0] for p in static.packages) == ["ca-certs", "mini-baselayout"]
    hello_image = next(i for i in first.images if i.name == "hello")
    assert sorted(p.rsplit("-", 2)[0] for p in hello_image.packages) == [
        "hello",
        "mini-baselayout",
    ]

    # the signed repository holds every package, and libgreet carries a pc: provide
    arch_dir = workspace.packages_dir / "x86_64"
    assert (arch_dir / "APKINDEX.tar.gz").is_file()
    names = {p.name: p for p in first.packages}
    assert set(names) == set(RECIPES)
    greet = read_apk((arch_dir / "libgreet-1.2.0-r0.apk").read_bytes(), where="libgreet")
    assert "pc:greet=1.2.0-r0" in greet.info.provides  # as melange: the package version
    # sources were fetched through the mirror, and the SBOM keeps the mirror:// URI
    assert any("downloading http://127.0.0.1" in m for m in messages)
    hello_apk = read_apk((arch_dir / "hello-2.0-r0.apk").read_bytes(), where="hello")
    sbom = next(e for e in hello_apk.entries if e.path.startswith("var/lib/db/sbom/"))
    assert b"mirror://upstream/hello-2.0.tar.gz" in sbom.data
    assert b"127.0.0.1" not in sbom.data

    # second run: nothing rebuilt, same digests, smoke tests still pass
    layouts_before = {i.name: (Path(i.layout) / "index.json").read_bytes() for i in first.images}
    apks_before = {p.name: (arch_dir / p.name).stat().st_mtime_ns for p in arch_dir.glob("*.apk")}
    result = CliRunner().invoke(app, ["catalog", "build", str(root), "--json", "--quiet"])
    assert result.exit_code == 0, result.output
    second = json.loads(result.stdout)
    assert {r["name"]: r["status"] for r in second["recipes"]} == dict.fromkeys(
        RECIPES, "unchanged"
    )
    assert {i["name"]: i["status"] for i in second["images"]} == {
        "hello": "unchanged",
        "static": "unchanged",
    }
    assert {i["name"]: i["digest"] for i in second["images"]} == {
        i.name: i.digest for i in first.images
    }
    assert all(i["smoke"]["status"] == "passed" for i in second["images"])
    assert {i.name: (Path(i.layout) / "index.json").read_bytes() for i in first.images} == (
        layouts_before
    )
    assert {
        p.name: (arch_dir / p.name).stat().st_mtime_ns for p in arch_dir.glob("*.apk")
    } == apks_before

    # from scratch again (same key, cached sources): byte-identical packages and images
    apk_bytes = {p.name: p.read_bytes() for p in arch_dir.glob("*.apk")}
    shutil.rmtree(workspace.out_dir)
    third = run_catalog(workspace)
    assert _by_name(third) == _by_name(first)
    assert {i.name: i.digest for i in third.images} == {i.name: i.digest for i in first.images}
    assert {p.name: p.read_bytes() for p in arch_dir.glob("*.apk")} == apk_bytes


def test_failed_recipe_skips_the_images_that_need_it(
    tmp_path: Path, upstream: tuple[str, dict[str, str]]
) -> None:
    base_url, digests = upstream
    digests = {**digests, "hello-2.0": "0" * 64}  # a wrong pin: the fetch must fail
    root = _write_workspace(tmp_path / "ws", base_url, digests)
    (root / "recipes" / "libgreet.yaml").unlink()
    (root / "recipes" / "ca-certs.yaml").unlink()
    (root / "images" / "static.yaml").unlink()
    (root / "recipes" / "broken.yaml").write_text("package:\n  name: broken\n  versoin: 1\n")

    report = run_catalog(load_workspace(root))

    recipes, images = _by_name(report)
    assert recipes == {"broken": "failed", "mini-baselayout": "built", "hello": "failed"}
    broken = next(r for r in report.recipes if r.name == "broken")
    assert "broken.yaml" in broken.error
    hello_recipe = next(r for r in report.recipes if r.name == "hello")
    assert "sha256" in hello_recipe.error
    assert images == {"hello": "skipped"}
    assert not report.ok
    result = CliRunner().invoke(app, ["catalog", "build", str(root), "--quiet"])
    assert result.exit_code == 1
    assert "hello" in result.stdout
