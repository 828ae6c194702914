"""Accounts as apko makes them: passwd/group lines, home directories, run-as as numeric uid:gid.

The last tests build a nonroot image the way the example workspace does (a baselayout package
that already lists ``nonroot`` and reserves ``/home/nonroot``) and check it with skopeo and runc.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from image_testlib import Pkg, build_apk, build_repo, busybox_packages, make_key

from nanodistro.errors import ConfigError, ImageError
from nanodistro.factory.smoke import SmokeTest, run_smoke_test
from nanodistro.formats.tarball import TarEntry
from nanodistro.image.accounts import resolve_run_as
from nanodistro.image.apkfile import open_apk
from nanodistro.image.build import BuildRequest, build_image, write_result
from nanodistro.image.install import assemble_root
from nanodistro.image.oci_layout import Layout
from nanodistro.image.rootfs import RootFS
from nanodistro.imageconfig import load_config, load_config_text
from needs_tools import require_tools

NONROOT_PASSWD = (
    b"root:x:0:0:root:/root:/bin/sh\n"
    b"nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n"
    b"nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n"
)
NONROOT_GROUP = b"root:x:0:\nnobody:x:65534:\nnonroot:x:65532:\n"


@pytest.fixture(scope="module")
def key(tmp_path_factory: pytest.TempPathFactory) -> object:
    return make_key(tmp_path_factory.mktemp("keys"))


def _assemble(config_text: str, pkgs: list[Pkg], key: object) -> RootFS:
    config = load_config_text(config_text).config
    root = assemble_root(
        config,
        [(open_apk(build_apk(p, "x86_64", key), where=p.name), "repo") for p in pkgs],  # type: ignore[arg-type]
        apk_arch="x86_64",
        keyring={},
        runtime_repositories=[],
        world=[p.name for p in pkgs],
        source_date_epoch=42,
    )
    return root.fs


def _meta(fs: RootFS, path: str) -> tuple[str, int, int, int]:
    node = fs.nodes[path]
    return node.entry.type, node.entry.mode, node.entry.uid, node.entry.gid


def _passwd(fs: RootFS) -> list[str]:
    data = fs.read("etc/passwd")
    assert data is not None
    return data.decode().splitlines()


def test_configured_users_are_added_with_their_home_shell_and_group(key: object) -> None:
    config = """\
accounts:
  groups: [{groupname: web, gid: 1000, members: [web, ops]}]
  users:
    - {username: web, uid: 1000, shell: /sbin/nologin, homedir: /srv/www/web}
    - {username: app, uid: 2000, gid: 3000}
"""
    base = Pkg("base", files={"etc/passwd": b"root:x:0:0:root:/root:/bin/sh\n"}, dirs=["root"])
    fs = _assemble(config, [base], key)
    assert _passwd(fs) == [
        "root:x:0:0:root:/root:/bin/sh",
        "web:x:1000:1000:Account created by apko:/srv/www/web:/sbin/nologin",
        "app:x:2000:3000:Account created by apko:/home/app:/bin/sh",  # apko's defaults
    ]
    assert fs.read("etc/group") == b"web:x:1000:web,ops\n"
    # apko: missing parents 0755 root-owned, the home itself 0700 owned by the account
    assert _meta(fs, "srv") == _meta(fs, "srv/www") == ("dir", 0o755, 0, 0)
    assert _meta(fs, "srv/www/web") == ("dir", 0o700, 1000, 1000)
    assert _meta(fs, "home/app") == ("dir", 0o700, 2000, 3000)
    assert _meta(fs, "root") == ("dir", 0o755, 0, 0)  # existing homes are left alone


def test_a_configured_user_replaces_the_package_line_and_gets_its_reserved_home(
    key: object,
) -> None:
    """The example workspace's case: the baselayout lists nonroot (nologin) and ships an empty
    /home/nonroot owned by root; the image config defines nonroot with a shell."""
    config = """\
accounts:
  users: [{username: nonroot, uid: 65532, gid: 65532, shell: /bin/sh}]
  groups: [{groupname: nonroot, gid: 65532}]
"""
    base = Pkg(
        "baselayout",
        files={"etc/passwd": NONROOT_PASSWD, "etc/group": NONROOT_GROUP},
        dirs=["root", "home/nonroot"],
    )
    fs = _assemble(config, [base], key)
    assert _passwd(fs) == [
        "root:x:0:0:root:/root:/bin/sh",
        "nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin",
        "nonroot:x:65532:65532:Account created by apko:/home/nonroot:/bin/sh",
    ]
    assert fs.read("etc/group") == NONROOT_GROUP  # already there: not added twice
    assert _meta(fs, "home/nonroot") == ("dir", 0o700, 65532, 65532)
    # apko creates the missing home of every account, the packages' too
    assert _meta(fs, "nonexistent") == ("dir", 0o700, 65534, 65534)
    assert _meta(fs, "root") == ("dir", 0o755, 0, 0)


def test_homes_with_content_shared_or_homeless_are_not_taken(key: object) -> None:
    passwd = (
        b"root:x:0:0:root:/root:/bin/sh\n"
        b"sshd:x:22:22:sshd:/var/empty:/sbin/nologin\n"
        b"daemon:x:2:2:daemon:/dev/null:/sbin/nologin\n"
    )
    config = """\
