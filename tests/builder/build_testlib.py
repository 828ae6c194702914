"""Helpers for builder tests: an upstream HTTP server on 127.0.0.1 and generated tarballs."""

from __future__ import annotations

import gzip
import hashlib
import http.server
import io
import tarfile
from dataclasses import dataclass, field
from pathlib import Path


class _Handler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # silence test output
        pass


@dataclass
class Upstream:
    """A directory served over HTTP on 127.0.0.1; ``requests`` counts GETs per path."""

    root: Path
    base_url: str
    requests: list[str] = field(default_factory=list)

    def add_tarball(
        self,
        name: str,
        files: dict[str, str | bytes],
        *,
        mtime: int = 1_700_000_000,
        modes: dict[str, int] | None = None,
        top: str | None = None,
    ) -> tuple[str, str]:
        """Write ``name`` (a .tar.gz with ``files`` under ``top/``); return (url, sha256)."""
        data = make_tarball(files, mtime=mtime, modes=modes or {}, top=top)
        (self.root / name).write_bytes(data)
        return f"{self.base_url}/{name}", hashlib.sha256(data).hexdigest()


def make_tarball(
    files: dict[str, str | bytes], *, mtime: int, modes: dict[str, int], top: str | None
) -> bytes:
    buffer = io.BytesIO()
    # fixed gzip mtime so the same inputs give the same bytes
    with (
        gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0) as gz,
        tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar,
    ):
        for path in sorted(files):
            content = files[path]
            raw = content.encode() if isinstance(content, str) else content
            info = tarfile.TarInfo(f"{top}/{path}" if top else path)
            info.size = len(raw)
            info.mtime = mtime
            info.mode = modes.get(path, 0o755 if raw.startswith(b"#!") else 0o644)
            tar.addfile(info, io.BytesIO(raw))
    return buffer.getvalue()


# --- upstream-style projects -------------------------------------------------------------------

CONFIGURE = """#!/bin/sh
# hand-written configure: takes the autoconf options the pipeline passes, writes config.mk
prefix=/usr
for arg in "$@"; do
  case "$arg" in
    --prefix=*) prefix="${arg#--prefix=}" ;;
    --host=*|--build=*|--sysconfdir=*|--libdir=*|--mandir=*|--infodir=*|--localstatedir=*) ;;
    *) echo "configure: unknown option $arg" >&2; exit 1 ;;
  esac
done
echo "PREFIX=$prefix" > config.mk
echo "configured with prefix $prefix"
"""

GREET_MAKEFILE = """include config.mk
CC ?= cc
all: greet libgreet.so.1
libgreet.so.1: greet.c greet.h
\t$(CC) -O2 -shared -fPIC -Wl,-soname,libgreet.so.1 -o $@ greet.c
greet: main.c libgreet.so.1
\t$(CC) -O2 -o $@ main.c libgreet.so.1
install: all
\tinstall -Dm755 greet $(DESTDIR)$(PREFIX)/bin/greet
\tinstall -Dm755 libgreet.so.1 $(DESTDIR)$(PREFIX)/lib/libgreet.so.1
\tln -sf libgreet.so.1 $(DESTDIR)$(PREFIX)/lib/libgreet.so
\tinstall -Dm644 greet.h $(DESTDIR)$(PREFIX)/include/greet.h
\tinstall -Dm644 greet.pc $(DESTDIR)$(PREFIX)/lib/pkgconfig/greet.pc
\tinstall -Dm644 greet.1 $(DESTDIR)$(PREFIX)/share/man/man1/greet.1
"""


def greet_project(version: str = "1.0", *, pc_requires: str = "") -> dict[str, str | bytes]:
    """A small C library + program with a hand-written configure and a Makefile; its greet.pc
    has ``Requires.private: <pc_requires>`` when given (a dependency the -dev package gets)."""
    return {
        "configure": CONFIGURE,
        "Makefile": GREET_MAKEFILE,
        "greet.h": "const char *greeting(void);\n",
        "greet.c": f'#include "greet.h"\nconst char *greeting(void) {{ return "hello {version}"; }}\n',
        "main.c": '#include <stdio.h>\n#include "greet.h"\n'
        "int main(void) { puts(greeting()); return 0; }\n",
        "greet.pc": f"prefix=/usr\nlibdir=${{prefix}}/lib\nName: greet\nDescription: greetings\n"
        f"Version: {version}\n"
        + (f"Requires.private: {pc_requires}\n" if pc_requires else "")
        + "Libs: -L${libdir} -lgreet\n",
        "greet.1": ".TH GREET 1\n.SH NAME\ngreet \\\\- say hello\n",
    }


APP_MAKEFILE = """include config.mk
all: shout
shout: shout.c
\t$(CC) -O2 -o $@ shout.c $$(pkg-config --cflags --libs greet)
install: all
\tinstall -Dm755 shout $(DESTDIR)$(PREFIX)/bin/shout
"""


def app_project() -> dict[str, str | bytes]:
    """A program that builds against libgreet (found with pkg-config)."""
    return {
        "configure": CONFIGURE,
        "Makefile": APP_MAKEFILE,
        "shout.c": "#include <stdio.h>\n#include <greet.h>\n"
        'int main(void) { printf("%s!\\n", greeting()); return 0; }\n',
    }


def greet_recipe(
    url: str, sha: str, *, test: str = "greet | grep -qx 'hello 1.0'", extra_steps: str = ""
) -> str:
    return f"""package:
  name: greet
  version: "1.0"
  epoch: 0
  description: a greeting library
  url: https://example.org/greet
  copyright:
    - license: MIT
environment:
  contents:
    packages:
      - build-base
      - busybox
pipeline:
  - uses: fetch
    with:
      uri: {url}
      expected-sha256: {sha}
  - uses: autoconf/configure
  - uses: autoconf/make
  - uses: autoconf/make-install
{extra_steps}  - uses: strip
subpackages:
  - name: greet-dev
    description: greet headers
    pipeline:
      - uses: split/dev
    test:
      environment:
        contents:
          packages: [build-base]  # the host's sh (closed-world tests mount only what is named)
      pipeline:
        - runs: test -f /usr/include/greet.h
  - name: greet-doc
    pipeline:
      - uses: split/manpages
test:
  environment:
    contents:
      packages: [build-base]  # the host's sh, grep and C library (greet links against glibc)
  pipeline:
    - runs: {test}
"""
