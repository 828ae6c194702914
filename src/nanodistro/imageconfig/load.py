"""Load an apko image config from YAML, with ``include:`` deep merge and line-accurate errors."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import YAMLError

from nanodistro.errors import ConfigError
from nanodistro.imageconfig.model import ImageConfig, from_schema
from nanodistro.imageconfig.quick import quick_config

_MAX_INCLUDE_DEPTH = 16


@dataclass
class LoadedConfig:
    """A validated config plus where it came from (relative paths resolve against ``base_dir``)."""

    config: ImageConfig
    path: Path | None
    base_dir: Path
    raw: dict[str, Any]
    files: list[Path]

    def resolve_path(self, value: str) -> str:
        """A repository/keyring entry made absolute when it is a relative local path."""
        return resolve_local(value, self.base_dir)


def resolve_local(value: str, base_dir: Path) -> str:
    """A relative local path made absolute against ``base_dir``.

    apko resolves such paths against its working directory; configs written for that (e.g.
    ``./testdata/packages`` in apko's own tests) are found by also trying the parents of
    ``base_dir``. URLs, absolute paths and bare host names (``apk.cgr.dev/x``) stay as written.
    """
    text = value.strip()
    if text.startswith("legacy:"):  # resolve.repositories' marker: resolve what follows it
        return "legacy:" + resolve_local(text.removeprefix("legacy:"), base_dir)
    if "://" in text or text.startswith("/"):
        return text
    if text.startswith("@"):
        tag, _, rest = text.partition(" ")
        return f"{tag} {resolve_local(rest.strip(), base_dir)}" if rest else text
    for base in (base_dir, *base_dir.parents):
        if (base / text).exists():
            return str((base / text).resolve())
    if text.startswith("."):
        return str((base_dir / text).resolve())
    return text


def _line_of(node: Any, loc: Sequence[int | str]) -> tuple[int | None, str]:
    """Follow a pydantic error location into the ruamel tree; return (1-based line, dotted key)."""
    line: int | None = None
    names: list[str] = []
    current = node
    for part in loc:
        if isinstance(current, CommentedMap) and part in current:
            with contextlib.suppress(KeyError, TypeError, AttributeError):
                line = current.lc.key(part)[0] + 1
            names.append(str(part))
            current = current[part]
        elif isinstance(current, CommentedSeq) and isinstance(part, int) and part < len(current):
            with contextlib.suppress(KeyError, TypeError, AttributeError):
                line = current.lc.item(part)[0] + 1
            names.append(f"[{part}]")
            current = current[part]
        else:
            if isinstance(part, str) and not part.startswith(("function-", "literal")):
                names.append(part)
            break
    dotted = ".".join(names).replace(".[", "[")
    return line, dotted


# Aliases can make a small file expand exponentially ("billion laughs"); real configs have a few
# hundred nodes. Same bound as recipe/yamlsource.py.
_MAX_NODES = 200_000


def _plain(node: Any, where: str = "<image config>", budget: list[int] | None = None) -> Any:
    """ruamel containers/scalars to plain Python values."""
    if budget is None:
        budget = [_MAX_NODES]
    budget[0] -= 1
    if budget[0] < 0:
        raise ConfigError(
            f"image config expands to more than {_MAX_NODES} YAML nodes (alias bomb?)", where=where
        )
    if isinstance(node, dict):
        return {str(k): _plain(v, where, budget) for k, v in node.items()}
    if isinstance(node, list):
        return [_plain(v, where, budget) for v in node]
    if isinstance(node, bool) or node is None:
        return node
    if isinstance(node, int):
        return int(node)
    if isinstance(node, float):
        return float(node)
    if isinstance(node, str):
        return str(node)
    return node


# Top-level keys of a melange recipe that no image config has: a recipe given to `image build`
# is named as such, not reported as a dozen unknown keys.
_RECIPE_KEYS = ("package", "pipeline", "subpackages")


def _keys_at(loc: Sequence[int | str]) -> list[str]:
    """The keys (YAML spelling) the config model accepts where ``loc`` points ([] if unknown)."""
    from nanodistro.imageconfig import schema

    model: Any = schema.ImageConfig
    for part in loc:
        if isinstance(part, int):
            continue
        field = next((f for name, f in model.model_fields.items() if part in (name, f.alias)), None)
        inner = getattr(field, "annotation", None) if field is not None else None
        inner = next(
            (a for a in getattr(inner, "__args__", ()) if hasattr(a, "model_fields")), inner
        )
        if not hasattr(inner, "model_fields"):
            return []
        model = inner
    return sorted(f.alias or name for name, f in model.model_fields.items())


def _unknown_key(loc: Sequence[int | str]) -> str:
    import difflib  # only for this error message

    close = (
        difflib.get_close_matches(str(loc[-1]), _keys_at(loc[:-1]), n=1, cutoff=0.75) if loc else []
    )
    hint = f"did you mean {close[0]!r}?" if close else "not an apko image config key"
    return f"unknown key ({hint})"


def _validate(data: Any, tree: Any, where: str) -> ImageConfig:
    if isinstance(data, dict) and any(key in data for key in _RECIPE_KEYS):
        line = None
        if isinstance(tree, CommentedMap):
            line, _ = _line_of(tree, [next(k for k in _RECIPE_KEYS if k in data)])
        raise ConfigError(
            "this is a melange recipe (package:, pipeline:), not an apko image config; build "
            "its packages with 'nanodistro build' and list them in an image config's "
            "contents.packages",
            where=where,
            line=line,
        )
    config = quick_config(data)
    if config is not None:
        return config
    # Imported here: pydantic and the schema cost ~0.35 s, and simple configs never need them.
    from pydantic import ValidationError

    from nanodistro.imageconfig import schema

    try:
        return from_schema(schema.ImageConfig.model_validate(data))
    except ValidationError as error:
        first = error.errors()[0]
        line, dotted = _line_of(tree, first["loc"])
        message = first["msg"].removeprefix("Value error, ")
        if first["type"] == "extra_forbidden":
            message = _unknown_key(first["loc"])
        elif first["type"] == "missing":
            message = "required key is missing"
        count = len(error.errors())
        if count > 1:
            message += f" (and {count - 1} more problem{'s' if count > 2 else ''})"
        raise ConfigError(message, where=where, line=line, field=dotted or None) from None


def _read_yaml(path: Path) -> CommentedMap:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError(f"cannot read image config: {error.strerror}", where=str(path)) from None
    except UnicodeDecodeError:
        raise ConfigError("image config is not UTF-8 text", where=str(path)) from None
    return parse_yaml_text(text, where=str(path))


def parse_yaml_text(text: str, *, where: str) -> CommentedMap:
    yaml = YAML(typ="rt")
    try:
        tree = yaml.load(text)
    except YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise ConfigError(f"invalid YAML: {problem}", where=where, line=line) from None
    if tree is None:
        tree = CommentedMap()
    if not isinstance(tree, CommentedMap):
        raise ConfigError("an image config must be a YAML mapping", where=where, line=1)
    return tree


def deep_merge(base: dict[str, Any], overlay: dict[str, Any]) -> dict[str, Any]:
    """apko's include semantics: mappings merge, lists append (deduplicated), scalars override."""
    merged: dict[str, Any] = dict(base)
    for key, value in overlay.items():
        if key in merged and isinstance(merged[key], dict) and isinstance(value, dict):
            merged[key] = deep_merge(merged[key], value)
        elif key in merged and isinstance(merged[key], list) and isinstance(value, list):
            combined = list(merged[key])
            for item in value:
                if item not in combined:
                    combined.append(item)
            merged[key] = combined
        else:
            merged[key] = value
    return merged


def _find_include(name: str, including: Path) -> Path:
    """apko resolves ``include`` against its working directory; accept that and file-relative."""
    candidate = Path(name)
    if candidate.is_absolute():
        if candidate.is_file():
            return candidate
    else:
        for base in (including.parent, *including.parent.parents, Path.cwd()):
            if (base / candidate).is_file():
                return (base / candidate).resolve()
    raise ConfigError(f"included file {name!r} not found", where=str(including), field="include")


def _load_tree(path: Path, chain: list[Path]) -> tuple[dict[str, Any], list[Path]]:
    if len(chain) > _MAX_INCLUDE_DEPTH or path in chain:
        cycle = " -> ".join(str(p) for p in [*chain, path])
        raise ConfigError(f"include cycle or too deep: {cycle}", where=str(path), field="include")
    tree = _read_yaml(path)
    data = _plain(tree, str(path))
    _validate(data, tree, str(path))  # line-accurate errors for this file alone
    files = [path]
    include = data.pop("include", "") or ""
    if include:
        base_data, base_files = _load_tree(_find_include(str(include), path), [*chain, path])
        data = deep_merge(base_data, data)
        files = base_files + files
    return data, files


def load_config(path: str | Path) -> LoadedConfig:
    """Read, include-merge and validate an apko image config file."""
    config_path = Path(path).resolve()
    data, files = _load_tree(config_path, [])
    config = _validate(data, None, str(config_path))
    return LoadedConfig(
        config=config, path=config_path, base_dir=config_path.parent, raw=data, files=files
    )


def load_config_text(
    text: str, *, where: str = "<config>", base_dir: Path | None = None
) -> LoadedConfig:
    """Validate a config given as text (no ``include:`` resolution beyond ``base_dir``)."""
    tree = parse_yaml_text(text, where=where)
    data = _plain(tree, where)
    config = _validate(data, tree, where)
    return LoadedConfig(
        config=config, path=None, base_dir=base_dir or Path.cwd(), raw=data, files=[]
    )
