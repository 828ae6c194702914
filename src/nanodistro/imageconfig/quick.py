"""A config the schema would accept unchanged, recognised without pydantic.

Most image configs are a few string lists and strings. ``quick_config`` accepts exactly those
(keys in their YAML spelling, values already of their final type, nothing a validator would
convert or refuse) and builds the plain classes directly; anything else (users, groups, paths,
layering, certificates, numbers where strings go, empty entries, unknown keys, a field named in
its Python spelling...) returns None and goes through ``schema.py``, which then decides and words
any error. So the result never differs from the schema's, only the cost does (no pydantic
import, ~0.35 s of an ``image build``); tests/image/test_imageconfig_quick.py compares the two.
"""

from __future__ import annotations

from typing import Any

from nanodistro.errors import ConfigError
from nanodistro.imageconfig.arch import Arch
from nanodistro.imageconfig.model import Accounts, Contents, Entrypoint, ImageConfig

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
    if type(data) is not dict or not set(data) <= {"type", "command", "shell-fragment"}:
        return None
    if not all(type(v) is str for v in data.values()):
        return None
    kind = data.get("type", "")
    if kind not in ("", "service-bundle"):
        return None
    return Entrypoint(
        type=kind, command=data.get("command", ""), shell_fragment=data.get("shell-fragment", "")
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
            # run-as only: users and groups have rules of their own (the schema checks them)
            if type(value) is not dict or not set(value) <= {"run-as"}:
                return None
            run_as = value.get("run-as", "")
            if type(run_as) is not str:
                return None
            config.accounts = Accounts(run_as=run_as)
        elif key == "archs":
            if not _strings(value) or not all(_known_arch(v) for v in value):
                return None
            config.archs = list(value)
        elif key in ("environment", "annotations"):
            if not _string_map(value):
                return None
            setattr(config, key, dict(value))
        elif key == "volumes":
            if not _strings(value):
                return None
            config.volumes = list(value)
        else:
            return None
    return config
