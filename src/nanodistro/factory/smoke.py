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
import os
import posixpath
import shutil
import subprocess
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nanodistro.errors import ConfigError, ImageError
from nanodistro.util.beneath import Beneath

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
    returncode: int = 0  # the command's exit status (bisect judges by it alone)


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


# What the tools run with, whatever the caller's umask: umoci creates the bundle's rootfs (which
# becomes the container's "/") and the directories a layer leaves implicit with it, and runc the
# mount points it adds. Under umask 027 "/" came out 0750 and the image's user could not run.
TOOL_UMASK = 0o022
ROOTFS_MODE = 0o755  # an image's root directory, as umoci makes it under umask 022 and apko has it


def _run(argv: list[str], timeout: int = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, capture_output=True, text=True, timeout=timeout, check=False, umask=TOOL_UMASK
    )


def _unpack(layout: Path, ref: str, bundle: Path) -> dict[str, Any]:
    result = _run(["umoci", "unpack", "--image", f"{layout}:{ref}", str(bundle)])
    if result.returncode != 0:
        raise ImageError(f"umoci unpack failed: {result.stderr.strip()}", where=str(layout))
    # the layers carry no entry for "/" itself; set it rather than trust how it was created
    (bundle / "rootfs").chmod(ROOTFS_MODE)
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
            argv = _bwrap_argv(bundle, process, test)
            _mount_points(bundle / "rootfs", process, test)
            switch = _as_image_user(process)
            if switch:
                # the unprivileged bwrap must reach the rootfs through the private temp dir
                for directory in (Path(tmp), bundle):
                    directory.chmod(0o711)
            result = _run([*switch, *argv])
    output = result.stdout.strip()
    expected = test.expect.strip()
    passed = result.returncode == 0 and output == expected
    detail = "" if passed else f"exit {result.returncode}; stderr: {result.stderr.strip()[-400:]}"
    return SmokeResult(passed, output, expected, runtime, detail, result.returncode)


def _mount_points(rootfs: Path, process: dict[str, Any], test: SmokeTest) -> None:
    """What bwrap mounts over or changes into, made here as runc makes them: bwrap started as the
    image's user cannot create them in a root-owned "/". Never through a link of the image."""
    directories = ["proc", "dev", str(process.get("cwd", "/")).strip("/")]
    if test.binary is not None:
        directories.append(posixpath.dirname(SMOKE_MOUNT).strip("/"))
    with Beneath(rootfs) as tree:
        for directory in filter(None, directories):
            parts = directory.split("/")
            for depth in range(1, len(parts) + 1):
                prefix = "/".join(parts[:depth])
                if tree.lstat(prefix) is None:
                    tree.makedirs(prefix)
                    tree.chmod(prefix, 0o755)  # mkdir applied the caller's umask
        if test.binary is not None:
            tree.touch(SMOKE_MOUNT.strip("/"))


def _as_image_user(process: dict[str, Any]) -> list[str]:
    """``setpriv`` to the image's user before bwrap when we are root and it is not.

    bwrap's ``--uid`` only renames the caller inside a user namespace: a root caller stays host
    root there without capabilities, so files owned by the image's user (its 0700 home) are
    closed to it. Started as that user, bwrap's namespace maps the real uid and the image's
    modes apply as they would under runc."""
    user = process.get("user", {})
    uid, gid = int(user.get("uid", 0)), int(user.get("gid", 0))
    if os.geteuid() != 0 or uid == 0 or shutil.which("setpriv") is None:
        return []
    groups = [str(g) for g in user.get("additionalGids", []) if int(g) != gid]
    argv = ["setpriv", f"--reuid={uid}", f"--regid={gid}"]
    argv += [f"--groups={','.join(groups)}"] if groups else ["--clear-groups"]
    return [*argv, "--"]


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
