"""Smoke tests: run an image's entrypoint in a real container runtime and compare its output.

The test is kept in the image config's ``annotations`` so the config stays valid apko YAML:

``dev.nanodistro.smoke.args``    JSON list; appended to the entrypoint (replacing ``cmd``), or,
                                 with ``smoke.binary``, the whole command line
``dev.nanodistro.smoke.expect``  the expected stdout (surrounding whitespace ignored)
``dev.nanodistro.smoke.binary``  optional: ``busybox-static`` bind-mounts the host's static busybox
                                 read-only at ``/.smoke/busybox`` (for images without programs)

The image is unpacked with ``umoci`` into an OCI runtime bundle and run with ``runc`` (crun cannot
run on cgroup-hybrid hosts); where runc is missing, bubblewrap runs the same rootfs as the same user.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nanodistro.errors import ConfigError, ImageError

ARGS = "dev.nanodistro.smoke.args"
EXPECT = "dev.nanodistro.smoke.expect"
BINARY = "dev.nanodistro.smoke.binary"
SMOKE_BINARIES = {"busybox-static": Path("/bin/busybox")}
SMOKE_MOUNT = "/.smoke/busybox"


@dataclass(frozen=True)
class SmokeTest:
    args: list[str]
    expect: str
    binary: Path | None = None


@dataclass(frozen=True)
class SmokeResult:
    passed: bool
    output: str
    expected: str
    runtime: str
    detail: str = ""


def smoke_test_from_annotations(annotations: dict[str, str], where: str) -> SmokeTest | None:
    if EXPECT not in annotations:
        return None
    try:
        args = json.loads(annotations.get(ARGS, "[]"))
    except json.JSONDecodeError as error:
        raise ConfigError(f"expected a JSON list: {error}", where=where, field=ARGS) from None
    if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
        raise ConfigError("expected a JSON list of strings", where=where, field=ARGS)
    binary = None
    if BINARY in annotations:
        name = annotations[BINARY]
        if name not in SMOKE_BINARIES:
            raise ConfigError(
                f"unknown smoke binary {name!r}; known: {', '.join(SMOKE_BINARIES)}",
                where=where,
                field=BINARY,
            )
        binary = SMOKE_BINARIES[name]
    return SmokeTest(args=args, expect=annotations[EXPECT], binary=binary)


def _run(argv: list[str], timeout: int = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)


def _unpack(layout: Path, ref: str, bundle: Path) -> dict[str, Any]:
    result = _run(["umoci", "unpack", "--image", f"{layout}:{ref}", str(bundle)])
    if result.returncode != 0:
        raise ImageError(f"umoci unpack failed: {result.stderr.strip()}", where=str(layout))
    config: dict[str, Any] = json.loads((bundle / "config.json").read_text())
    return config


def _command(config: dict[str, Any], test: SmokeTest, entrypoint: list[str]) -> list[str]:
    if test.binary is not None:
        return test.args
    return [*entrypoint, *test.args] if test.args else list(config["process"]["args"])


def run_smoke_test(
    layout: Path,
    ref: str,
    test: SmokeTest,
    entrypoint: list[str],
    *,
    runtime: str | None = None,
) -> SmokeResult:
    """Unpack ``layout:ref`` and run the smoke test; ``entrypoint`` is the image's entrypoint.

    ``runtime`` is ``runc`` or ``bubblewrap``; by default runc when it is installed."""
    if shutil.which("umoci") is None:
        raise ImageError("umoci is required for smoke tests (apt-get install umoci)")
    if runtime is None:
        runtime = "runc" if shutil.which("runc") else "bubblewrap"
    if runtime not in ("runc", "bubblewrap"):
        raise ConfigError(f"unknown smoke test runtime {runtime!r}; known: runc, bubblewrap")
    with tempfile.TemporaryDirectory(prefix="nanodistro-smoke-") as tmp:
        bundle = Path(tmp) / "bundle"
        config = _unpack(layout, ref, bundle)
        argv = _command(config, test, entrypoint)
        process = config["process"]
        process["args"] = argv
        process["terminal"] = False
        if test.binary is not None:
            config.setdefault("mounts", []).append(
                {
                    "destination": SMOKE_MOUNT,
                    "type": "bind",
                    "source": str(test.binary),
                    "options": ["bind", "ro"],
                }
            )
        (bundle / "config.json").write_text(json.dumps(config))
        if runtime == "runc":
            container = f"nanodistro-smoke-{uuid.uuid4().hex[:12]}"
            result = _run(["runc", "run", "--bundle", str(bundle), container])
            _run(["runc", "delete", "--force", container])
        else:
            result = _run(_bwrap_argv(bundle, process, test))
    output = result.stdout.strip()
    expected = test.expect.strip()
    passed = result.returncode == 0 and output == expected
    detail = "" if passed else f"exit {result.returncode}; stderr: {result.stderr.strip()[-400:]}"
    return SmokeResult(passed, output, expected, runtime, detail)


def _bwrap_argv(bundle: Path, process: dict[str, Any], test: SmokeTest) -> list[str]:
    user = process.get("user", {})
    argv = [
        "bwrap",
        "--unshare-all",
        "--die-with-parent",
        "--bind",
        str(bundle / "rootfs"),
        "/",
        "--proc",
        "/proc",
        "--dev",
        "/dev",
        "--uid",
        str(user.get("uid", 0)),
        "--gid",
        str(user.get("gid", 0)),
        "--chdir",
        process.get("cwd", "/"),
        "--clearenv",
    ]
    for item in process.get("env", []):
        key, _, value = item.partition("=")
        argv += ["--setenv", key, value]
    if test.binary is not None:
        argv += ["--ro-bind", str(test.binary), SMOKE_MOUNT]
    return [*argv, "--", *process["args"]]
