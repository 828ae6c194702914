"""imageconfig without pydantic (issue 18): simple configs are checked by imageconfig/quick.py,
everything else by the pydantic schema, and both give the same config, the same
``model_dump`` (it becomes /etc/apko.json) and the same errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from fixture_paths import REPO_ROOT, THIRD_PARTY
from nanodistro.errors import ConfigError
from nanodistro.imageconfig import load_config, load_config_text, schema
from nanodistro.imageconfig.load import _plain, parse_yaml_text
from nanodistro.imageconfig.model import ImageConfig, from_schema
from nanodistro.imageconfig.quick import quick_config

APKO = THIRD_PARTY / "chainguard-dev+apko"
CONFIGS = sorted(
    [
        *(
            p
            for sub in ("examples", "internal/cli/testdata", "pkg/build/types/testdata")
            for p in (APKO / sub).rglob("*.yaml")
            if not p.name.endswith(".melange.yaml")
        ),
        *(REPO_ROOT / "examples/images").glob("*.yaml"),
    ]
)

# Documents the quick path must take (and give the schema's answer for) or leave to the schema.
QUICK = [
    {},
    {"contents": {"packages": [" a ", "b"], "repositories": ["./r"], "keyring": [" k "]}},
    {"contents": {}, "archs": ["amd64", "all"], "cmd": "x y", "work-dir": "/w"},
    {"entrypoint": {"command": "/bin/a b"}, "accounts": {"run-as": "65532"}},
    {"entrypoint": {"type": "service-bundle"}, "environment": {"A": "1"}, "volumes": ["/v"]},
    {"annotations": {"k": "v"}, "vcs-url": "https://x@abc", "stop-signal": "TERM", "include": ""},
    {"entrypoint": {}, "accounts": {}},
    {
        "accounts": {
            "run-as": "nonroot",
            "users": [{"username": "nonroot", "uid": 65532, "gid": 65532, "homedir": "/h"}],
            "groups": [{"groupname": "nonroot", "gid": 65532, "members": ["nonroot"]}],
        }
    },
    {"accounts": {"users": [{"username": "a", "uid": 1, "gid": 0, "shell": "/bin/ash"}]}},
    {"accounts": {"users": [{"username": "a", "uid": 2**32 - 1}], "groups": []}},
    {"entrypoint": {"type": "service-bundle", "services": {"nginx": "/usr/sbin/nginx -g x"}}},
    {
        "paths": [
            {"path": "/run/x", "type": "directory", "uid": 10, "gid": 10, "permissions": 0o755},
            {"path": "/a", "type": "hardlink", "source": "/b", "permissions": 0o644},
            {"path": "/c", "type": "symlink", "source": "/d"},
            {"path": "/e", "type": "permissions", "permissions": 0, "recursive": True},
            {"path": " /f ", "type": "empty-file", "permissions": 0o7777},
        ]
    },
]
SCHEMA = [
    {"cmd": 5},
    {"contents": {"packages": [""]}},
    {"contents": {"packages": "a"}},
    {"contents": {"runtime_keyring": [{"name": "k", "content": "c"}]}},
    {"archs": ["sparc"]},
    {"archs": [1]},
    {"environment": {"A": None, "B": 2}},
    {"work_dir": "/w"},
    {"accounts": {"run-as": 0, "users": [{"username": "a", "uid": 5}]}},
    {"accounts": {"users": [{"username": "a", "uid": 0}]}},
    {"accounts": {"users": [{"username": "a"}]}},
    {"accounts": {"users": [{"uid": 5}]}},
    {"accounts": {"users": [{"username": "a", "uid": 2**32}]}},
    {"accounts": {"users": [{"username": "a", "uid": 5, "gid": -1}]}},
    {"accounts": {"users": [{"username": "a", "uid": True}]}},
    {"accounts": {"users": [{"username": "a", "uid": "5"}]}},
    {"accounts": {"users": [{"username": "a", "uid": 5}, {"username": "a", "uid": 6}]}},
    {"accounts": {"users": [{"username": "a", "uid": 5, "home": "/x"}]}},
    {"accounts": {"groups": [{"groupname": "g", "gid": 0}]}},
    {"accounts": {"groups": [{"groupname": "g"}]}},
    {"accounts": {"groups": [{"groupname": "", "gid": 5}]}},
    {"accounts": {"groups": [{"groupname": "g", "gid": 5, "members": "a"}]}},
    {"accounts": {"users": {"username": "a"}}},
    {"paths": [{"path": "/x", "type": "directory", "permissions": "0o755"}]},
    {"paths": [{"path": "/x", "type": "directory", "permissions": 0o10000}]},
    {"paths": [{"path": "/x", "type": "directory", "permissions": -1}]},
    {"paths": [{"path": " ", "type": "directory"}]},
    {"paths": [{"path": "/x", "type": "symlink"}]},
    {"paths": [{"path": "/x", "type": "hardlink", "source": ""}]},
    {"paths": [{"path": "/x", "type": "fifo"}]},
    {"paths": [{"path": "/x"}]},
    {"paths": [{"type": "directory"}]},
    {"paths": [{"path": "/x", "type": "directory", "uid": "1"}]},
    {"paths": [{"path": "/x", "type": "directory", "recursive": 1}]},
    {"paths": [{"path": "/x", "type": "directory", "mode": 1}]},
    {"paths": {"path": "/x"}},
    {"entrypoint": {"services": {"a": 1}}},
    {"layering": {"strategy": "origin", "budget": 2}},
    {"layering": {}, "format": "erofs"},
    {"certificates": {"providers": ["ca"]}},
    {"entrypoint": {"type": "bad"}},
    {"typo": 1},
]


def _schema_result(data: Any) -> tuple[str, Any]:
    """What the pydantic schema alone makes of ``data``: its dump, or its first error."""
    from pydantic import ValidationError

    try:
        model = schema.ImageConfig.model_validate(data)
    except ValidationError as error:
        return "error", error.errors()[0]["msg"]
    return "ok", model.model_dump(mode="json", by_alias=True, exclude_defaults=True)


@pytest.mark.parametrize("data", QUICK, ids=lambda d: json.dumps(d)[:60])
def test_quick_path_gives_the_schemas_config(data: dict[str, Any]) -> None:
    quick = quick_config(data)
    assert quick is not None
    model = schema.ImageConfig.model_validate(data)
    assert quick == from_schema(model)
    assert _schema_result(data) == ("ok", quick.model_dump())


@pytest.mark.parametrize("data", SCHEMA, ids=lambda d: json.dumps(d)[:60])
def test_anything_else_is_left_to_the_schema(data: dict[str, Any]) -> None:
    assert quick_config(data) is None
    kind, value = _schema_result(data)
    text = json.dumps(data)  # JSON is YAML
    if kind == "error":
        with pytest.raises(ConfigError):
            load_config_text(text)
    else:
        assert load_config_text(text).config.model_dump() == value


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_every_fixture_config_loads_as_the_schema_has_it(path: Path) -> None:
    loaded = load_config(path)
    assert isinstance(loaded.config, ImageConfig)
    model = schema.ImageConfig.model_validate(loaded.raw)
    assert loaded.config == from_schema(model)
    assert loaded.config.model_dump() == model.model_dump(
        mode="json", by_alias=True, exclude_defaults=True
    )
    # and each file alone, as _load_tree checks it, whichever path took it
    data = _plain(parse_yaml_text(path.read_text(), where=str(path)))
    quick = quick_config(data)
    if quick is not None:
        assert quick == from_schema(schema.ImageConfig.model_validate(data))


def test_some_fixture_configs_take_the_quick_path() -> None:
    taken = [
        p
        for p in CONFIGS
        if quick_config(_plain(parse_yaml_text(p.read_text(), where=str(p)))) is not None
    ]
    assert len(taken) >= 5


def test_model_copy_replaces_fields_as_pydantic_does() -> None:
    config = load_config_text("contents: {packages: [a]}\narchs: [amd64]\n").config
    contents = config.contents.model_copy(update={"packages": ["b=1"]})
    copied = config.model_copy(update={"contents": contents})
    assert copied.contents.packages == ["b=1"] and config.contents.packages == ["a"]
    assert copied.archs == ["amd64"]
    assert copied.model_dump() == {"contents": {"packages": ["b=1"]}, "archs": ["amd64"]}


def test_a_simple_config_loads_without_pydantic(tmp_path: Path) -> None:
    (tmp_path / "img.yaml").write_text(
        "contents:\n  repositories: [./r]\n  packages: [a]\narchs: [amd64]\n"
        "entrypoint: {command: /bin/sh}\nenvironment: {A: b}\n"
    )
    probe = (
        "import sys; from nanodistro.imageconfig import load_config; "
        f"load_config({str(tmp_path / 'img.yaml')!r}); "
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'pydantic'))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == "[]"


def test_plain_classes_mirror_the_schema_field_for_field() -> None:
    """A field added to schema.py without model.py (or with another alias) fails here, not in a
    build that silently drops it."""
    import dataclasses

    from pydantic import BaseModel

    from nanodistro.imageconfig import model

    schema_classes = {
        name: cls
        for name, cls in vars(schema).items()
        if isinstance(cls, type)
        and issubclass(cls, BaseModel)
        and cls.__module__ == schema.__name__
    }
    schema_classes.pop("_Model")
    assert set(schema_classes) == set(model._CLASSES)
    for name, cls in schema_classes.items():
        plain = {
            f.name: f.metadata.get("alias", f.name)
            for f in dataclasses.fields(model._CLASSES[name])
        }
        declared = {n: info.alias or n for n, info in cls.model_fields.items()}
        assert plain == declared, name
        assert list(plain) == list(declared), name  # dump order is declaration order
