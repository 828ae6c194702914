"""``if:`` expressions of steps and subpackages (melange ``pkg/cond/parser.go``).

Grammar::

    expr  := atom (('&&' | '||') atom)*        # evaluated left to right, no precedence
    atom  := '(' expr ')' | value ('==' | '!=') value
    value := 'string' | "string" | ${{variable}}

Variables are looked up in the substitution mapping; ``${{…}}`` inside a quoted string is
substituted too (melange replaces ``${{range.*}}`` textually before evaluating, so recipes write
``'"${{range.key}}" == "64"'``). An unknown variable or a syntax error is a ``RecipeError``.
"""

from __future__ import annotations

from collections.abc import Mapping

from nanodistro.errors import RecipeError
from nanodistro.recipe.substitute import substitute

__all__ = ["evaluate_condition"]

_VAR_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_")
_ESCAPES = {"\\": "\\", "'": "'", '"': '"', "n": "\n", "t": "\t"}


class _Parser:
    def __init__(
        self,
        text: str,
        mapping: Mapping[str, str],
        where: str,
        field: str | None,
        line: int | None,
    ):
        self.line = line
        self.text = text
        self.pos = 0
        self.mapping = mapping
        self.where = where
        self.field = field

    def fail(self, message: str) -> RecipeError:
        return RecipeError(
            f"invalid condition {self.text!r}: {message} at position {self.pos}",
            where=self.where,
            line=self.line,
            field=self.field,
        )

    def skip_ws(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos] in " \t\r\n":
            self.pos += 1

    def peek(self, token: str) -> bool:
        self.skip_ws()
        return self.text.startswith(token, self.pos)

    def value(self) -> str:
        self.skip_ws()
        if self.pos >= len(self.text):
            raise self.fail("unexpected end")
        quote = self.text[self.pos]
        if quote in "'\"":
            self.pos += 1
            out: list[str] = []
            while self.pos < len(self.text) and self.text[self.pos] != quote:
                char = self.text[self.pos]
                if char == "\\" and self.pos + 1 < len(self.text):
                    self.pos += 1
                    escaped = self.text[self.pos]
                    out.append(_ESCAPES.get(escaped, "\\" + escaped))
                else:
                    out.append(char)
                self.pos += 1
            if self.pos >= len(self.text):
                raise self.fail("unterminated string")
            self.pos += 1
            return substitute("".join(out), self.mapping, self.where, self.field, line=self.line)
        if self.peek("${{"):
            self.pos += 3
            self.skip_ws()
            start = self.pos
            while self.pos < len(self.text) and self.text[self.pos] in _VAR_CHARS:
                self.pos += 1
            name = self.text[start : self.pos]
            if not name:
                raise self.fail("empty variable name")
            if not self.peek("}}"):
                raise self.fail(f"unterminated variable reference {name!r}")
            self.pos += 2
            if name not in self.mapping:
                raise RecipeError(
                    f"unknown variable ${{{{{name}}}}} in condition {self.text!r}",
                    where=self.where,
                    line=self.line,
                    field=self.field,
                )
            return self.mapping[name]
        raise self.fail(f"unexpected character {quote!r}")

    def comparison(self) -> bool:
        left = self.value()
        self.skip_ws()
        operator = self.text[self.pos : self.pos + 2]
        if operator not in ("==", "!="):
            raise self.fail("expected '==' or '!='")
        self.pos += 2
        right = self.value()
        return (left == right) if operator == "==" else (left != right)

    def atom(self) -> bool:
        if self.peek("("):
            self.pos += 1
            result = self.expr()
            if not self.peek(")"):
                raise self.fail("expected ')'")
            self.pos += 1
            return result
        return self.comparison()

    def expr(self) -> bool:
        result = self.atom()
        while True:
            self.skip_ws()
            operator = self.text[self.pos : self.pos + 2]
            if operator not in ("&&", "||"):
                return result
            self.pos += 2
            right = self.atom()
            result = (result and right) if operator == "&&" else (result or right)


def evaluate_condition(
    expr: str,
    mapping: Mapping[str, str],
    where: str = "<recipe>",
    field: str | None = None,
    *,
    line: int | None = None,
) -> bool:
    """Evaluate an ``if:`` expression; an empty expression is true."""
    if not expr.strip():
        return True
    parser = _Parser(expr, mapping, where, field, line)
    result = parser.expr()
    parser.skip_ws()
    if parser.pos != len(expr):
        raise parser.fail("unexpected trailing input")
    return result
