"""A build step is untrusted: what it leaves in its output is read without following links.

The slow tests PERFORM the attacks with real builds in the real sandbox: a step replaces
``${{targets.destdir}}`` (or ``melange-out``, or the SBOM directory) with a link to a host
directory holding a fake signing key, or links ``etc/ld.so.conf.d`` and a ``.so`` to host files.
Packaging (running as root on the host) must not write into, read from or pack those host
paths. The build sees only the link text; the danger is the host following it, so the host
paths are real directories the test created.
"""

from __future__ import annotations

import os
import socket
import stat
from pathlib import Path

import pytest

from nanodistro.builder.orchestrate import BuildConfig, build_recipe
from nanodistro.builder.package import read_output
from nanodistro.errors import BuildError
from nanodistro.formats.apk import read_apk

MELANGE = "chainguard-dev+melange/pkg"


SECRET_MARK = b"PRIVATE" + b" KEY"
SECRET = b"-----BEGIN " + SECRET_MARK + b"-----\nfake\n"


def snapshot(root: Path) -> dict[str, tuple[int, bytes | str | None]]:
    """Every path under ``root`` (and root) with its mode and content or link text."""
    state: dict[str, tuple[int, bytes | str | None]] = {}
    for path in [root, *sorted(root.rglob("*"))]:
        st = path.lstat()
        if stat.S_ISLNK(st.st_mode):
            content: bytes | str | None = os.readlink(path)
        elif stat.S_ISREG(st.st_mode):
            content = path.read_bytes()
        else:
            content = None
        state[str(path.relative_to(root))] = (st.st_mode, content)
    return state


@pytest.fixture
def host_dir(tmp_path: Path) -> Path:
    """A host directory the build must never touch: a fake private key, a subdirectory named
    like the package (for a replaced melange-out) and an ld.so.conf.d-style file."""
    host = tmp_path / "host"
    (host / "hostile").mkdir(parents=True)
    # the marker is split so secret scanners do not take this stand-in for a committed key
    (host / "secret.rsa").write_bytes(SECRET)
    (host / "secret.rsa").chmod(0o600)
    (host / "hostile" / "keep").write_text("host file\n")
    (host / "vend.conf").write_text("/opt/vend\n")
    return host


# --- the reader, without a sandbox -------------------------------------------------------------


def workspace(tmp_path: Path) -> tuple[Path, Path]:
    base = tmp_path / "ws"
    out = base / "home" / "melange-out" / "hostile"
    (out / "usr/bin").mkdir(parents=True)
    (out / "usr/bin/x").write_text("x")
    return base, out


def test_read_output_refuses_a_linked_output_root(tmp_path: Path, host_dir: Path) -> None:
    base, out = workspace(tmp_path)
    before = snapshot(host_dir)
    for replaced in (out, out.parent):  # destdir itself, or melange-out above it
        moved = replaced.with_name(replaced.name + ".orig")
        replaced.rename(moved)
        replaced.symlink_to(host_dir)
        with pytest.raises(BuildError) as error:
            read_output(out, workspace=base, source_date_epoch=0)
        assert error.value.where == str(replaced)
        assert "symbolic link" in error.value.message and str(host_dir) in error.value.message
        replaced.unlink()
        moved.rename(replaced)
    assert snapshot(host_dir) == before
    with pytest.raises(BuildError, match="not beneath"):
        read_output(host_dir, workspace=base, source_date_epoch=0)


def test_read_output_keeps_links_as_links_and_refuses_special_files(
    tmp_path: Path, host_dir: Path
) -> None:
    base, out = workspace(tmp_path)
    (out / "usr/share").mkdir()
    (out / "usr/share/key").symlink_to(host_dir / "secret.rsa")
    (out / "etc").symlink_to(host_dir)
    entries = {e.path: e for e in read_output(out, workspace=base, source_date_epoch=5)}
    assert (entries["usr/share/key"].type, entries["usr/share/key"].linkname) == (
        "symlink",
        str(host_dir / "secret.rsa"),
    )
    assert entries["etc"].type == "symlink" and "etc/secret.rsa" not in entries
    assert not any(SECRET_MARK in e.data for e in entries.values())
    os.mkfifo(out / "usr/pipe")
    with pytest.raises(BuildError) as error:
        read_output(out, workspace=base, source_date_epoch=0)
    assert error.value.where == str(out / "usr/pipe") and "fifo" in error.value.message
    (out / "usr/pipe").unlink()
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(out / "usr/sock"))
    try:
        with pytest.raises(BuildError) as error:
            read_output(out, workspace=base, source_date_epoch=0)
        assert error.value.where == str(out / "usr/sock")
    finally:
        sock.close()


# --- the attacks, through real builds in the sandbox ------------------------------------------