accounts:
  users:
    - {username: app, uid: 100, homedir: /opt/app}
    - {username: shared, uid: 101, homedir: /var/empty}
"""
    base = Pkg(
        "base",
        files={"etc/passwd": passwd, "opt/app/config": b"x"},
        dirs=["root", "var/empty"],
    )
    fs = _assemble(config, [base], key)
    assert _meta(fs, "opt/app") == ("dir", 0o755, 0, 0)  # holds a package's file
    assert _meta(fs, "var/empty") == ("dir", 0o755, 0, 0)  # sshd's home as well
    assert "dev/null" in fs.nodes and fs.nodes["dev/null"].entry.type == "chr"


def test_a_home_that_is_a_file_is_an_error(key: object) -> None:
    config = "accounts:\n  users: [{username: app, uid: 100, homedir: /etc/os-release}]\n"
    base = Pkg("base", files={"etc/os-release": b"ID=x\n"})
    with pytest.raises(ImageError) as raised:
        _assemble(config, [base], key)
    assert (
        raised.value.message == "app home directory /etc/os-release exists, but is not a directory"
    )


def _fs_with(passwd: bytes, group: bytes = b"") -> RootFS:
    fs = RootFS()
    fs.put(TarEntry("etc/passwd", "file", data=passwd))
    fs.put(TarEntry("etc/group", "file", data=group))
    return fs


@pytest.mark.parametrize(
    ("run_as", "user"),
    [
        ("nonroot", "65532:65532"),
        ("app", "1000:3000"),  # the primary gid from etc/passwd
        ("app:nonroot", "1000:65532"),
        ("app:7", "1000:7"),
        ("1234:nonroot", "1234:65532"),
        ("1234", "1234"),  # numeric stays as written
        ("1234:5", "1234:5"),
        ("", ""),
    ],
)
def test_run_as_becomes_numeric(run_as: str, user: str) -> None:
    fs = _fs_with(
        b"nonroot:x:65532:65532::/home/nonroot:/sbin/nologin\napp:x:1000:3000::/app:/bin/sh\n",
        b"nonroot:x:65532:\n",
    )
    assert resolve_run_as(run_as, fs) == user


def test_unknown_run_as_user_or_group_is_an_error_naming_the_field() -> None:
    fs = _fs_with(b"app:x:1000:1000::/app:/bin/sh\n", b"app:x:1000:\n")
    with pytest.raises(ConfigError) as raised:
        resolve_run_as("nonroot", fs, where="img.yaml")
    assert str(raised.value) == (
        "img.yaml: accounts.run-as: run-as user 'nonroot' is not defined: no account in "
        "accounts.users or the image's etc/passwd has that name (defined: app)"
    )
    with pytest.raises(ConfigError) as raised:
        resolve_run_as("app:wheel", fs, where="img.yaml")
    assert raised.value.field == "accounts.run-as" and "'wheel'" in raised.value.message


# ---- built images --------------------------------------------------------------------------

NONROOT_CONFIG = """\
contents:
  keyring: [./keys/test-image.rsa.pub]
  repositories: [./repo]
  packages: [baselayout, busybox]
accounts:
  run-as: nonroot
  users: [{username: nonroot, uid: 65532, gid: 65532, homedir: /home/nonroot}]
  groups: [{groupname: nonroot, gid: 65532, members: [nonroot]}]
work-dir: /home/nonroot
entrypoint:
  command: /usr/bin/sh
archs: [amd64]
"""


@pytest.fixture(scope="module")
def nonroot_layout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("nonroot")
    key = make_key(root / "keys")
    _, busybox, _ = busybox_packages()
    baselayout = Pkg(
        "baselayout",
        files={"etc/passwd": NONROOT_PASSWD, "etc/group": NONROOT_GROUP},
        dirs=["usr/bin", "usr/lib", "root", "home/nonroot"],
        symlinks={"lib": "usr/lib", "bin": "usr/bin"},
        provides=["test-baselayout=1.0-r0"],  # what busybox depends on
    )
    build_repo(root / "repo", [baselayout, busybox], key)
    (root / "img.yaml").write_text(NONROOT_CONFIG)
    result = build_image(BuildRequest(loaded=load_config(root / "img.yaml"), source_date_epoch=0))
    write_result(result, root / "out")
    return root / "out"


def test_run_as_name_is_written_as_uid_gid(nonroot_layout: Path) -> None:
    (image,) = Layout(nonroot_layout).images()
    assert image.config["config"]["User"] == "65532:65532"
    assert image.config["config"]["WorkingDir"] == "/home/nonroot"


def test_skopeo_shows_the_numeric_user(nonroot_layout: Path) -> None:
    require_tools("skopeo")
    inspect = subprocess.run(
        ["skopeo", "inspect", "--config", f"oci:{nonroot_layout}:latest"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(inspect.stdout)["config"]["User"] == "65532:65532"


def test_the_work_dir_is_the_users_and_writable(nonroot_layout: Path) -> None:
    require_tools("umoci", "runc")
    test = SmokeTest(
        args=["-c", "touch ./written && id -u && pwd && grep ^nonroot: /etc/passwd"],
        expect="65532\n/home/nonroot\n"
        "nonroot:x:65532:65532:Account created by apko:/home/nonroot:/bin/sh",
    )
    result = run_smoke_test(nonroot_layout, "latest", test, ["/usr/bin/sh"], runtime="runc")
    assert result.passed, result
