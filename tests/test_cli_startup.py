"""Start-up: a command line imports only what it uses (issue 18).

No timings here (bench/bench_startup.py measures them): these check *which* modules a fresh
``nanodistro`` process imports for a command line, that the conversions which keep pydantic out
of the option parser give Typer's results and messages for every option of the app, and that
the help printer's deferred imports still work when something does use them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, get_origin

import pytest
import typer
import typer.main

from fixture_paths import REPO_ROOT
from nanodistro.cli import app

# Run ``nanodistro ARGS`` as ``python -m nanodistro`` does, then report the exit status and the
# top-level names of every imported module.
_PROBE = """
import json, runpy, sys
sys.argv = ["nanodistro", *sys.argv[1:]]
code = 0
try:
    runpy.run_module("nanodistro", run_name="__main__", alter_sys=True)
except SystemExit as exit:
    code = exit.code if isinstance(exit.code, int) else 1
sys.stdout.flush()
sys.stderr.write("\\n@@" + json.dumps({"code": code, "modules": sorted(sys.modules)}))
"""

# Engines and libraries no start-up path needs: models, HTTP, YAML, crypto, databases, and the
# parts of Rich only Markdown help or pretty tracebacks use.
HEAVY = ("pydantic", "httpx", "ruamel", "yaml", "sqlalchemy", "cryptography")
HELP_EXTRAS = ("markdown_it", "pygments", "rich.markdown", "rich.traceback", "rich.syntax")


def probe(*args: str) -> tuple[int, str, set[str]]:
    """Exit status, stdout and imported module names of ``nanodistro ARGS`` in a new process."""
    result = subprocess.run(
        [sys.executable, "-c", _PROBE, *args],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        env={**os.environ, "COLUMNS": "100"},
        timeout=120,
        check=False,
    )
    _, _, report = result.stderr.rpartition("\n@@")
    assert report, f"probe printed no report: {result.stderr[-2000:]}"
    data = json.loads(report)
    return data["code"], result.stdout, set(data["modules"])


def imported(modules: set[str], name: str) -> bool:
    return name in modules or any(m.startswith(name + ".") for m in modules)


def test_version_imports_neither_typer_nor_anything_heavy() -> None:
    code, out, modules = probe("--version")
    assert (code, out) == (0, "nanodistro 0.1.0\n")
    loaded = [n for n in (*HEAVY, "rich", "typer", "click") if imported(modules, n)]
    assert loaded == []


def test_version_through_typer_still_answers() -> None:
    # not the fast path (another option first): Typer's eager --version callback
    code, out, _ = probe("--version", "--help")
    assert (code, out) == (0, "nanodistro 0.1.0\n")


def test_resolve_help_imports_no_engine_and_no_help_extras() -> None:
    code, out, modules = probe("resolve", "--help")
    assert code == 0
    assert "Usage: nanodistro resolve [OPTIONS] PACKAGES..." in out
    assert [n for n in (*HEAVY, *HELP_EXTRAS) if imported(modules, n)] == []


@pytest.mark.parametrize("command", ["monitor", "bump"])
def test_monitor_help_imports_no_engine(command: str) -> None:
    # the option defaults (deadlines) come from monitor/defaults.py, not the monitor engine
    code, out, modules = probe(command, "--help")
    assert code == 0
    assert f"Usage: nanodistro {command} [OPTIONS]" in out
    assert [n for n in (*HEAVY, *HELP_EXTRAS) if imported(modules, n)] == []


def test_resolve_run_converts_options_without_pydantic_or_rich(tmp_path: Path) -> None:
    # A real command line (list[str] argument, list[str] / list[Path] options, a str option with
    # a computed default, flags) that fails on its missing keyring: exit 1. Loading keys is
    # the one heavy import this needs (cryptography).
    missing = tmp_path / "no-keys"
    code, _, modules = probe("resolve", "busybox", "-r", str(tmp_path), "-k", str(missing))
    assert code == 1
    unneeded = [n for n in HEAVY if n != "cryptography"]
    assert [n for n in (*unneeded, "rich") if imported(modules, n)] == []


def test_bad_value_gets_typers_message_on_one_line() -> None:
    # "--bits x": not an integer, so the fast conversion hands it to Typer's own (pydantic)
    result = subprocess.run(
        [sys.executable, "-m", "nanodistro", "keygen", "--bits", "x"],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert result.stderr == (
        "error: Invalid value for '--bits': Input should be a valid integer, unable to parse "
        "string as an integer (see 'nanodistro keygen --help')\n"
    )


# Each command module, registered alone (what ``nanodistro CMD ...`` does), in a child forked
# from one process that has imported Typer and nanodistro.cli: the heavy libraries it pulls in.
_PER_MODULE = """
import json, os, sys
import typer.main
from nanodistro.cli import COMMAND_MODULES, build_app
heavy = sys.argv[1].split(",")
report = {}
for module in COMMAND_MODULES:
    read, write = os.pipe()
    if os.fork() == 0:
        os.close(read)
        typer.main.get_command(build_app([module]))
        loaded = sorted({m.split(".")[0] for m in sys.modules} & set(heavy))
        os.write(write, json.dumps(loaded).encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        report[module] = json.loads(pipe.read() or '"child failed"')
    os.wait()
print(json.dumps(report))
"""

# What a command module may still import when registered: nothing, for every module (monitor's
# option defaults come from monitor/defaults.py, not from the engine).
KNOWN_HEAVY: dict[str, set[str]] = {}


def test_no_command_module_imports_heavy_libraries_to_register() -> None:
    result = subprocess.run(
        [sys.executable, "-c", _PER_MODULE, ",".join((*HEAVY, "rich"))],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    report = json.loads(result.stdout)
    too_heavy = {
        module: sorted(set(loaded) - KNOWN_HEAVY.get(module, set()))
        for module, loaded in report.items()
        if set(loaded) - KNOWN_HEAVY.get(module, set())
    }
    assert too_heavy == {}


# ---------------------------------------------------------------------------------------------
# cli/_coerce against Typer's converter, on every option and argument of the app


def _parameters() -> list[tuple[str, Any, Any]]:
    found: list[tuple[str, Any, Any]] = []

    def walk(command: Any, path: str) -> None:
        for param in command.params:
            if getattr(param, "type_descriptor", None) is not None:
                found.append((f"{path} {param.name}", command, param))
        for name, sub in sorted(getattr(command, "commands", {}).items()):
            walk(sub, f"{path} {name}".strip())

    walk(typer.main.get_command(app), "")
    return found


PARAMETERS = _parameters()

SAMPLES: dict[str, list[Any]] = {
    "str": ["abc", "", " spaced ", "ünï", "-"],
    "bool": [True, False],
    "int": ["12", "0", "-3", "007", "1_000", " 4", "1.5", "x", 5, 0, 70000],
    "float": ["0.5", "2", "-1.25", "0", "1e3", "nan", "x", 1.5, 0.05],
    "Path": ["a/b", ".", "-", "", str(REPO_ROOT / "README.md"), str(REPO_ROOT)],
}


def _samples(annotation: Any) -> list[Any]:
    if get_origin(annotation) is list:
        (inner,) = annotation.__args__
        leaf = SAMPLES[getattr(inner, "__name__", str(inner))]
        return [(), tuple(leaf[:2]), tuple(leaf[-3:]), leaf[0]]
    return SAMPLES[getattr(annotation, "__name__", str(annotation))]


def _outcome(runtime: Any, value: Any, param: Any, ctx: Any) -> tuple[str, Any]:
    try:
        result = runtime.coerce(value, param=param, ctx=ctx)
    except typer.BadParameter as error:
        return "error", error.format_message()
    return type(result).__name__, repr(result)  # repr: nan equals nan


@pytest.mark.parametrize(("where", "command", "param"), PARAMETERS, ids=[p[0] for p in PARAMETERS])
def test_fast_conversion_matches_typer(where: str, command: Any, param: Any) -> None:
    from typer import core

    fast_build = core.build_runtime_param
    typer_build = getattr(fast_build, "original", None)
    if typer_build is None:
        pytest.skip("this Typer converts without pydantic: no hook installed")
    descriptor = param.type_descriptor
    fast, slow = fast_build(descriptor), typer_build(descriptor)
    assert type(fast).__name__ == "FastRuntimeParam", f"{where}: no fast path for its type"
    ctx = command.context_class(command, info_name=command.name)
    for value in _samples(descriptor.annotation):
        expected = _outcome(slow, value, param, ctx)
        assert _outcome(fast, value, param, ctx) == expected, (where, value)


def test_every_option_type_of_the_app_is_sampled() -> None:
    # a new annotation (an Enum, a datetime) gets Typer's converter; add samples for it here
    annotations = {repr(p.type_descriptor.annotation) for _, _, p in PARAMETERS}
    assert annotations <= {
        *(f"<class '{t}'>" for t in ("str", "bool", "int", "float", "pathlib.Path")),
        "list[str]",
        "list[pathlib.Path]",
        "list[int]",
        "list[float]",
    }


# ---------------------------------------------------------------------------------------------
# cli/_help: the help printer's deferred imports


def test_deferred_markdown_and_traceback_are_real_when_used() -> None:
    script = """
import sys
from nanodistro.cli import _help
_help.defer_rich_extras()
import typer.rich_utils as ru
assert "rich.markdown" not in sys.modules and "rich.traceback" not in sys.modules
md = ru._make_rich_text(text="**bold**", markup_mode="markdown")
import rich.markdown, rich.traceback
assert type(md) is rich.markdown.Markdown, type(md)
assert sys.modules["rich.markdown"] is rich.markdown and hasattr(rich.markdown, "MarkdownIt")
try:
    raise ValueError("boom")
except ValueError as error:
    tb = ru.Traceback.from_exception(type(error), error, error.__traceback__)
assert type(tb) is rich.traceback.Traceback
print("ok")
"""
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=False, timeout=120
    )
    assert (result.returncode, result.stdout, result.stderr) == (0, "ok\n", "")
