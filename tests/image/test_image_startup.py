"""``image build`` start-up (issue 18): the whole process imports only what the build uses.

Typer and Click (a plain command line, cli/image_run.py), pydantic (a simple config,
imageconfig/quick.py), Rich (progress lines) and cryptography.x509 (``certificates:``) cost
~0.55 s of a ~1 s build; a plain build of a simple config, printing progress to a log, loads none
of them, and the lines it prints are the ones Rich printed.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from image_testlib import Pkg, build_repo, make_key

from nanodistro.cli.image_run import _plain_line

CONFIG = """\
contents:
  keyring: [./keys/test-image.rsa.pub]
  repositories: [./repo]
  packages: [app]
archs: [amd64]
"""

# Run the CLI as the console script does (main(argv), so the process is not ended for it) and
# report the modules.
_PROBE = """
import json, sys
from nanodistro.cli import main
code = 0
try:
    main(sys.argv[1:])
except SystemExit as exit:
    code = exit.code if isinstance(exit.code, int) else 1
sys.stdout.flush()
sys.stderr.write("\\n@@" + json.dumps({"code": code, "modules": sorted(sys.modules)}))
"""


def _without_rich_env() -> dict[str, str]:
    return {
        k: v
        for k, v in os.environ.items()
        if k not in ("FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE", "COLUMNS")
    }


def test_image_build_loads_neither_rich_nor_x509_and_prints_the_same_lines(
    tmp_path: Path,
) -> None:
    packages = [
        Pkg("base", files={"etc/passwd": b"root:x:0:0:root:/root:/bin/sh\n"}),
        Pkg("app", depends=["base"], files={"usr/bin/app": b"#!/bin/sh\necho hi\n"}),
    ]
    build_repo(tmp_path / "repo", packages, make_key(tmp_path / "keys"), archs=("x86_64",))
    (tmp_path / "img.yaml").write_text(CONFIG)
    out = tmp_path / "out"
    result = subprocess.run(
        [sys.executable, "-c", _PROBE, "image", "build", "img.yaml", "-o", str(out)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=_without_rich_env(),
        timeout=120,
        check=False,
    )
    stderr, _, report = result.stderr.rpartition("\n@@")
    data = json.loads(report)
    assert data["code"] == 0, stderr
    modules = set(data["modules"])
    assert (out / "index.json").is_file()
    # the progress lines, exactly as Rich printed them to a non-terminal
    assert stderr.splitlines() == [
        "install base-1.0-r0 (x86_64)",
        "install app-1.0-r0 (x86_64)",
        "assemble x86_64: 2 packages",
    ]
    heavy = ("rich", "cryptography.x509", "nanodistro.trust.keys", "pydantic", "typer", "click")
    assert [m for m in heavy if m in modules or any(n.startswith(m + ".") for n in modules)] == []


@pytest.mark.parametrize(
    "message",
    [
        "install pkg00-1.0-r0 (x86_64)",
        "warning: the lock file was made for a different config (checksum differs)",
        "a" * 159,
        "[bold]not markup[/bold] x  y",
        "ratio 1:2 and 3:4",
    ],
)
def test_plain_lines_are_what_rich_prints(message: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from rich.console import Console

    for name in ("FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE", "COLUMNS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    assert _plain_line(message)
    buffer = io.StringIO()
    Console(file=buffer, width=160).print(message, style="dim", highlight=False, markup=False)
    assert buffer.getvalue() == message + "\n"


@pytest.mark.parametrize(
    "message",
    ["b" * 160, "see :thumbs_up: here", "http://example.com:8080/x", "tab\there", "ünïcode"],
)
def test_lines_rich_could_change_still_go_through_rich(
    message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE", "COLUMNS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    assert not _plain_line(message)


def test_forced_colour_goes_through_rich(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    monkeypatch.setenv("FORCE_COLOR", "1")
    assert not _plain_line("install pkg00-1.0-r0 (x86_64)")
