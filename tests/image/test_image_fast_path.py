"""``nanodistro image build``'s Typer-free fast path (issue 18: images faster than umoci).

``cli.image_run.fast_path`` parses plain command lines itself and hands everything else to the
Typer app. Each line of the table runs both ways in this process — as ``main`` runs it, and with
the fast path switched off (Typer parses) — and must give the same exit status, stdout, stderr
and image; the table says which lines the fast path must take, so a parser that quietly declines
everything fails too.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from image_testlib import Pkg, build_repo, make_key

import nanodistro.cli.image_run as image_run
from cli_runner import run_main as run

CONFIG = """\
contents:
  keyring: [./keys/test-image.rsa.pub]
  repositories: [./repo]
  packages: [app]
archs: [amd64]
"""


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("fast-image")
    packages = [
        Pkg("base", files={"etc/passwd": b"root:x:0:0:root:/root:/bin/sh\n"}),
        Pkg("app", depends=["base"], files={"usr/bin/app": b"#!/bin/sh\necho hi\n"}),
    ]
    build_repo(root / "repo", packages, make_key(root / "keys"), archs=("x86_64",))
    (root / "img.yaml").write_text(CONFIG)
    return root


# (argv after "image build" with {cfg}/{out}/{repo}/{keys}/{world} placeholders, fast path?)
CASES: list[tuple[list[str], bool]] = [
    (["{cfg}", "-o", "{out}"], True),
    (["-o", "{out}", "{cfg}", "--source-date-epoch", "0"], True),
    (["{cfg}", "--out={out}", "--arch", "amd64", "--json"], True),
    (["{cfg}", "-o", "{out}", "--source-date-epoch=1700000000", "--tag", "v1", "-q"], True),
    (
        ["{cfg}", "-o", "{out}", "--no-workspace", "--no-sbom", "--insecure", "--allow-downgrade"],
        True,
    ),
    (["{cfg}", "-o", "{out}", "--repo", "{repo}", "--keyring", "{keys}", "--workspace"], True),
    (["{cfg}", "-o", "{out}", "--arch=arm64", "--arch", "amd64", "--cache-dir", "{world}/c"], True),
    (["{cfg}", "-o", "{out}.tar", "--quiet"], True),
    (["{cfg}", "-o", "{world}/first", "-o", "{out}", "--tag", "a", "--tag", "b"], True),
    # errors raised by the command: the same one line on stderr either way
    (["{world}/missing.yaml", "-o", "{out}"], True),
    (["{cfg}", "-o", "{out}", "--arch", "sparc"], True),
    (["{cfg}", "-o", "{out}", "--lockfile", "{world}/missing.lock"], True),
    (["{cfg}", "-o", "{out}", "--repo", "{world}/nowhere", "--json"], True),
    # Typer's: help, usage errors, --push, spellings the fast path leaves to Click
    (["--help"], False),
    (["{cfg}", "-o", "{out}", "-h"], False),
    (["{cfg}"], False),
    (["{cfg}", "-o"], False),
    (["{cfg}", "{cfg}", "-o", "{out}"], False),
    (["{cfg}", "-o{out}"], False),
    (["{cfg}", "-o", "{out}", "--source-date-epoch", "+5"], False),
    (["{cfg}", "-o", "{out}", "--source-date-epoch", "soon"], False),
    (["{cfg}", "-o", "{out}", "--json=yes"], False),
    (["{cfg}", "-o", "{out}", "--bogus"], False),
    (["{cfg}", "-o", "{out}", "--", "x"], False),
    (["{cfg}", "-o", "--json"], False),
    (["{cfg}", "-o", "{out}", "--tag", ""], False),
    ([], False),
]


def _image(out: Path) -> bytes | None:
    if out.with_suffix(".tar").is_file():
        return out.with_suffix(".tar").read_bytes()
    return (out / "index.json").read_bytes() if (out / "index.json").is_file() else None


def _clear(world: Path, out: Path) -> None:
    for path in (out, world / "first", world / "c"):
        shutil.rmtree(path, ignore_errors=True)
    out.with_suffix(".tar").unlink(missing_ok=True)


@pytest.mark.parametrize(("args", "fast"), CASES, ids=[" ".join(a) or "-" for a, _ in CASES])
def test_fast_path_and_typer_agree(
    args: list[str],
    fast: bool,
    world: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(world)
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    out = world / "out"
    values = {"cfg": "img.yaml", "out": str(out), "repo": str(world / "repo"), "world": str(world)}
    values["keys"] = str(world / "keys")
    argv = ["image", "build", *(a.format(**values) for a in args)]
    taken: list[bool] = []
    real = image_run.fast_path

    def spy(rest: list[str]) -> object:
        result = real(rest)
        taken.append(result is not None)
        return result

    _clear(world, out)
    monkeypatch.setattr(image_run, "fast_path", spy)
    fast_outcome = run(argv, capsys)
    fast_image = _image(out)
    assert taken == [fast]

    _clear(world, out)
    monkeypatch.setattr(image_run, "fast_path", lambda rest: None)
    typer_outcome = run(argv, capsys)
    assert fast_outcome == typer_outcome
    assert fast_image == _image(out)
    code, stdout, _ = typer_outcome
    if fast and code == 0:  # the runs did build an image
        assert stdout and fast_image