def recipe(tmp_path: Path, attack: str, name: str = "hostile") -> Path:
    steps = "\n".join(f"      {line}" for line in attack.strip().splitlines())
    text = f"""package:
  name: {name}
  version: "1"
  epoch: 0
  description: a build that attacks the host through its output
  copyright:
    - license: MIT
environment:
  contents:
    packages: [build-base, busybox]
pipeline:
  - runs: |
      mkdir -p ${{{{targets.destdir}}}}/usr/bin
      echo hello > ${{{{targets.destdir}}}}/usr/bin/hello
{steps}
"""
    path = tmp_path / "recipes" / f"{name}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def build(tmp_path: Path, path: Path) -> list[tuple[str, bytes]]:
    config = BuildConfig(
        source_cache=tmp_path / "cache", workspace_dir=tmp_path / "ws", run_tests=False
    )
    return [(p.filename, p.data) for p in build_recipe(path, config).packages]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("attack", "named"),
    [
        # the output directory itself becomes a link to the host directory
        (
            "rm -rf ${{targets.destdir}} && ln -s {host} ${{targets.destdir}}",
            "melange-out/hostile",
        ),
        # melange-out, above every package's output
        (
            "rm -rf /home/build/melange-out && ln -s {host} /home/build/melange-out",
            "melange-out",
        ),
        # the SBOM directory: packaging used to write the SBOM through it
        (
            "mkdir -p ${{targets.destdir}}/var/lib/db && "
            "ln -s {host} ${{targets.destdir}}/var/lib/db/sbom",
            "melange-out/hostile/var/lib/db/sbom",
        ),
        ("ln -s {host} ${{targets.destdir}}/var", "melange-out/hostile/var"),
    ],
)
def test_a_linked_output_never_reaches_the_host(
    tmp_path: Path, host_dir: Path, attack: str, named: str
) -> None:
    before = snapshot(host_dir)
    path = recipe(tmp_path, attack.replace("{host}", str(host_dir)))
    with pytest.raises(BuildError) as error:
        build(tmp_path, path)
    assert str(error.value.where).endswith(named), error.value
    assert snapshot(host_dir) == before  # no SBOM written, no folder made, no mode changed
    assert not list(tmp_path.rglob("*.apk"))


@pytest.mark.slow
def test_a_fifo_in_the_output_is_a_clear_error(tmp_path: Path) -> None:
    path = recipe(tmp_path, "mkfifo ${{targets.destdir}}/usr/bin/pipe")
    with pytest.raises(BuildError) as error:
        build(tmp_path, path)
    assert str(error.value.where).endswith("melange-out/hostile/usr/bin/pipe")
    assert "special file (fifo)" in error.value.message
    assert not list(tmp_path.rglob("*.apk"))


@pytest.mark.slow
def test_sca_does_not_read_host_files_through_links(
    tmp_path: Path, host_dir: Path, third_party: Path
) -> None:
    """etc/ld.so.conf.d -> a host dir whose vend.conf names /opt/vend, and a .so link to a
    host library: followed, they would make opt/vend/libvend.so.1 a provided library and add
    the host library's soname as a dependency. The links themselves are packaged as links."""
    fixture = third_party / MELANGE / "sca/testdata/libcap-2.69-r0.apk"
    library = read_apk(fixture.read_bytes(), where=str(fixture)).entries
    host_lib = host_dir / "libcap.so.2.69"  # a real library, DT_SONAME libcap.so.2
    host_lib.write_bytes(next(e.data for e in library if e.path == "usr/lib/libcap.so.2.69"))
    before = snapshot(host_dir)
    path = recipe(
        tmp_path,
        f"""
d=${{{{targets.destdir}}}}
mkdir -p $d/etc $d/opt/vend $d/usr/lib $d/usr/share
printf 'int v(void) {{ return 1; }}\\n' > v.c
cc -shared -fPIC -Wl,-soname,libvend.so.1 -o $d/opt/vend/libvend.so.1 v.c
ln -s {host_dir} $d/etc/ld.so.conf.d
ln -s {host_lib} $d/usr/lib/libhost.so
ln -s {host_dir}/secret.rsa $d/usr/share/key
""",
    )
    ((filename, data),) = build(tmp_path, path)
    apk = read_apk(data, where=filename)
    assert "so:libcap.so.2" not in apk.info.depends
    assert not any(p.startswith("so:libvend") for p in apk.info.provides)
    entries = {e.path: e for e in apk.entries}
    assert entries["etc/ld.so.conf.d"].type == "symlink"
    assert (entries["usr/share/key"].type, entries["usr/share/key"].linkname) == (
        "symlink",
        str(host_dir / "secret.rsa"),
    )
    assert not any(SECRET_MARK in e.data for e in apk.entries)
    assert snapshot(host_dir) == before
