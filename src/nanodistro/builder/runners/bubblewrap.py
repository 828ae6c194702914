"""The bubblewrap sandbox: a fresh root, no network, only /home/build writable.

argv mirrors melange's bubblewrap runner (pkg/container/bubblewrap_runner.go, reference §7.3)
with these deliberate differences, all for hermeticity:

* ``--unshare-all`` (melange keeps the network on during builds): a build cannot reach anything,
  sources were fetched beforehand (build/sources.py);
* the root is mounted read-only; only the workspace is bound read-write at ``/home/build``
  (``/tmp`` is a private tmpfs that disappears with the step);
* no ``/sys``, no ``/etc/resolv.conf``, no cache mount; signing keys are never mounted.

The root is a directory the builder filled with the environment's packages. The toolchain
(default: host ``/usr`` etc.) is bound read-only on top; where a package ships files inside a
toolchain directory, the two are merged one level deeper (package files win), so a -dev package
installed from the repository is visible next to the host compiler.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import threading
from pathlib import Path

from nanodistro.builder.runners import LineCallback, StepRun, Toolchain
from nanodistro.errors import SandboxError

GUEST_HOME = "/home/build"
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/bin:/usr/sbin:/sbin:/bin"
BUILD_UID = 1000
BUILD_GID = 1000

_PASSWD = (
    "root:x:0:0:root:/root:/bin/sh\n"
    f"build:x:{BUILD_UID}:{BUILD_GID}:build:{GUEST_HOME}:/bin/sh\n"
    "nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
)
_GROUP = f"root:x:0:\nbuild:x:{BUILD_GID}:build\nnogroup:x:65534:\n"


def bwrap_path() -> str:
    found = shutil.which("bwrap")
    if not found:
        raise SandboxError("bubblewrap (bwrap) is not installed; apt-get install bubblewrap")
    return found


def prepare_root(root: Path) -> None:
    """Add what every sandbox needs to an assembled root: accounts and mount points."""
    for directory in ("etc", "tmp", "proc", "dev", "home/build", "root", "var/tmp"):
        (root / directory).mkdir(parents=True, exist_ok=True)
    passwd, group = root / "etc/passwd", root / "etc/group"
    if not passwd.exists():
        passwd.write_text(_PASSWD)
    if not group.exists():
        group.write_text(_GROUP)


def _mount_toolchain(root: Path, host: Path, guest: str, args: list[str]) -> None:
    """Make host ``guest`` (under the toolchain root) visible at ``guest`` in ``root``."""
    source = host / guest.lstrip("/")
    target = root / guest.lstrip("/")
    if not (source.exists() or source.is_symlink()):
        return
    if source.is_symlink():
        if not (target.exists() or target.is_symlink()):
            target.parent.mkdir(parents=True, exist_ok=True)
            os.symlink(os.readlink(source), target)
            return
        # A merged-/usr host links /lib -> usr/lib while a package shipped files in /lib (musl's
        # loader): merge what the link points at into the package's directory instead of
        # hiding the host's libraries (and with them the interpreter of /bin/sh).
        if target.is_symlink() or not (target.is_dir() and source.is_dir()):
            return
    if target.is_symlink():
        return  # the package put a symlink there; it wins
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            target.mkdir()
        else:
            target.touch()
        args += ["--ro-bind", str(source), guest]
        return
    if target.is_dir() and source.is_dir():
        if not any(target.iterdir()):
            args += ["--ro-bind", str(source), guest]
            return
        for child in sorted(os.listdir(source)):
            _mount_toolchain(root, host, f"{guest.rstrip('/')}/{child}", args)
    # both are files: the package's file wins


class BubblewrapRunner:
    """Runs steps in one sandbox root; every step is a fresh bwrap process."""

    def __init__(
        self,
        root: Path,
        workspace: Path,
        *,
        toolchain: Toolchain | None = None,
        env: dict[str, str] | None = None,
        network: bool = False,
        cap_add: list[str] | None = None,
        cap_drop: list[str] | None = None,
        cache_dir: Path | None = None,
    ) -> None:
        self.root = root
        self.workspace = workspace
        self.toolchain = toolchain or Toolchain()
        self.env = dict(env or {})
        self.network = network
        self.cap_add = cap_add or []
        self.cap_drop = cap_drop or []
        # melange's /var/cache/melange (GOMODCACHE, PIP_CACHE_DIR, ...): here a per-build
        # directory next to the workspace, never a host-wide cache
        self.cache_dir = cache_dir
        prepare_root(root)
        if cache_dir is not None:
            cache_dir.mkdir(parents=True, exist_ok=True)
            (root / "var/cache/melange").mkdir(parents=True, exist_ok=True)
        # Mount points created here look like package files on a second visit, so the plan is
        # computed once per root and remembered next to it.
        plan = root / ".nanodistro-toolchain-mounts.json"
        if plan.is_file():
            self._mounts: list[str] = json.loads(plan.read_text())
        else:
            self._mounts = []
            for path in self.toolchain.paths:
                _mount_toolchain(root, self.toolchain.host_root, path, self._mounts)
            plan.write_text(json.dumps(self._mounts))

    def argv(self, step: StepRun) -> list[str]:
        args = [
            bwrap_path(),
            "--ro-bind",
            str(self.root),
            "/",
            *self._mounts,
            "--bind",
            str(self.workspace),
            GUEST_HOME,
            *(["--bind", str(self.cache_dir), "/var/cache/melange"] if self.cache_dir else []),
            "--tmpfs",
            "/tmp",
            "--dev",
            "/dev",
            "--proc",
            "/proc",
            "--unshare-all",
        ]
        if self.network:
            args.append("--share-net")
        args += [
            "--uid",
            str(BUILD_UID),
            "--gid",
            str(BUILD_GID),
            "--hostname",
            "nanodistro",
            "--die-with-parent",
            "--new-session",
            "--chdir",
            GUEST_HOME,
            "--clearenv",
        ]
        if self.cap_add:
            # bwrap started by root keeps *every* capability once --cap-add is given; start
            # from none so the recipe gets exactly what it asked for (default: no capabilities)
            args += ["--cap-drop", "ALL"]
        for cap in self.cap_add:
            args += ["--cap-add", cap]
        for cap in self.cap_drop:
            args += ["--cap-drop", cap]
        env = {"PATH": DEFAULT_PATH, **self.env, **step.env}
        for key in sorted(env):
            args += ["--setenv", key, env[key]]
        args += ["/bin/sh", "-c", build_script(step.script, step.workdir)]
        return args

    def run(self, step: StepRun, *, log_path: Path, on_line: LineCallback | None = None) -> int:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        argv = self.argv(step)
        with log_path.open("w", encoding="utf-8", errors="replace") as log:
            try:
                process = subprocess.Popen(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            except OSError as error:
                raise SandboxError(f"cannot start bubblewrap: {error}", where=step.name) from None
            timed_out = threading.Event()

            def _kill() -> None:
                timed_out.set()
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)

            timer = threading.Timer(step.timeout, _kill) if step.timeout else None
            if timer:
                timer.start()
            try:
                assert process.stdout is not None
                for raw in process.stdout:
                    line = raw.decode("utf-8", errors="replace").rstrip("\n")
                    log.write(line + "\n")
                    if on_line:
                        on_line(line)
                status = process.wait()
            finally:
                if timer:
                    timer.cancel()
            if timed_out.is_set():
                log.write(f"nanodistro: step timed out after {step.timeout:g}s\n")
                return 124
            return status

    def close(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


def build_script(script: str, workdir: str) -> str:
    """The wrapper melange puts around every step (pkg/build/pipeline.go buildEvalRunCommand)."""
    quoted = "'" + workdir.replace("'", "'\\''") + "'"
    return (
        # dash (Debian's /bin/sh) has no pipefail; probe in a subshell so set cannot abort us
        "if (set -o pipefail) 2>/dev/null; then set -o pipefail; fi\n"
        "set -e\n"
        # a fixed umask: file modes end up in the package, so they must not depend on the caller
        "umask 022\n"
        f"[ -d {quoted} ] || mkdir -p {quoted}\n"
        f"cd {quoted}\n"
        f"{script}\n"
        "exit 0\n"
    )
