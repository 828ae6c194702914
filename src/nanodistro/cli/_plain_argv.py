"""The argv scanner of the commands that run without Typer and Click (``resolve``,
``image build``: their import is a large share of those commands' CPU time, issue 18).

It accepts only command lines Click would parse the same way and declines (None) everything
else — ``--help``, an unknown or misspelled option, ``--``, a short option with its value
attached, a missing or empty value, a value that looks like an option, NUL or escape bytes — so
the Typer app answers those and help and usage errors stay exactly its own.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass
class PlainArgs:
    positional: list[str]
    values: dict[str, list[str]]  # parameter -> every value given, in order (Click: last wins)
    flags: dict[str, bool]


def scan(
    argv: list[str],
    value_options: Mapping[str, str],
    flag_options: Mapping[str, tuple[str, bool]],
    flag_defaults: Mapping[str, bool],
) -> PlainArgs | None:
    """``value_options``: every spelling of an option taking a value -> its parameter;
    ``flag_options``: every spelling of a flag -> (its parameter, the value it sets)."""
    parsed = PlainArgs([], {name: [] for name in value_options.values()}, dict(flag_defaults))
    args = iter(argv)
    for arg in args:
        if "\0" in arg or "\x1b" in arg:
            return None
        if not arg.startswith("-"):
            parsed.positional.append(arg)  # Click allows arguments between options
            continue
        name, equals, value = arg.partition("=") if arg.startswith("--") else (arg, "", "")
        if name in flag_options and not equals:
            flag, setting = flag_options[name]
            parsed.flags[flag] = setting
            continue
        if name not in value_options:
            return None
        if not equals:
            value = next(args, "")
        if not value or value.startswith("-") or "\0" in value or "\x1b" in value:
            return None
        parsed.values[value_options[name]].append(value)
    return parsed
