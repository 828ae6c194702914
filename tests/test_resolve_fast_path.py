"""``nanodistro resolve``'s Typer-free fast path (issue 18: resolve within 3x of apk-tools).

``cli.resolve.fast_path`` parses the plain command lines itself and hands everything else to
the Typer app. Each command line of the table runs both ways in this process — as ``main``
runs it, and with the fast path switched off (Typer parses) — and must give the same exit
status, stdout and stderr; the table says which lines the fast path must take, so a parser
that quietly declines everything would fail too. A fresh process then checks that a plain
resolve imports neither Typer nor Click.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import nanodistro.cli.resolve as cli_resolve
from cli_runner import run_main as run
from fixture_paths import THIRD_PARTY

INDEX = THIRD_PARTY / "chainguard-dev+apko/pkg/apk/apk/testdata/alpine-316/APKINDEX.tar.gz"
KEYS = THIRD_PARTY / "alpinelinux+alpine-chroot-install/alpine-keys"


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("fast-path-repo")
    (root / "x86_64").mkdir()
    shutil.copy(INDEX, root / "x86_64" / "APKINDEX.tar.gz")
    return root


@pytest.fixture(autouse=True)
def _private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("NANODISTRO_INDEX_CACHE", raising=False)


# (argv after "resolve" with {repo}/{keys} placeholders, does the fast path take it?)
CASES: list[tuple[list[str], bool]] = [
    (["-r", "{repo}", "-k", "{keys}", "--arch", "x86_64", "busybox"], True),
    (["busybox", "--repo", "{repo}", "--keyring", "{keys}", "--arch", "x86_64", "zlib"], True),
    (["--repo={repo}", "--keyring={keys}", "--arch=x86_64", "musl", "--json"], True),
    (["-r", "{repo}", "--arch", "aarch64", "-k", "{keys}", "--arch", "x86_64", "zlib"], True),
    (
        [
            "-r",
            "{repo}",
            "-k",
            "{keys}",
            "--arch",
            "x86_64",
            "--insecure",
            "--allow-downgrade",
            "so:libc.musl-x86_64.so.1",
        ],
        True,
    ),
    # errors raised by the command: same one line on stderr, same JSON document on stdout
    (["-r", "{repo}", "-k", "{keys}", "--arch", "x86_64", "bash"], True),
    (["-r", "{repo}", "-k", "{keys}", "--arch", "x86_64", "--json", "bash"], True),
    (["-r", "{repo}", "-k", "{keys}", "--arch", "x86_64", "no-such-package"], True),
    (["-r", "{repo}", "-k", "{keys}", "--arch", "x86_64", "zlib>>1"], True),
    (["-r", "{repo}", "-k", "{keys}/missing", "--arch", "x86_64", "zlib"], True),
    (["-r", "{repo}/nowhere", "-k", "{keys}", "--arch", "x86_64", "zlib"], True),
    # Typer's: help, usage errors, spellings the fast path leaves to Click
    (["--help"], False),
    (["-r", "{repo}", "-k", "{keys}", "zlib", "-h"], False),
    (["-r", "{repo}", "-k", "{keys}", "--arch", "x86_64"], False),
    (["-k", "{keys}", "zlib"], False),
    (["-r", "{repo}", "zlib"], False),
    (["-r", "{repo}", "-k", "{keys}", "zlib", "--arch"], False),
    (["-r", "{repo}", "-k", "{keys}", "zlib", "--bogus"], False),
    (["-r", "{repo}", "-k", "{keys}", "zlib", "--json=yes"], False),
    (["-r{repo}", "-k", "{keys}", "--arch", "x86_64", "zlib"], False),
    (["-r", "{repo}", "-k", "{keys}", "--arch", "x86_64", "--", "zlib"], False),
    (["-r", "--json", "-k", "{keys}", "zlib"], False),
    (["-r", "{repo}", "-k", "", "zlib"], False),
    ([], False),
]


@pytest.mark.parametrize(("args", "fast"), CASES, ids=[" ".join(a) or "-" for a, _ in CASES])
def test_fast_path_and_typer_agree(
    args: list[str],
    fast: bool,
    repo: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    argv = ["resolve", *(a.format(repo=repo, keys=KEYS) for a in args)]
    taken: list[bool] = []
    real = cli_resolve.fast_path

    def spy(rest: list[str]) -> object:
        result = real(rest)
        taken.append(result is not None)
        return result

    monkeypatch.setattr(cli_resolve, "fast_path", spy)
    fast_outcome = run(argv, capsys)
    assert taken == [fast]

    monkeypatch.setattr(cli_resolve, "fast_path", lambda rest: None)
    typer_outcome = run(argv, capsys)
    assert fast_outcome == typer_outcome
    code, out, err = typer_outcome
    if fast and code == 0:  # the runs did resolve something
        assert out and not err


def test_plain_resolve_prints_apk_lines(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["resolve", "-r", str(repo), "-k", str(KEYS), "--arch", "x86_64", "zlib"]
    # what apk-tools 2.14 prints for this world and index (apk add --simulate zlib)
    out = "(1/2) Installing musl (1.2.3-r2)\n(2/2) Installing zlib (1.2.12-r3)\n"
    assert run(argv, capsys) == (0, out, "")


def test_plain_resolve_imports_neither_typer_nor_click(repo: Path, tmp_path: Path) -> None:
    probe = (
        "import sys\n"
        "from nanodistro.cli import main\n"
        "try:\n    main(sys.argv[1:])\nexcept SystemExit as e:\n    code = e.code\n"
        "print(code, sorted({m.split('.')[0] for m in sys.modules} & {'typer', 'click'}))\n"
    )
    argv = ["resolve", "-r", str(repo), "-k", str(KEYS), "--arch", "x86_64", "busybox"]
    result = subprocess.run(
        [sys.executable, "-c", probe, *argv],
        capture_output=True,
        text=True,
        env={**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")},
        timeout=120,
        check=False,
    )
    assert result.stdout.splitlines()[-1] == "0 []", result.stderr
    # nor cryptography, cold or warm: keys and index signature are read by formats/rsa_pure
    crypto_probe = probe.replace("{'typer', 'click'}", "{'cryptography'}")
    for cache in ("crypto-cache", "crypto-cache"):
        result = subprocess.run(
            [sys.executable, "-c", crypto_probe, *argv],
            capture_output=True,
            text=True,
            env={**os.environ, "XDG_CACHE_HOME": str(tmp_path / cache)},
            timeout=120,
            check=False,
        )
        assert result.stdout.splitlines()[-1] == "0 []", result.stderr


def test_console_script_output_is_complete_through_a_pipe(repo: Path, tmp_path: Path) -> None:
    # The fast path ends the process without the interpreter's teardown (os._exit after a
    # flush): every line must still reach a pipe, and the exit status must be 0.
    argv = ["resolve", "-r", str(repo), "-k", str(KEYS), "--arch", "x86_64", "zlib", "busybox"]
    result = subprocess.run(
        [sys.executable, "-m", "nanodistro", *argv],
        capture_output=True,
        text=True,
        env={**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")},
        timeout=120,
        check=False,
    )
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout == (
        "(1/3) Installing musl (1.2.3-r2)\n"
        "(2/3) Installing busybox (1.35.0-r17)\n"
        "(3/3) Installing zlib (1.2.12-r3)\n"
    )
