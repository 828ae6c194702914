"""``network-in-runs``: build steps that would reach the network (the sandbox has none).

A command is what the shell would run, not a word anywhere in the script: the script is split into
simple commands at unquoted ``;``, ``&&``, ``||``, ``|``, ``&``, parentheses and command
substitutions, quoted text stays one word, and only the command word (after ``VAR=value``
assignments and wrappers such as ``sudo``, ``env``, ``if``, ``then``) decides. So
``echo "run curl later"``, ``die 'git clone failed'`` and here-document bodies do not fire, while
``"$(curl …)"`` does. ``git clone`` / ``fetch`` / ``pull`` from a local path (``.``, ``./x``,
``/abs``, ``file://``) does not fire either.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator

from nanodistro.recipe.lint.model import LintContext, Problem

_HEREDOC = re.compile(r"<<-?\s*(['\"]?)([A-Za-z_][A-Za-z0-9_]*)\1")
# words that may stand before the command proper
_PREFIX_WORDS = {
    "!", "if", "then", "else", "elif", "do", "while", "until", "time", "sudo", "env", "exec",
    "command", "builtin", "nice", "nohup", "xargs", "{",
}  # fmt: skip
# git clone/fetch/pull options that take a separate value
_GIT_VALUE_OPTIONS = {
    "-b", "--branch", "-o", "--origin", "--depth", "--reference", "--reference-if-able", "-c",
    "--config", "-j", "--jobs", "--template", "--separate-git-dir", "-u", "--upload-pack",
    "--shallow-since", "--shallow-exclude", "--filter", "--server-option",
}  # fmt: skip
_TEMPLATE = re.compile(r"\$\{\{[^}]*\}\}")
_PIP_COMMAND = re.compile(r"^pip[0-9.]*$")
_PYTHON_COMMAND = re.compile(r"^python[0-9.]*$")


def _script_lines(script: str) -> Iterator[tuple[str, str]]:
    """``(first physical line, logical line)``: ``\\`` continuations joined, comment lines and
    here-document bodies skipped."""
    pending: list[str] = []
    heredoc_end: str | None = None
    for raw_line in script.splitlines():
        line = raw_line.strip()
        if heredoc_end is not None:
            if line == heredoc_end:
                heredoc_end = None
            continue
        if not pending and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            pending.append(line[:-1].strip())
            continue
        pending.append(line)
        logical = " ".join(pending)
        yield pending[0], logical
        pending = []
        heredoc = _HEREDOC.search(logical)
        if heredoc:
            heredoc_end = heredoc.group(2)
    if pending:
        yield pending[0], " ".join(pending)


def _simple_commands(line: str) -> list[str]:
    """The simple commands of one logical shell line: split at unquoted control operators; the
    bodies of command substitutions (also inside double quotes) become commands of their own."""
    commands: list[str] = []
    current: list[str] = []
    quote = ""
    index = 0
    depth = 0  # open subshell parentheses

    def flush() -> None:
        text = "".join(current).strip()
        if text:
            commands.append(text)
        current.clear()

    while index < len(line):
        char = line[index]
        if char == "\\" and quote != "'":
            current.append(line[index : index + 2])
            index += 2
            continue
        if quote == "'":
            current.append(char)
            if char == "'":
                quote = ""
            index += 1
            continue
        if (char == "$" and line[index + 1 : index + 2] == "(") or char == "`":
            # a command substitution: its body is a command wherever it stands
            body, index = _substitution_body(line, index)
            commands.extend(_simple_commands(body))
            current.append('""')  # its output is one word of the outer command
            continue
        if quote == '"':
            current.append(char)
            if char == '"':
                quote = ""
            index += 1
            continue
        if char in "'\"":
            quote = char
            current.append(char)
        elif char == "#" and (not current or current[-1][-1:].isspace()):
            break  # a comment to the end of the line
        elif char == "(":
            depth += 1
            flush()
        elif char == ")" and depth == 0:
            # "curl|wget)" of a case statement: patterns, not commands
            current.clear()
            commands.clear()
        elif char in ";|&)":
            depth -= char == ")"
            flush()
        else:
            current.append(char)
        index += 1
    flush()
    return commands


def _substitution_body(line: str, start: int) -> tuple[str, int]:
    """The body of the ``$( … )`` or `` `…` `` at ``start`` and the index after it."""
    if line[start] == "`":
        end = line.find("`", start + 1)
        end = len(line) if end < 0 else end
        return line[start + 1 : end], end + 1
    depth = 0
    index = start + 1
    quote = ""
    while index < len(line):
        char = line[index]
        if quote:
            if char == quote:
                quote = ""
        elif char in "'\"":
            quote = char
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth == 0:
                return line[start + 2 : index], index + 1
        index += 1
    return line[start + 2 :], len(line)


def _words(command: str) -> list[str]:
    try:
        words = shlex.split(command, posix=True)
    except ValueError:  # unbalanced quotes: judge the plain words
        words = command.split()
    while words and (words[0] in _PREFIX_WORDS or re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", words[0])):
        words = words[1:]
    return words


def _is_local_source(source: str) -> bool:
    if source.startswith(("file://", ".", "/", "~")):
        return True
    # not a URL and not an scp-like host:path
    return "://" not in source and not re.match(r"^[^/]+:", source)


def _git_network(args: list[str]) -> str | None:
    """What a git invocation fetches over the network, or None."""
    index = 0
    while index < len(args) and args[index].startswith("-"):  # git -C DIR -c k=v …
        index += 2 if args[index] in ("-C", "-c") else 1
    if index >= len(args):
        return None
    sub, rest = args[index], args[index + 1 :]
    if sub == "submodule":
        return "runs git submodule update" if "update" in rest else None
    if sub not in ("clone", "fetch", "pull"):
        return None
    operands: list[str] = []
    skip = False
    for arg in rest:
        if skip:
            skip = False
        elif arg in _GIT_VALUE_OPTIONS:
            skip = True
        elif not arg.startswith("-"):
            operands.append(arg)
    if sub == "clone":
        return None if operands and _is_local_source(operands[0]) else "runs git clone"
    # fetch/pull: no operand means the configured remote
    return None if operands and operands[0].startswith(("file://", ".", "/")) else f"runs git {sub}"


def _network_use(words: list[str]) -> str | None:
    """Why the simple command ``words`` needs the network, or None."""
    if not words:
        return None
    # python${{vars.python-version}} is python3.12 once melange substitutes it
    command = _TEMPLATE.sub("", words[0]).rsplit("/", 1)[-1]
    args = words[1:]
    if command in ("curl", "wget"):
        return f"downloads with {command}"
    if command == "git":
        return _git_network(args)
    if command == "go" and (args[:1] == ["get"] or args[:2] == ["mod", "download"]):
        return "runs go get" if args[0] == "get" else "runs go mod download"
    if command in ("npm", "yarn", "pnpm") and args[:1] in (["install"], ["ci"], ["add"]):
        return None if "--offline" in args else f"runs {command} {args[0]}"
    if command == "cargo" and args[:1] == ["fetch"]:
        return "runs cargo fetch"
    pip_args: list[str] | None = None
    if _PIP_COMMAND.match(command):
        pip_args = args
    elif _PYTHON_COMMAND.match(command) and args[:2] == ["-m", "pip"]:
        pip_args = args[2:]
    elif command == "uv" and args[:1] == ["pip"]:
        pip_args = args[1:]
    if pip_args and pip_args[0] == "install" and "--no-index" not in pip_args:
        return "runs pip install without --no-index"
    if command in ("sh", "bash") and "-c" in args[:-1]:
        for inner in _simple_commands(args[args.index("-c") + 1]):
            found = _network_use(_words(inner))
            if found:
                return found
    return None


def network_in_runs(ctx: LintContext) -> Iterator[Problem]:
    assert ctx.recipe is not None
    for path, step in ctx.recipe.all_steps():
        if "test" in path:
            continue  # tests may talk to a server they start
        for first, logical in _script_lines(step.runs):
            for command in _simple_commands(logical):
                what = _network_use(_words(command))
                if what:
                    yield (
                        ctx.line_in_text((*path, "runs"), first),
                        f"build step {what}: builds have no network ({logical!r})",
                    )
                    break
