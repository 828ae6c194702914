"""``--help`` that reads like a command's help, not like Python: no ``<bool>`` after flags, no
``<list[Path]>`` / ``<str>`` type names in the type column, no ``{name}`` in the usage line.

Typer (0.2x) fills that column from the Python annotation. Where it does, this swaps its label
for Click's classic words — nothing for a flag, ``PATH``/``TEXT``/``INTEGER``/``FLOAT`` for a
value, the choices for a choice — and leaves an explicit ``metavar`` as written. Versions of
Typer without the hook are left alone.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

_WORDS = {
    "Path": "PATH",
    "PurePath": "PATH",
    "str": "TEXT",
    "int": "INTEGER",
    "float": "FLOAT",
    "bool": "BOOLEAN",
    "datetime": "DATETIME",
}
_LABEL = re.compile(r"<(?:list\[)?([^\]>]+)\]?>(\.\.\.)?")


def plain_label(param: Any, label: str | None) -> str | None:
    """Click's word for Typer's ``<type>`` label of ``param`` (None: show nothing)."""
    if type(param).__name__.endswith("Argument"):
        return None  # the argument's name (or metavar) is already shown in that row
    if label is None or getattr(param, "metavar", None) is not None:
        return label
    if getattr(param, "is_flag", False) or getattr(param, "count", False):
        return None  # a flag takes no value: nothing to show
    match = _LABEL.fullmatch(label)
    if match is None:
        return label
    inner = match.group(1)
    if "|" in inner:
        return f"[{inner}]"
    return _WORDS.get(inner, inner.upper())


def _argument_names(cls: Any) -> None:
    """Arguments as the docstrings name them (``PACKAGES``, ``TARGET``): upper case, ``[NAME]``
    when optional, instead of Typer's ``{name}`` / ``[name]`` in the usage line."""
    usage = getattr(cls, "_usage_display_name", None)
    shown = getattr(cls, "_rich_display_name", None)
    if usage is None or shown is None or getattr(usage, "_nanodistro", False):
        return

    def _name(self: Any) -> str:
        return str(self.metavar) if self.metavar is not None else str(self.name).upper()

    def usage_name(self: Any) -> str:
        name = _name(self) if self.required else f"[{_name(self)}]"
        return name + ("..." if self.nargs != 1 else "")

    def rich_name(self: Any) -> str:
        return _name(self) + ("..." if self.metavar is None and self.nargs != 1 else "")

    usage_name._nanodistro = True  # type: ignore[attr-defined]
    cls._usage_display_name = usage_name
    cls._rich_display_name = rich_name


def install() -> None:
    """Route Typer's help type labels through :func:`plain_label` (idempotent)."""
    try:
        from typer import core
    except ImportError:  # pragma: no cover - typer is a dependency
        return
    if getattr(core, "TyperArgument", None) is not None:
        _argument_names(core.TyperArgument)
    for cls in (getattr(core, "TyperOption", None), getattr(core, "TyperArgument", None)):
        original: Callable[..., str | None] | None = getattr(cls, "display_type_rich", None)
        if cls is None or original is None or getattr(original, "_nanodistro", False):
            continue

        def display_type_rich(
            self: Any, ctx: Any, _original: Callable[..., str | None] = original
        ) -> str | None:
            return plain_label(self, _original(self, ctx))

        display_type_rich._nanodistro = True  # type: ignore[attr-defined]
        cls.display_type_rich = display_type_rich
