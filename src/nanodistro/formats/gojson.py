"""JSON bytes as Go's ``encoding/json`` writes them, for feeds that must equal what wolfictl wrote.

Go escapes ``<``, ``>``, ``&`` (HTML safety) and U+2028/U+2029 inside strings, keeps other
non-ASCII as UTF-8, indents with the given prefix, and ``json.Encoder`` adds a final newline
(``MarshalIndent`` does not). Outside strings those characters cannot occur, so replacing them
in the whole text is exact.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["go_json"]

_ESCAPES = {
    "<": "\\u003c",
    ">": "\\u003e",
    "&": "\\u0026",
    "\u2028": "\\u2028",
    "\u2029": "\\u2029",
}


def go_json(value: Any, *, indent: int = 2, final_newline: bool = False) -> bytes:
    text = json.dumps(value, indent=indent, ensure_ascii=False, separators=(",", ": "))
    for char, escaped in _ESCAPES.items():
        text = text.replace(char, escaped)
    return (text + ("\n" if final_newline else "")).encode("utf-8")
