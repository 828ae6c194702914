"""Users, groups, home directories and the run-as user of an image (apko pkg/build/accounts.go,
pkg/passwd).

Configured groups and users are merged into the packages' ``etc/group`` and ``etc/passwd``; every
account's missing home directory is created (parents 0755, the home 0700, owned by the account) as
apko does; ``accounts.run-as`` becomes the numeric ``uid:gid`` written to the image config.
"""

from __future__ import annotations

from nanodistro.errors import ConfigError, ImageError
from nanodistro.formats.tarball import TarEntry
from nanodistro.image.rootfs import RootFS
from nanodistro.imageconfig.model import ImageConfig, User

GECOS = "Account created by apko"
HOMELESS = "/dev/null"  # apko creates no home for accounts whose home is /dev/null


def _write(fs: RootFS, path: str, data: bytes, *, mode: int = 0o644, mtime: int) -> None:
    fs.put(TarEntry(path, "file", mode=mode, data=data, mtime=mtime))


def parse_colon_file(data: bytes | None) -> list[list[str]]:
    """The rows of a passwd/group/shadow file (comments and blank lines dropped)."""
    if not data:
        return []
    rows = []
    for line in data.decode("utf-8", "replace").splitlines():
        if line.strip() and not line.startswith("#"):
            rows.append(line.split(":"))
    return rows


def _passwd_row(user: User) -> list[str]:
    return [
        user.username,
        "x",
        str(user.uid),
        str(user.effective_gid),
        GECOS,
        user.effective_homedir,
        user.effective_shell,
    ]


def apply_accounts(fs: RootFS, config: ImageConfig, *, mtime: int) -> None:
    """Merge configured users/groups into etc/passwd and etc/group and create home directories.

    A configured user replaces a package's line of the same name in place (the config is what the
    image author asked for: uid, gid, home and shell); apko appends a second line instead, which
    libc never reads because the package's comes first."""
    accounts = config.accounts
    if not accounts.users and not accounts.groups:
        if fs.get("etc/passwd") is None:  # apko always writes etc/passwd
            _write(fs, "etc/passwd", b"", mtime=mtime)
        _create_homes(fs, parse_colon_file(fs.read("etc/passwd")), set(), mtime=mtime)
        return
    passwd = parse_colon_file(fs.read("etc/passwd"))
    group = parse_colon_file(fs.read("etc/group"))
    group_names = {row[0] for row in group}
    for g in accounts.groups:
        if g.groupname not in group_names:
            group.append([g.groupname, "x", str(g.gid), ",".join(g.members)])
    for u in accounts.users:
        row = _passwd_row(u)
        index = next((i for i, r in enumerate(passwd) if r[0] == u.username), None)
        if index is None:
            passwd.append(row)
        else:
            passwd[index] = row
    _write(fs, "etc/passwd", "".join(":".join(r) + "\n" for r in passwd).encode(), mtime=mtime)
    _write(fs, "etc/group", "".join(":".join(r) + "\n" for r in group).encode(), mtime=mtime)
    _create_homes(fs, passwd, {u.username for u in accounts.users}, mtime=mtime)
    _add_shadow_entries(fs, [u.username for u in accounts.users], mtime=mtime)


