"""The bubblewrap sandbox: no network, read-only root, only /home/build writable, logs, timeouts."""

from __future__ import annotations

import socket
import subprocess
import threading
from pathlib import Path

import pytest

from nanodistro.builder.runners import StepRun, Toolchain
from nanodistro.builder.runners.bubblewrap import BubblewrapRunner


def runner(tmp_path: Path, **kwargs: object) -> BubblewrapRunner:
    (tmp_path / "root").mkdir(exist_ok=True)
    (tmp_path / "home").mkdir(exist_ok=True)
    return BubblewrapRunner(tmp_path / "root", tmp_path / "home", **kwargs)  # type: ignore[arg-type]


def run(r: BubblewrapRunner, tmp_path: Path, script: str, **kwargs: object) -> tuple[int, str]:
    log = tmp_path / "logs" / "step.log"
    status = r.run(StepRun("step", script, **kwargs), log_path=log)  # type: ignore[arg-type]
    return status, log.read_text()


@pytest.fixture
def listener() -> tuple[int, threading.Event]:
    """A TCP port listening on 127.0.0.1 that records whether anyone connected."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    connected = threading.Event()

    def accept() -> None:
        server.settimeout(15)
        try:
            conn, _ = server.accept()
            connected.set()
            conn.close()
        except OSError:
            pass
        finally:
            server.close()

    threading.Thread(target=accept, daemon=True).start()
    return server.getsockname()[1], connected


PROBE = (
    'python3 -c "import socket,sys; s=socket.socket(); s.settimeout(3); '
    "s.connect(('127.0.0.1', {port})); print('CONNECTED')\""
)


def test_no_network_in_the_sandbox(tmp_path: Path, listener: tuple[int, threading.Event]) -> None:
    port, connected = listener
    status, log = run(runner(tmp_path), tmp_path, PROBE.format(port=port))
    assert status != 0
    assert "CONNECTED" not in log
    assert not connected.is_set()


def test_the_same_probe_connects_with_network(
    tmp_path: Path, listener: tuple[int, threading.Event]
) -> None:
    # proves the probe itself works, so the test above shows isolation, not a broken probe
    port, connected = listener
    status, log = run(runner(tmp_path, network=True), tmp_path, PROBE.format(port=port))
    assert status == 0, log
    assert "CONNECTED" in log
    assert connected.wait(5)


def test_only_home_build_is_writable(tmp_path: Path) -> None:
    r = runner(tmp_path, env={"SOURCE_DATE_EPOCH": "42", "HOME": "/home/build"})
    status, log = run(
        r,
        tmp_path,
        "id -u; echo $SOURCE_DATE_EPOCH; echo $HOME; pwd\n"
        "touch /home/build/ok\n"
        "for p in /usr/x /etc/x /x /var/x; do touch $p 2>/dev/null && echo WROTE $p; done\n"
        "ls /home/build/../../root/.ssh 2>/dev/null || true\n",
        workdir="/home/build/sub",
    )
    assert status == 0, log
    lines = log.splitlines()
    assert lines[:4] == ["1000", "42", "/home/build", "/home/build/sub"]
    assert "WROTE" not in log
    assert (tmp_path / "home" / "ok").is_file()


def test_keys_and_host_home_are_not_visible(tmp_path: Path) -> None:
    secret = tmp_path / "secret.rsa"
    secret.write_text("PRIVATE")
    _status, log = run(runner(tmp_path), tmp_path, f"cat {secret} || echo NOT-VISIBLE")
    assert "NOT-VISIBLE" in log and "PRIVATE" not in log


def test_failure_status_and_log(tmp_path: Path) -> None:
    status, log = run(runner(tmp_path), tmp_path, "echo before\nfalse\necho after")
    assert status == 1
    assert "before" in log and "after" not in log


def test_step_timeout(tmp_path: Path) -> None:
    status, log = run(runner(tmp_path), tmp_path, "echo start; sleep 30", timeout=1)
    assert status == 124
    assert "timed out" in log


def test_lines_are_streamed(tmp_path: Path) -> None:
    seen: list[str] = []
    r = runner(tmp_path)
    r.run(StepRun("s", "echo one; echo two >&2"), log_path=tmp_path / "l.log", on_line=seen.append)
    assert seen == ["one", "two"]


def test_packages_in_root_merge_with_the_toolchain(tmp_path: Path) -> None:
    include = tmp_path / "root" / "usr" / "include"
    include.mkdir(parents=True)
    (include / "nanodistro_demo.h").write_text("#define ANSWER 42\n")
    r = runner(tmp_path)
    script = (
        "cat > a.c <<'EOF'\n#include <stdio.h>\n#include <nanodistro_demo.h>\n"
        'int main(void) { printf("%d\\n", ANSWER); return 0; }\nEOF\n'
        "gcc a.c -o a && ./a"
    )
    status, log = run(r, tmp_path, script)
    assert status == 0, log
    assert log.strip().splitlines()[-1] == "42"


def test_toolchain_identity_names_the_compilers() -> None:
    identity = Toolchain().identity()
    for package in ("gcc", "libc6"):
        installed = subprocess.run(
            ["dpkg-query", "-W", "-f", "${Version}", package],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert identity[f"dpkg.{package}"] == installed


def test_melange_cache_dir_is_per_build_and_writable(tmp_path: Path) -> None:
    r = runner(tmp_path, cache_dir=tmp_path / "cache")
    status, log = run(r, tmp_path, "echo kept > /var/cache/melange/x; cat /var/cache/melange/x")
    assert status == 0, log
    assert (tmp_path / "cache" / "x").read_text() == "kept\n"


def test_capabilities_are_exactly_what_was_asked(tmp_path: Path) -> None:
    status, log = run(runner(tmp_path), tmp_path, "grep CapEff /proc/self/status")
    assert status == 0 and log.split()[-1] == "0000000000000000"
    added = runner(tmp_path, cap_add=["CAP_NET_BIND_SERVICE"])
    status, log = run(added, tmp_path, "grep CapEff /proc/self/status")
    assert status == 0 and log.split()[-1] == "0000000000000400"  # bit 10 only
