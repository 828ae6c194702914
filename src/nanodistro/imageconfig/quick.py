"""A config the schema would accept unchanged, recognised without pydantic.

Most image configs are string lists, strings, accounts and paths. ``quick_config`` accepts
exactly those (keys in their YAML spelling, values already of their final type, nothing a
validator would convert or refuse) and builds the plain classes directly; anything else
(layering, certificates, a mode written as a string, a user with uid 0 or without a uid, numbers
where strings go, empty entries, unknown keys, a field named in its Python spelling...) returns
None and goes through ``schema.py``, which then decides and words any error. So the result never
differs from the schema's, only the cost does (no pydantic import, ~0.35 s of an
``image build``); tests/image/test_imageconfig_quick.py compares the two.
"""

from __future__ import annotations

from typing import Any

from nanodistro.errors import ConfigError
from nanodistro.imageconfig.arch import Arch
from nanodistro.imageconfig.model import (
    Accounts,
    Contents,
    Entrypoint,
    Group,
    ImageConfig,
    PathMutation,
    User,
)

_STRINGS = ("cmd", "stop-signal", "work-dir", "vcs-url", "include")
_CONTENTS_LISTS = ("repositories", "build_repositories", "runtime_repositories", "packages")


def _strings(value: Any) -> bool:
    return type(value) is list and all(type(v) is str for v in value)


def _string_map(value: Any) -> bool:
    return type(value) is dict and all(type(v) is str for v in value.values())


def _contents(data: Any) -> Contents | None:
    if type(data) is not dict or not set(data) <= {*_CONTENTS_LISTS, "keyring"}:
        return None
    contents = Contents()
    for key, value in data.items():
        if not _strings(value):
            return None
        if key in _CONTENTS_LISTS:
            # the schema's _no_empty: entries stripped, an empty one refused (by the schema)
            stripped = [v.strip() for v in value]
            if not all(stripped):
                return None
            value = stripped
        setattr(contents, key, list(value))
    return contents


def _entrypoint(data: Any) -> Entrypoint | None:
    if type(data) is not dict or not set(data) <= {"type", "command", "shell-fragment", "services"}:
        return None
    services = data.get("services", {})
    strings = [v for k, v in data.items() if k != "services"]
    if not all(type(v) is str for v in strings) or not _string_map(services):
        return None
    kind = data.get("type", "")
    if kind not in ("", "service-bundle"):
        return None
    return Entrypoint(
        type=kind,
        command=data.get("command", ""),
        shell_fragment=data.get("shell-fragment", ""),
        services=dict(services),
    )


_PATH_TYPES = ("directory", "empty-file", "hardlink", "symlink", "permissions")
_PATH_KEYS = {"path", "type", "uid", "gid", "permissions", "source", "recursive"}


def _path(data: Any) -> PathMutation | None:
    """A ``paths:`` entry the schema accepts as written (modes as numbers, not strings)."""
    if type(data) is not dict or not set(data) <= _PATH_KEYS:
        return None
    path, kind, source = data.get("path"), data.get("type"), data.get("source", "")
    uid, gid, mode = data.get("uid", 0), data.get("gid", 0), data.get("permissions")
    recursive = data.get("recursive", False)
    if type(path) is not str or not path.strip() or kind not in _PATH_TYPES:
        return None
    if type(source) is not str or (kind in ("hardlink", "symlink") and not source):
        return None
    if type(uid) is not int or type(gid) is not int or type(recursive) is not bool:
        return None
    if mode is not None and (type(mode) is not int or not 0 <= mode <= 0o7777):
        return None
    return PathMutation(
        path=path,
        type=kind,
        uid=uid,
        gid=gid,
        permissions=mode,
        source=source,
        recursive=recursive,
    )


_ID_LIMIT = 2**32


def _user(data: Any) -> User | None:
    """A user the schema accepts as written: a username, a uid from 1, an optional gid."""
    if type(data) is not dict or not set(data) <= {"username", "uid", "gid", "shell", "homedir"}:
        return None
    username, uid, gid = data.get("username", ""), data.get("uid"), data.get("gid")
    shell, homedir = data.get("shell", ""), data.get("homedir", "")
    if not all(type(v) is str for v in (username, shell, homedir)) or not username:
        return None
    if type(uid) is not int or not 0 < uid < _ID_LIMIT:
        return None
    if gid is not None and (type(gid) is not int or not 0 <= gid < _ID_LIMIT):
        return None
    return User(username=username, uid=uid, gid=gid, shell=shell, homedir=homedir)


def _group(data: Any) -> Group | None:
    """A group the schema accepts as written: a groupname, a gid from 1, member names."""
    if type(data) is not dict or not set(data) <= {"groupname", "gid", "members"}:
        return None
    groupname, gid = data.get("groupname", ""), data.get("gid")
    members = data.get("members", [])
    if type(groupname) is not str or not groupname or not _strings(members):
        return None
    if type(gid) is not int or not 0 < gid < _ID_LIMIT:
        return None
    return Group(groupname=groupname, gid=gid, members=list(members))


def _accounts(data: Any) -> Accounts | None:
    if type(data) is not dict or not set(data) <= {"run-as", "users", "groups"}:
        return None
    run_as, users, groups = data.get("run-as", ""), data.get("users", []), data.get("groups", [])
    if type(run_as) is not str or type(users) is not list or type(groups) is not list:
        return None
    plain_users = [_user(u) for u in users]
    plain_groups = [_group(g) for g in groups]
    names = [u.username for u in plain_users if u is not None]
    if None in plain_users or None in plain_groups or len(set(names)) != len(names):
        return None  # the schema words the problem (a duplicate user among them)
    return Accounts(
        run_as=run_as,
        users=[u for u in plain_users if u is not None],
        groups=[g for g in plain_groups if g is not None],
    )


def _known_arch(name: str) -> bool:
    if name == "all":
        return True
    try:
        Arch.parse(name)
    except ConfigError:
        return False
    return True


def quick_config(data: Any) -> ImageConfig | None:
    """The config ``schema.ImageConfig`` would give for ``data``, or None to ask the schema."""
    if type(data) is not dict:
        return None
    config = ImageConfig()
    for key, value in data.items():
        if key in _STRINGS:
            if type(value) is not str:
                return None
            setattr(config, key.replace("-", "_"), value)
        elif key == "contents":
            contents = _contents(value)
            if contents is None:
                return None
            config.contents = contents
        elif key == "entrypoint":
            entrypoint = _entrypoint(value)
            if entrypoint is None:
                return None
            config.entrypoint = entrypoint
        elif key == "accounts":
            accounts = _accounts(value)
            if accounts is None:
                return None
            config.accounts = accounts
        elif key == "archs":
            if not _strings(value) or not all(_known_arch(v) for v in value):
                return None
            config.archs = list(value)
        elif key in ("environment", "annotations"):
            if not _string_map(value):
                return None
            setattr(config, key, dict(value))
        elif key == "paths":
            if type(value) is not list:
                return None
            paths = [_path(v) for v in value]
            if None in paths:
                return None
            config.paths = [p for p in paths if p is not None]
        elif key == "volumes":
            if not _strings(value):
                return None
            config.volumes = list(value)
        else:
            return None
    return config
