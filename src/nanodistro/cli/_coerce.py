"""Command-line values converted without importing pydantic, for the types our commands use.

Typer (0.2x) converts every option value through a pydantic ``TypeAdapter``: the first value a
command line processes (even ``--help``'s) imports pydantic and builds an adapter, ~50 ms of a
process whose whole budget is a few times ``python -c pass``. Our options are all ``str``,
``bool``, ``int``, ``float``, ``Path`` and lists of those, whose conversion from a command-line
string is one call. This swaps Typer's per-parameter converter for one that does that call and
hands anything else (a bytes value, an out-of-range number, an unusual spelling, any other
annotation) to Typer's own converter, built only then — so results and error messages are
Typer's (tests/test_cli_startup.py compares both on every option of the app). Versions of Typer
without the hook are left alone.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import cached_property
from pathlib import Path
from typing import Any, get_args, get_origin

_INT = re.compile(r"-?(?:0|[1-9][0-9]{0,17})")  # what int() and pydantic agree on exactly
_FLOAT = re.compile(r"-?[0-9]{1,15}(?:\.[0-9]{1,15})?")


class _Slow:
    """Marker: the fast path cannot decide this value; use Typer's converter."""


SLOW = _Slow()

# A leaf converter: (value, parameter info, param, ctx) -> converted value or SLOW.
Leaf = Callable[[Any, Any, Any, Any], Any]


def _in_range(number: float, info: Any) -> bool:
    if getattr(info, "clamp", False):
        return False  # clamping rewrites the value: Typer's converter does that
    low, high = getattr(info, "min", None), getattr(info, "max", None)
    return (low is None or number >= low) and (high is None or number <= high)


def _str(value: Any, info: Any, param: Any, ctx: Any) -> Any:
    return value if isinstance(value, str) else SLOW


def _bool(value: Any, info: Any, param: Any, ctx: Any) -> Any:
    return value if isinstance(value, bool) else SLOW


def _number(kind: type[int] | type[float], pattern: re.Pattern[str]) -> Leaf:
    """An int or float leaf: a value already of ``kind`` (never a bool) or a string that
    ``pattern`` shows ``kind()`` and pydantic read alike, within the parameter's range."""

    def convert(value: Any, info: Any, param: Any, ctx: Any) -> Any:
        if isinstance(value, kind) and not isinstance(value, bool):
            number: int | float = value
        elif isinstance(value, str) and pattern.fullmatch(value):
            number = kind(value)
        else:
            return SLOW
        return number if _in_range(number, info) else SLOW

    return convert


def _path(value: Any, info: Any, param: Any, ctx: Any) -> Any:
    from typer._param_types import coerce_cli_path

    if isinstance(value, Path):
        path = value
    elif isinstance(value, str) and value and "\0" not in value:
        path = Path(value)  # what pydantic's Path validation makes of a plain string
    else:
        return SLOW
    # Typer's own checks (exists, file_okay, readable, ...) on a value that is already a Path,
    # which is the one case where they need no pydantic.
    return coerce_cli_path(path, info, path_type=Path, param=param, ctx=ctx)


_LEAVES: dict[Any, Leaf] = {
    str: _str,
    bool: _bool,
    int: _number(int, _INT),
    float: _number(float, _FLOAT),
    Path: _path,
}


def _leaf_for(annotation: Any, info: Any) -> Leaf | None:
    if getattr(info, "parser", None) is not None or getattr(info, "click_type", None) is not None:
        return None
    if annotation is not Path and getattr(info, "path_type", None) is not None:
        return None
    if annotation is Path and getattr(info, "path_type", None) not in (None, Path):
        return None
    return _LEAVES.get(annotation)


def fast_converter(annotation: Any, info: Any) -> Callable[[Any, Any, Any], Any] | None:
    """A converter ``(value, param, ctx) -> value or SLOW`` for ``annotation``, if we have one."""
    if get_origin(annotation) is list:
        args = get_args(annotation)
        leaf = _leaf_for(args[0], info) if len(args) == 1 else None
        if leaf is None:
            return None

        def convert_list(value: Any, param: Any, ctx: Any, leaf: Leaf = leaf) -> Any:
            if not isinstance(value, list | tuple):
                return SLOW
            items = [leaf(item, info, param, ctx) for item in value]
            return SLOW if any(item is SLOW for item in items) else items

        return convert_list
    single = _leaf_for(annotation, info)
    if single is None:
        return None

    def convert(value: Any, param: Any, ctx: Any, leaf: Leaf = single) -> Any:
        return leaf(value, info, param, ctx)

    return convert


def install() -> None:
    """Route Typer's parameter conversion through :func:`fast_converter` (idempotent)."""
    try:
        from typer import _coercion, core
    except ImportError:  # a Typer without the pydantic converter: nothing to avoid
        return
    original = getattr(core, "build_runtime_param", None)
    base = getattr(_coercion, "RuntimeParam", None)
    if original is None or base is None or getattr(original, "_nanodistro", False):
        return
    typer_build: Callable[[Any], Any] = original

    class FastRuntimeParam(base):  # type: ignore[misc, valid-type]
        """Typer's RuntimeParam (None and multi-value handling) with our leaf conversion."""

        def __init__(self, descriptor: Any, convert: Callable[[Any, Any, Any], Any]) -> None:
            super().__init__(
                parameter_info=descriptor.parameter_info, annotation=descriptor.annotation
            )
            object.__setattr__(self, "_descriptor", descriptor)
            object.__setattr__(self, "_convert", convert)

        @cached_property
        def _typer(self) -> Any:
            return typer_build(self._descriptor)

        def _coerce_value(self, value: Any, param: Any, ctx: Any) -> Any:
            result = self._convert(value, param, ctx)
            if result is SLOW:
                return self._typer._coerce_value(value, param=param, ctx=ctx)
            return result

    def build_runtime_param(descriptor: Any) -> Any:
        if getattr(descriptor, "file_annotation", None) is None:
            convert = fast_converter(descriptor.annotation, descriptor.parameter_info)
            if convert is not None:
                return FastRuntimeParam(descriptor, convert)
        return typer_build(descriptor)

    build_runtime_param._nanodistro = True  # type: ignore[attr-defined]
    build_runtime_param.original = typer_build  # type: ignore[attr-defined]
    core.build_runtime_param = build_runtime_param
