"""``--help`` that reads like a command's help, not like Python: no ``<bool>`` after flags, no
``<list[Path]>`` / ``<str>`` type names in the type column, no ``{name}`` in the usage line.

Typer (0.2x) fills that column from the Python annotation. Where it does, this swaps its label
for Click's classic words — nothing for a flag, ``PATH``/``TEXT``/``INTEGER``/``FLOAT`` for a
value, the choices for a choice — and leaves an explicit ``metavar`` as written. Versions of
Typer without the hook are left alone.

It also keeps the help printer from importing what our help never uses: Typer's ``rich_utils``
imports ``rich.markdown`` (markdown-it) and ``rich.traceback`` (pygments) at the top, ~40% of a
``CMD --help`` process, for ``rich_markup_mode="markdown"`` and pretty tracebacks (ours: "rich"
and off). While that one module executes, those names resolve to stand-ins that import the real
class the first time it is used (:func:`defer_rich_extras`).
"""

from __future__ import annotations

import importlib
import re
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    from importlib.abc import Loader

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
    """Route Typer's help type labels through :func:`plain_label` and defer the help printer's
    unused imports (idempotent)."""
    try:
        from typer import core
    except ImportError:  # pragma: no cover - typer is a dependency
        return
    defer_rich_extras()
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


# Modules Typer's help printer imports only for features our help never uses: name -> the class.
_DEFERRED = {"rich.markdown": "Markdown", "rich.traceback": "Traceback"}
_HELP_PRINTER = "typer.rich_utils"


class _DeferredClass(type):
    """Metaclass of a stand-in: class attributes (``Traceback.from_exception``) come from the real
    class, imported on first use."""

    _module: str
    _name: str

    def _real(cls) -> Any:
        return getattr(importlib.import_module(cls._module), cls._name)

    def __getattr__(cls, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return getattr(cls._real(), name)

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        return cls._real()(*args, **kwargs)


def _stand_in(module: str, name: str) -> Any:
    stand_in = type(sys)(module)
    setattr(stand_in, name, _DeferredClass(name, (), {"_module": module, "_name": name}))
    return stand_in


class _HelpPrinterLoader:
    """Runs Typer's loader for ``typer.rich_utils`` with the stand-ins in ``sys.modules``, then
    takes them out again, so any later ``import rich.markdown`` gets the real module."""

    def __init__(self, loader: Any) -> None:
        self._loader = loader

    def create_module(self, spec: Any) -> Any:
        return self._loader.create_module(spec)

    def exec_module(self, module: Any) -> None:
        placed = {name: _stand_in(name, cls) for name, cls in _DEFERRED.items()}
        placed = {name: mod for name, mod in placed.items() if name not in sys.modules}
        sys.modules.update(placed)
        try:
            self._loader.exec_module(module)
        finally:
            for name, stand_in in placed.items():
                if sys.modules.get(name) is stand_in:
                    del sys.modules[name]

    def __getattr__(self, name: str) -> Any:  # get_source, get_code, ... for tracebacks
        return getattr(self._loader, name)


class _HelpPrinterFinder:
    """A one-shot meta-path finder that wraps the loader of ``typer.rich_utils``."""

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        if fullname != _HELP_PRINTER:
            return None
        from importlib.machinery import PathFinder

        sys.meta_path.remove(self)
        spec = PathFinder.find_spec(fullname, path)
        if spec is not None and spec.loader is not None:
            spec.loader = cast("Loader", _HelpPrinterLoader(spec.loader))
        return spec


def defer_rich_extras() -> None:
    """Have ``typer.rich_utils``, when first imported, skip importing rich.markdown and
    rich.traceback (idempotent; nothing to do once it is imported)."""
    if _HELP_PRINTER in sys.modules:
        return
    if any(isinstance(finder, _HelpPrinterFinder) for finder in sys.meta_path):
        return
    sys.meta_path.insert(0, _HelpPrinterFinder())
