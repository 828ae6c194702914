"""Name and version of language packages from their metadata files (pure codecs).

- Python: ``*.dist-info/METADATA`` and ``*.egg-info/PKG-INFO`` (or an ``*.egg-info`` file) are
  RFC 822 style headers (core metadata spec): ``Name:`` and ``Version:`` in the first block;
- npm: ``package.json`` with string ``name`` and ``version``.

Each returns None when the file is not metadata of a package (no name or version): a scanner
walking a tree meets such files (a ``package.json`` of a test fixture) and skips them.
"""

from __future__ import annotations

import json
import re

__all__ = ["npm_package", "python_distribution", "python_normalized_name"]


def python_distribution(data: bytes) -> tuple[str, str] | None:
    """``(Name, Version)`` from core metadata headers."""
    text = data.decode("utf-8", "replace")
    fields: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            break  # the body (description) follows the first blank line
        if line[:1] in (" ", "\t"):
            continue  # a folded continuation line
        key, sep, value = line.partition(":")
        if sep and key.strip().lower() in ("name", "version"):
            fields.setdefault(key.strip().lower(), value.strip())
    name, version = fields.get("name"), fields.get("version")
    return (name, version) if name and version else None


def python_normalized_name(name: str) -> str:
    """PEP 503 normalization, as PyPI (and OSV's PyPI ecosystem) compare names."""
    return re.sub(r"[-_.]+", "-", name).lower()


def npm_package(data: bytes) -> tuple[str, str] | None:
    """``(name, version)`` from a ``package.json``."""
    try:
        document = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(document, dict):
        return None
    name, version = document.get("name"), document.get("version")
    if isinstance(name, str) and isinstance(version, str) and name and version:
        return name, version
    return None
