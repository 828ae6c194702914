"""The bubblewrap sandbox: a fresh root, no network, only /home/build writable.

argv mirrors melange's bubblewrap runner (pkg/container/bubblewrap_runner.go, reference §7.3)
with these deliberate differences, all for hermeticity:

* ``--unshare-all`` (melange keeps the network on during builds): a build cannot reach anything,
  sources were fetched beforehand (build/sources.py);
* the root is mounted read-only; only the workspace is bound read-write at ``/home/build``
  (``/tmp`` is a private tmpfs that disappears with the step);
* no ``/sys``, no ``/etc/resolv.conf``, no cache mount; signing keys are never mounted;
* bwrap itself starts with an empty environment (its own ``/proc/1/environ`` is readable inside),
  the step gets only PATH and the recipe's variables;
* run by root, bwrap runs as an unprivileged build uid (runners/hostproc.py) with rlimits on
  processes, memory, file size and open files, and /tmp is a size-bounded tmpfs;
* ``--unshare-user --disable-userns``: no nested user namespaces unless the recipe adds
  CAP_SYS_ADMIN; capabilities only from ``CAPABILITY_ALLOWLIST``.

Everything the host adds to a root that packages filled (accounts, mount points) goes through
``util.beneath``: a package's ``etc -> /host/dir`` fails the build instead of redirecting the write.

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
import stat
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path

from nanodistro.builder.runners import (
    CAPABILITY_ALLOWLIST,
    NESTED_USERNS_CAPABILITY,
    LineCallback,
    SandboxPolicy,
    StepRun,
    Toolchain,
    hostproc,
)
from nanodistro.errors import SandboxError
from nanodistro.util.beneath import Beneath

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
    """Add what every sandbox needs to an assembled root: accounts and mount points.

    Nothing here follows a link a package placed (UnsafePathError names it). Modes are exact
    (the build user must traverse the root whatever the caller's umask)."""
    os.chmod(root, stat.S_IMODE(os.stat(root).st_mode) | 0o755)
    with Beneath(root) as tree:
        for directory in ("etc", "tmp", "proc", "dev", "home/build", "root", "var/tmp"):
            tree.makedirs(directory)
        tree.write_if_missing("etc/passwd", _PASSWD)
        tree.write_if_missing("etc/group", _GROUP)


def _mount_toolchain(tree: Beneath, host: Path, guest: str, args: list[str]) -> None:
    """Make host ``guest`` (under the toolchain root) visible at ``guest`` in the root."""
    source = host / guest.lstrip("/")
    rel = guest.lstrip("/")
    if not (source.exists() or source.is_symlink()):
        return
    found = tree.lstat(rel)  # refuses a package link among the parents
    is_link = found is not None and stat.S_ISLNK(found.st_mode)
    is_dir = found is not None and stat.S_ISDIR(found.st_mode)
    if source.is_symlink():
        if found is None:
            tree.symlink(os.readlink(source), rel)
            return
        # A merged-/usr host links /lib -> usr/lib while a package shipped files in /lib (musl's
        # loader): merge what the link points at into the package's directory instead of
        # hiding the host's libraries (and with them the interpreter of /bin/sh).
        if is_link or not (is_dir and source.is_dir()):
            return
    if is_link:
        return  # the package put a symlink there; it wins (bwrap resolves it inside the root)
    if found is None:
        if source.is_dir():
            tree.makedirs(rel)
        else:
            tree.touch(rel)
        args += ["--ro-bind", str(source), guest]
        return
    if is_dir and source.is_dir():
        if not tree.listdir(rel):
            args += ["--ro-bind", str(source), guest]
            return
        for child in sorted(os.listdir(source)):
            _mount_toolchain(tree, host, f"{guest.rstrip('/')}/{child}", args)
    # both are files: the package's file wins


def check_capabilities(cap_add: list[str]) -> list[str]:
    """Upper-cased ``cap_add``; a capability outside the allow-list is a SandboxError."""
    names = [c.upper() if c.upper().startswith("CAP_") else f"CAP_{c.upper()}" for c in cap_add]
    for original, name in zip(cap_add, names, strict=True):
        if name not in CAPABILITY_ALLOWLIST:
            raise SandboxError(
                f"capability {original!r} is not allowed in a build (allowed: "
                f"{', '.join(sorted(CAPABILITY_ALLOWLIST))})",
                field="capabilities.add",
            )
    return names


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
        policy: SandboxPolicy | None = None,
    ) -> None:
        self.root = root
        self.workspace = workspace
        self.toolchain = toolchain or Toolchain()
        self.env = dict(env or {})
        self.network = network
        self.cap_add = check_capabilities(cap_add or [])
        self.cap_drop = cap_drop or []
        self.policy = policy or SandboxPolicy()
        self.ids = self.policy.build_ids()
        # melange's /var/cache/melange (GOMODCACHE, PIP_CACHE_DIR, ...): here a per-build
        # directory next to the workspace, never a host-wide cache
        self.cache_dir = cache_dir
        prepare_root(root)
        if cache_dir is not None:
            cache_dir.mkdir(parents=True, exist_ok=True)
            with Beneath(root) as tree:
                tree.makedirs("var/cache/melange")
        # Mount points created here look like package files on a second visit, so the plan is
        # computed once per root and remembered next to it -- outside it, where no package can
        # place (or replace) the file.
        plan = root.parent / f".{root.name}.toolchain-mounts.json"
        if plan.is_file() and not plan.is_symlink():
            self._mounts: list[str] = json.loads(plan.read_text())
        else:
            self._mounts = []
            with Beneath(root) as tree:
                for path in self.toolchain.paths:
                    _mount_toolchain(tree, self.toolchain.host_root, path, self._mounts)
            plan.write_text(json.dumps(self._mounts))

    def describe(self) -> dict[str, object]:
        """What confines the steps, for the build result."""
        ids = self.ids
        return {
            "uid": ids[0] if ids else os.geteuid(),
            "gid": ids[1] if ids else os.getegid(),
            "limits": hostproc.limit_mechanism().replace("cgroup-v2-available", "rlimit"),
            "processes": self.policy.processes if ids else None,
            "memory": self.policy.memory,
            "file_size": self.policy.file_size,
            "open_files": self.policy.open_files,
            "tmp_size": self.policy.tmp_size,
            "nested_userns": NESTED_USERNS_CAPABILITY in self.cap_add,
            "capabilities": list(self.cap_add),
        }

    def _sources(self) -> dict[str, Path]:
        """Host directories bound into the sandbox that live wherever the caller put them."""
        found = {"root": self.root, "home": self.workspace}
        if self.cache_dir is not None:
            found["cache"] = self.cache_dir
        return found

    def argv(self, step: StepRun, staged: dict[str, str] | None = None) -> list[str]:
        """The bwrap command; ``staged`` replaces host paths by where the child mounted them."""
        paths = {name: str(path) for name, path in self._sources().items()}
        paths.update(staged or {})
        args = [
            bwrap_path(),
            "--ro-bind",
            paths["root"],
            "/",
            *self._mounts,
            "--bind",
            paths["home"],
            GUEST_HOME,
            *(["--bind", paths["cache"], "/var/cache/melange"] if "cache" in paths else []),
            "--size",
            str(self.policy.tmp_size),
            "--tmpfs",
            "/tmp",
            "--dev",
            "/dev",
            "--proc",
            "/proc",
            "--unshare-all",
            "--unshare-user",
        ]
        if NESTED_USERNS_CAPABILITY not in self.cap_add:
            args.append("--disable-userns")
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
            # start from no capabilities so the recipe gets exactly what it asked for
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

    def _launch(self, step: StepRun) -> tuple[list[str], Callable[[], None]]:
        if self.ids is None:
            limits = hostproc.rlimits(self.policy, privileged=False)
            return self.argv(step), hostproc.unprivileged_preexec(limits)
        sources = self._sources()
        hostproc.hand_over(
            [self.workspace, *([self.cache_dir] if self.cache_dir else [])], self.ids
        )
        try:
            staging = hostproc.staging_directory(list(sources.values()))
        except OSError as error:
            raise SandboxError(str(error), where=step.name) from None
        staged = {name: f"{staging}/{name}" for name in sources}
        preexec = hostproc.privileged_preexec(
            self.ids,
            [(str(sources[name]), staged[name]) for name in sources],
            staging,
            hostproc.rlimits(self.policy, privileged=True),
        )
        return self.argv(step, staged), preexec

    def run(self, step: StepRun, *, log_path: Path, on_line: LineCallback | None = None) -> int:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        argv, preexec = self._launch(step)
        with log_path.open("w", encoding="utf-8", errors="replace") as log:
            try:
                process = subprocess.Popen(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                    # bwrap's own environment is readable as /proc/1/environ inside: empty it
                    env={},
                    preexec_fn=preexec,
                )
            except (OSError, subprocess.SubprocessError) as error:
                raise SandboxError(f"cannot start bubblewrap: {error}", where=step.name) from None
            timed_out = threading.Event()

            def _kill() -> None:
                # bwrap leads the session; its pid-namespace init dies with it (--die-with-parent)
                # and takes every process of the step along, setsid or not
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
            except BaseException:
                # Ctrl-C (the step runs in a session of its own, so the terminal's SIGINT
                # reached only us) or a failing line callback: the step must be gone before
                # the caller removes the workspace it writes to
                _kill()
                process.wait()
                raise
            finally:
                if timer:
                    timer.cancel()
            if timed_out.is_set():
                log.write(f"nanodistro: step timed out after {step.timeout:g}s\n")
                return 124
            return status

    def shell(self, step: StepRun) -> int:
        """An interactive ``/bin/sh`` in the sandbox ``step`` ran in (same root, mounts,
        environment and working directory) on this process's terminal (``build --debug``);
        returns when it exits. No timeout. bwrap's ``--new-session`` stays: the shell has no
        controlling terminal (no job control), so nothing in the sandbox can push input into
        the user's terminal after it ends (TIOCSTI)."""
        shell = StepRun(
            step.name,
            "exec /bin/sh -i",
            step.workdir,
            {**step.env, "PS1": "(nanodistro debug) $ "},
        )
        argv, preexec = self._launch(shell)
        # the terminal's Ctrl-C reaches us, not the shell (another session): keep running until
        # the user exits the shell; a handler (unlike SIG_IGN) is not inherited across exec
        previous = signal.signal(signal.SIGINT, lambda _signum, _frame: None)
        try:
            process = subprocess.Popen(argv, env={}, preexec_fn=preexec)
            return process.wait()
        except (OSError, subprocess.SubprocessError) as error:
            raise SandboxError(f"cannot start bubblewrap: {error}", where=step.name) from None
        finally:
            signal.signal(signal.SIGINT, previous)

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