def _create_homes(fs: RootFS, passwd: list[list[str]], configured: set[str], *, mtime: int) -> None:
    """Every account's home directory, as apko's MutateAccounts makes them.

    apko leaves a home that already exists alone (system accounts live in /, /bin, /sbin). One
    exception here: the home of a user the image config defines, when a package only reserved it
    (an empty directory no other account uses), is given to that user like a created one, so the
    user can write to its home (and to a ``work-dir`` there)."""
    homes: dict[str, int] = {}
    for row in passwd:
        if len(row) >= 6:
            home = row[5].strip("/")
            homes[home] = homes.get(home, 0) + 1
    for row in passwd:
        if len(row) < 7 or not row[2].isdigit() or not row[3].isdigit():
            continue  # apko refuses malformed lines; packages' files are not ours to judge
        name, uid, gid, home_dir = row[0], int(row[2]), int(row[3]), row[5]
        home = home_dir.strip("/")
        if home_dir == HOMELESS or not home:
            continue
        node = fs.get(home)
        if node is None:
            fs.put(TarEntry(home, "dir", mode=0o700, uid=uid, gid=gid, mtime=mtime))
            continue
        if node.entry.type != "dir":
            raise ImageError(
                f"{name} home directory {home_dir} exists, but is not a directory",
                where="etc/passwd",
            )
        reserved = name in configured and homes.get(home, 0) == 1 and not fs.children(home)
        if reserved:
            node.entry.uid, node.entry.gid, node.entry.mode = uid, gid, 0o700


def _add_shadow_entries(fs: RootFS, users: list[str], *, mtime: int) -> None:
    """Each configured user gets a locked (``!``) etc/shadow line unless the packages' shadow
    already has one (apko pkg/build/accounts.go + pkg/passwd/shadow.go: nine fields, min 0)."""
    if not users:
        return
    existing = fs.get("etc/shadow")
    rows = parse_colon_file(fs.read("etc/shadow"))
    known = {row[0] for row in rows}
    rows += [[name, "!", "", "0", "", "", "", "", ""] for name in users if name not in known]
    mode = existing.entry.mode if existing is not None else 0o640
    data = "".join(":".join(r) + "\n" for r in rows).encode()
    _write(fs, "etc/shadow", data, mode=mode, mtime=mtime)


def owner_names(fs: RootFS) -> tuple[dict[int, str], dict[int, str]]:
    """uid -> user name and gid -> group name from the image's own passwd/group files."""
    users: dict[int, str] = {}
    groups: dict[int, str] = {}
    for row in parse_colon_file(fs.read("etc/passwd")):
        if len(row) > 2 and row[2].isdigit():
            users.setdefault(int(row[2]), row[0])
    for row in parse_colon_file(fs.read("etc/group")):
        if len(row) > 2 and row[2].isdigit():
            groups.setdefault(int(row[2]), row[0])
    return users, groups


def resolve_run_as(run_as: str, fs: RootFS, *, where: str = "") -> str:
    """``accounts.run-as`` as the numeric ``uid:gid`` for the image config's ``User``.

    apko looks a name up in the image's etc/passwd (configured and package accounts); a name is
    written as its uid and primary gid here, so that Kubernetes ``runAsNonRoot`` can check the
    image without reading its files. ``user:group`` resolves both parts; numbers stay as given."""
    if not run_as:
        return ""
    user, sep, group = run_as.partition(":")
    if user.isdigit() and (not sep or group.isdigit()):
        return run_as
    passwd: dict[str, tuple[str, str]] = {}
    for row in parse_colon_file(fs.read("etc/passwd")):
        if len(row) > 3 and row[2].isdigit() and row[3].isdigit():
            passwd.setdefault(row[0], (row[2], row[3]))
    if user.isdigit():
        uid, gid = user, ""
    elif user in passwd:
        uid, gid = passwd[user]
    else:
        defined = ", ".join(sorted(passwd)) or "none"
        raise ConfigError(
            f"run-as user {user!r} is not defined: no account in accounts.users or the "
            f"image's etc/passwd has that name (defined: {defined})",
            where=where or None,
            field="accounts.run-as",
        )
    if sep:
        gid = group if group.isdigit() else _group_id(group, fs, where)
    return f"{uid}:{gid}"


def _group_id(name: str, fs: RootFS, where: str) -> str:
    for row in parse_colon_file(fs.read("etc/group")):
        if len(row) > 2 and row[0] == name and row[2].isdigit():
            return row[2]
    raise ConfigError(
        f"run-as group {name!r} is not defined: no group in accounts.groups or the image's "
        "etc/group has that name",
        where=where or None,
        field="accounts.run-as",
    )
