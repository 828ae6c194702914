"""Hostile build steps and build-environment packages against the real bwrap sandbox.

Each test performs the attack: reading the host's environment, a fork bomb, huge files and
allocations, asking for capabilities and nested user namespaces, and packages whose links point
the host's writes outside the sandbox root.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from nanodistro.builder.orchestrate import BuildConfig, build_recipe
from nanodistro.builder.runners import SandboxPolicy, StepRun, Toolchain
from nanodistro.builder.runners.bubblewrap import BubblewrapRunner
from nanodistro.errors import SandboxError, UnsafePathError
from nanodistro.formats.apk import read_apk, write_apk
from nanodistro.formats.pkginfo import PackageInfo
from nanodistro.formats.tarball import TarEntry
from nanodistro.repo.repository import publish
from nanodistro.util.host import host_arch
from signing_keys import make_key

SECRET = "nanodistro-hostile-secret-3f9a"
POLICY = SandboxPolicy(uid=64123, gid=64123)


def runner(tmp_path: Path, **kwargs: object) -> BubblewrapRunner:
    (tmp_path / "root").mkdir(exist_ok=True)
    (tmp_path / "home").mkdir(exist_ok=True)
    kwargs.setdefault("policy", POLICY)
    return BubblewrapRunner(tmp_path / "root", tmp_path / "home", **kwargs)  # type: ignore[arg-type]


def run(r: BubblewrapRunner, tmp_path: Path, script: str, timeout: float = 60) -> tuple[int, str]:
    log = tmp_path / "logs" / "step.log"
    status = r.run(StepRun("step", script, timeout=timeout), log_path=log)
    return status, log.read_text()


def snapshot(directory: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(directory)): p.read_bytes() if p.is_file() else b"<dir>"
        for p in sorted(directory.rglob("*"))
    }


# ---------------------------------------------------------------- host environment


LEAK_SCRIPT = (
    "for f in /proc/[0-9]*/environ; do tr '\\0' '\\n' < $f; done > /home/build/found 2>&1 || true\n"
    "env >> /home/build/found\n"
    "cat /home/build/found\n"
)


def test_host_environment_is_not_readable_in_the_sandbox(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NANODISTRO_HOSTILE_SECRET", SECRET)
    status, log = run(runner(tmp_path, env={"DECLARED": "yes"}), tmp_path, LEAK_SCRIPT)
    assert status == 0, log
    found = (tmp_path / "home" / "found").read_text()
    assert "DECLARED=yes" in found  # the probe reads environments: the declared one is there
    assert SECRET not in found and SECRET not in log


def test_host_environment_does_not_reach_a_built_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NANODISTRO_HOSTILE_SECRET", SECRET)
    recipe = tmp_path / "recipes" / "leak.yaml"
    recipe.parent.mkdir()
    recipe.write_text(
        "package:\n  name: leak\n  version: '1.0'\n  epoch: 0\n  description: leaks env\n"
        "  copyright:\n    - license: MIT\n"
        "environment:\n  contents:\n    packages: [busybox]\n"
        "pipeline:\n  - runs: |\n"
        + "".join(f"      {line}\n" for line in LEAK_SCRIPT.splitlines())
        + "      mkdir -p ${{targets.destdir}}/usr/share\n"
        "      cp /home/build/found ${{targets.destdir}}/usr/share/found\n"
    )
    config = BuildConfig(
        run_tests=False,
        workspace_dir=tmp_path / "ws",
        keep_workspace=True,
        source_cache=tmp_path / "cache",
        sandbox=POLICY,
    )
    result = build_recipe(recipe, config)
    (package,) = result.packages
    files = {e.path: e.data for e in read_apk(package.data, where="leak").entries}
    assert b"PATH=" in files["usr/share/found"]  # the probe's findings were packaged
    assert SECRET.encode() not in package.data
    assert all(SECRET.encode() not in data for data in files.values())
    assert result.log_dir is not None
    for log in result.log_dir.rglob("*"):
        assert SECRET not in log.read_text(errors="replace"), log
    assert result.sandbox["uid"] == POLICY.uid


# ---------------------------------------------------------------- build user


def test_steps_run_as_the_unprivileged_build_uid(tmp_path: Path) -> None:
    status, log = run(runner(tmp_path), tmp_path, "id -u; touch made; mkdir -p sub/dir")
    assert status == 0, log
    assert log.splitlines()[0] == "1000"  # the guest's view is unchanged
    for made in (tmp_path / "home" / "made", tmp_path / "home" / "sub" / "dir"):
        st = os.lstat(made)
        assert (st.st_uid, st.st_gid) == (POLICY.uid, POLICY.gid)  # host root never builds


def test_host_placed_workspace_files_are_handed_to_the_build_user(tmp_path: Path) -> None:
    (tmp_path / "home" / "src").mkdir(parents=True)
    (tmp_path / "home" / "src" / "configure").write_text("fetched\n")
    status, log = run(runner(tmp_path), tmp_path, "echo built >> src/configure; touch src/new")
    assert status == 0, log
    assert (tmp_path / "home" / "src" / "configure").read_text() == "fetched\nbuilt\n"


def test_root_refuses_a_build_uid_of_zero(tmp_path: Path) -> None:
    with pytest.raises(Exception, match="root"):
        runner(tmp_path, policy=SandboxPolicy(uid=0, gid=0))


# ---------------------------------------------------------------- limits


@pytest.mark.slow
def test_a_fork_bomb_is_stopped_by_the_process_limit(tmp_path: Path) -> None:
    policy = SandboxPolicy(uid=64123, gid=64123, processes=64)
    bomb = "bomb() { bomb | bomb & }; bomb; sleep 8; echo SURVIVED"
    status, log = run(runner(tmp_path, policy=policy), tmp_path, bomb, timeout=6)
    assert status != 0
    assert "fork" in log.lower()  # the shell reports it could not fork: the limit bit
    # the host keeps working and nothing of the bomb is left
    assert subprocess.run(["true"], check=False).returncode == 0
    deadline = time.monotonic() + 10  # the killed pid namespace takes a moment to be reaped
    while (left := _processes_of(policy.uid)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert left == []


def _processes_of(uid: int) -> list[Path]:
    return [p for p in Path("/proc").iterdir() if p.name.isdigit() and _uid_of(p) == uid]


def _uid_of(proc: Path) -> int | None:
    try:
        for line in (proc / "status").read_text().splitlines():
            if line.startswith("Uid:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def test_writing_past_the_file_size_limit_fails(tmp_path: Path) -> None:
    policy = SandboxPolicy(uid=64123, gid=64123, file_size=1 << 20)
    status, log = run(runner(tmp_path, policy=policy), tmp_path, "head -c 4194304 /dev/zero > big")
    assert status != 0, log
    assert (tmp_path / "home" / "big").stat().st_size <= 1 << 20


def test_allocating_past_the_memory_limit_fails(tmp_path: Path) -> None:
    policy = SandboxPolicy(uid=64123, gid=64123, memory=256 << 20)
    script = "python3 -c 'b = bytearray(1 << 30); print(\"ALLOCATED\")'"
    status, log = run(runner(tmp_path, policy=policy), tmp_path, script)
    assert status != 0
    assert "MemoryError" in log and "ALLOCATED" not in log


def test_tmp_is_a_bounded_tmpfs(tmp_path: Path) -> None:
    policy = SandboxPolicy(uid=64123, gid=64123, tmp_size=1 << 20)
    status, log = run(
        runner(tmp_path, policy=policy), tmp_path, "head -c 4194304 /dev/zero > /tmp/big"
    )
    assert status != 0
    assert "No space left" in log


def test_the_build_result_records_uid_and_limits(tmp_path: Path) -> None:
    described = runner(tmp_path).describe()
    assert described["uid"] == POLICY.uid and described["processes"] == POLICY.processes
    assert described["limits"] == "rlimit"
    assert described["nested_userns"] is False


# ---------------------------------------------------------------- capabilities, namespaces


def test_capabilities_outside_the_allow_list_are_refused(tmp_path: Path) -> None:
    with pytest.raises(SandboxError, match="CAP_SYS_MODULE"):
        runner(tmp_path, cap_add=["CAP_SYS_MODULE"])
    with pytest.raises(SandboxError, match="'ALL'"):
        runner(tmp_path, cap_add=["ALL"])


def test_no_nested_user_namespaces_unless_declared(tmp_path: Path) -> None:
    probe = "if unshare -U true; then echo NESTED; else echo REFUSED; fi"
    status, log = run(runner(tmp_path), tmp_path, probe)
    assert status == 0 and "REFUSED" in log and "NESTED" not in log, log
    declared = runner(tmp_path, cap_add=["CAP_SYS_ADMIN"])
    status, log = run(declared, tmp_path, probe)
    assert status == 0 and "NESTED" in log, log  # the probe works when the recipe declares it


# ---------------------------------------------------------------- package links in the root


@pytest.mark.parametrize(
    ("link", "expected"),
    [("etc", "/etc"), ("home", "/home"), ("etc/ssl", "/etc/ssl")],
)
def test_a_package_link_does_not_redirect_root_assembly(
    tmp_path: Path, link: str, expected: str
) -> None:
    host = tmp_path / "host-dir"
    host.mkdir()
    (host / "keep").write_text("untouched\n")
    before = snapshot(host)
    root = tmp_path / "root"
    (root / link).parent.mkdir(parents=True, exist_ok=True)
    os.symlink(host, root / link)
    with pytest.raises(UnsafePathError, match=f"{expected} is a symbolic link"):
        runner(tmp_path)
    assert snapshot(host) == before


def test_a_mount_plan_shipped_in_the_root_is_ignored(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.mkdir()
    (secret / "key").write_text("PRIVATE")
    root = tmp_path / "root"
    root.mkdir()
    (root / ".nanodistro-toolchain-mounts.json").write_text(f'["--ro-bind", "{secret}", "/stolen"]')
    _status, log = run(runner(tmp_path), tmp_path, "cat /stolen/key || echo NOT-VISIBLE")
    assert "NOT-VISIBLE" in log and "PRIVATE" not in log


def _evil_package(directory: Path, host: Path) -> tuple[Path, object]:
    key, keyring = make_key(directory / "keys")
    info = PackageInfo(
        name="evil-etc",
        version="1.0-r0",
        arch=host_arch(),
        description="points etc at a host directory",
        license="MIT",
        url="https://example.org",
    )
    entries = [TarEntry("etc", "symlink", mode=0o777, mtime=1700000000, linkname=str(host))]
    data = write_apk(info, entries, key=key, source_date_epoch=1700000000)
    incoming = directory / "incoming"
    incoming.mkdir()
    path = incoming / "evil-etc-1.0-r0.apk"
    path.write_bytes(data)
    repo = directory / "repo"
    publish([path], repo, key, keyring)
    return repo, (key, keyring)


@pytest.mark.slow
def test_a_published_package_linking_etc_to_the_host_fails_the_build(tmp_path: Path) -> None:
    host = tmp_path / "host-etc"
    host.mkdir()
    (host / "hosts").write_text("127.0.0.1 localhost\n")
    before = snapshot(host)
    repo, (key, keyring) = _evil_package(tmp_path, host)
    recipe = tmp_path / "recipes" / "victim.yaml"
    recipe.parent.mkdir()
    recipe.write_text(
        "package:\n  name: victim\n  version: '1.0'\n  epoch: 0\n  description: victim\n"
        "  copyright:\n    - license: MIT\n"
        "environment:\n  contents:\n    packages: [busybox, evil-etc]\n"
        "pipeline:\n  - runs: echo built\n"
    )
    config = BuildConfig(
        run_tests=False,
        repo=repo,
        key=key,  # type: ignore[arg-type]
        keyring=keyring,  # type: ignore[arg-type]
        workspace_dir=tmp_path / "ws",
        source_cache=tmp_path / "cache",
        sandbox=POLICY,
        toolchain=Toolchain(),
    )
    with pytest.raises(UnsafePathError, match=r"/etc is a symbolic link .*host-etc"):
        build_recipe(recipe, config)
    assert snapshot(host) == before
