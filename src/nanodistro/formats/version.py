"""APK versions and dependency atoms.

A literal port of apk-tools 3.0 ``src/version.c`` (tokenizer, ``apk_version_compare_fuzzy``,
``apk_version_match``) and of ``apk_blob_pull_dep`` in ``src/package.c`` for dependency atoms
(reference/formats.md §4). apk-tools' own ``test/unit/version.data`` is the test vector set.

Grammar: ``number ('.' number)* [letter] ('_' suffix [number])* ['~' hexhash] ['-r' number]``.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass

from nanodistro.errors import VersionError

__all__ = [
    "ANY",
    "CHECKSUM",
    "CONFLICT",
    "EQUAL",
    "FUZZY",
    "GREATER",
    "LESS",
    "Dependency",
    "compare",
    "is_valid",
    "match",
    "op_mask",
    "op_string",
    "parse_dependencies",
    "parse_dependency",
    "split_name_version",
    "validate",
    "version_key",
]

# Result / operator bit masks, as apk-tools ``apk_version.h``.
EQUAL = 1
LESS = 2
GREATER = 4
FUZZY = 8
CONFLICT = 16
ANY = EQUAL | LESS | GREATER
CHECKSUM = LESS | GREATER  # "><": match the package identity (``C:``), not the version

# Token kinds; their numeric order is part of the algorithm (a later kind sorts lower).
_INITIAL_DIGIT, _DIGIT, _LETTER, _SUFFIX, _SUFFIX_NO, _COMMIT_HASH, _REVISION_NO, _END, _INVALID = (
    range(9)
)

_SUFFIX_NONE = 5
_SUFFIXES = {
    "alpha": 1,
    "beta": 2,
    "pre": 3,
    "rc": 4,
    "cvs": 6,
    "svn": 7,
    "git": 8,
    "hg": 9,
    "p": 10,
}

_DIGITS = re.compile(r"[0-9]*")
_LOWER = re.compile(r"[a-z]*")
_HEX = re.compile(r"[0-9a-f]*")

# (kind, value, suffix ordinal). Value: int for INITIAL_DIGIT/SUFFIX_NO/REVISION_NO, str otherwise.
_Token = tuple[int, int | str, int]


@functools.lru_cache(maxsize=65536)
def _tokenize(version: str) -> tuple[_Token, ...]:
    """All tokens of ``version``; the last one is END or INVALID (as ``token_first/token_next``)."""
    tokens: list[_Token] = []
    digits = _DIGITS.match(version, 0)
    assert digits is not None
    pos = digits.end()
    if pos == 0:
        return ((_INVALID, "", 0),)
    tokens.append((_INITIAL_DIGIT, int(version[:pos]), 0))
    kind = _INITIAL_DIGIT
    length = len(version)
    legacy = ""
    while True:
        if pos >= length:
            # An END token carrying "legacy" marks a version only apk-tools 2.x accepts.
            tokens.append((_END, legacy, 0))
            return tuple(tokens)
        char = version[pos]
        if "a" <= char <= "z":
            if kind > _DIGIT:
                break
            kind = _LETTER
            tokens.append((kind, char, 0))
            pos += 1
        elif char == "." or "0" <= char <= "9":
            if char == ".":
                if kind > _DIGIT:
                    break
                pos += 1
            elif kind == _LETTER:
                # "6.8.0p2", "0.99f7": invalid for apk-tools 3, but 2.x (which built and still
                # installs such Alpine packages) reads the digits after a letter as a number.
                legacy = "legacy"
            elif kind != _SUFFIX:  # digits only follow a suffix name directly
                break
            m = _DIGITS.match(version, pos)
            assert m is not None
            if m.end() == pos:
                break
            text = m.group()
            pos = m.end()
            if kind == _SUFFIX:
                kind = _SUFFIX_NO
                tokens.append((kind, int(text), 0))
            else:
                kind = _DIGIT
                tokens.append((kind, text, 0))
        elif char == "_":
            if kind > _SUFFIX_NO:
                break
            m = _LOWER.match(version, pos + 1)
            assert m is not None
            ordinal = _SUFFIXES.get(m.group())
            if ordinal is None:
                break
            pos = m.end()
            kind = _SUFFIX
            tokens.append((kind, ordinal, ordinal))
        elif char == "~":
            if kind >= _COMMIT_HASH:
                break
            m = _HEX.match(version, pos + 1)
            assert m is not None
            if m.end() == pos + 1:
                break
            pos = m.end()
            kind = _COMMIT_HASH
            tokens.append((kind, m.group(), 0))
        elif char == "-":
            if kind >= _REVISION_NO or not version.startswith("-r", pos):
                break
            m = _DIGITS.match(version, pos + 2)
            assert m is not None
            if m.end() == pos + 2:
                break
            pos = m.end()
            kind = _REVISION_NO
            tokens.append((kind, int(m.group()), 0))
        else:
            break
    tokens.append((_INVALID, "", 0))
    return tuple(tokens)


def is_valid(version: str, *, legacy: bool = False) -> bool:
    """True if ``version`` follows the APK version grammar (``apk_version_validate``).

    With ``legacy``, also accept what apk-tools 2.x accepted: digits right after the letter
    (``6.8.0p2-r4``, shipped in Alpine 3.16); such versions still compare sensibly.
    """
    kind, marker, _ = _tokenize(version)[-1]
    return kind == _END and (legacy or not marker)


def validate(version: str, *, where: str = "", field: str | None = None) -> str:
    """Return ``version`` or raise VersionError naming it (and ``where``/``field``)."""
    if not is_valid(version):
        raise VersionError(
            f"invalid APK version {version!r} (expected e.g. 1.2.3, 1.2.3_rc1-r0)",
            where=where or None,
            field=field,
        )
    return version


def _cmp_token(kind: int, a: int | str, b: int | str) -> int:
    if kind == _DIGIT:
        assert isinstance(a, str) and isinstance(b, str)
        if a[0] == "0" or b[0] == "0":
            # Leading zero: a fraction-like string compare (memcmp, then shorter first).
            return (a > b) - (a < b)
        ia, ib = int(a), int(b)
        return (ia > ib) - (ia < ib)
    return (a > b) - (a < b)  # type: ignore[operator]


def _compare_mask(a: str, b: str, fuzzy: bool) -> int:
    """``apk_version_compare_fuzzy``: returns EQUAL, LESS or GREATER."""
    if a == b:
        return EQUAL
    ta, tb = _tokenize(a), _tokenize(b)
    i = 0
    while True:
        ka, va, sa = ta[i]
        kb, vb, sb = tb[i]
        if ka != kb or ka >= _END:
            break
        r = _cmp_token(ka, va, vb)
        if r:
            return LESS if r < 0 else GREATER
        i += 1
    if ka == kb:
        return EQUAL
    if kb == _END and fuzzy:
        return EQUAL
    # The non-terminated side is greater unless it continues with a pre-release suffix.
    if ka == _SUFFIX and sa < _SUFFIX_NONE:
        return LESS
    if kb == _SUFFIX and sb < _SUFFIX_NONE:
        return GREATER
    if ka > kb:
        return LESS
    if kb > ka:
        return GREATER
    return EQUAL


def compare(a: str, b: str, *, fuzzy: bool = False) -> int:
    """Compare two versions: -1, 0 or 1. With ``fuzzy``, ``b`` matches as a token prefix of ``a``."""
    r = _compare_mask(a, b, fuzzy)
    return 0 if r == EQUAL else (-1 if r == LESS else 1)


version_key = functools.cmp_to_key(compare)
"""Sort key: ``sorted(versions, key=version_key)`` orders oldest first."""


def op_mask(op: str) -> int:
    """Operator string to mask (``apk_version_result_mask_blob``); 0 if not an operator."""
    mask = 0
    for char in op:
        if char == "<":
            mask |= LESS
        elif char == ">":
            mask |= GREATER
        elif char == "=":
            mask |= EQUAL
        elif char == "~":
            mask |= FUZZY | EQUAL
        else:
            return 0
    return mask


_OP_STRINGS = {
    LESS: "<",
    LESS | EQUAL: "<=",
    EQUAL: "=",
    EQUAL | FUZZY: "~",
    FUZZY: "~",
    GREATER | EQUAL: ">=",
    GREATER: ">",
    CHECKSUM: "><",
    LESS | EQUAL | FUZZY: "<~",
    GREATER | EQUAL | FUZZY: ">~",
    ANY: "",
}


def op_string(mask: int) -> str:
    """Mask (without CONFLICT) to its canonical operator string."""
    return _OP_STRINGS.get(mask & ~CONFLICT, "?")


def match(version: str, op: int, want: str) -> bool:
    """``apk_version_match``: does ``version`` satisfy ``op want``? CONFLICT inverts."""
    ok = (op & ANY) == ANY or bool(_compare_mask(version, want, bool(op & FUZZY)) & op)
    return not ok if op & CONFLICT else ok


# Dependency names: apk-tools APK_CTYPE_DEPENDENCY_NAME (``src/ctype.c``) — letters, digits and
# ``+._-`` plus ``,:/[]`` for provided names (so:, cmd:, /bin/sh, py3.11:foo, ...).
_DEP_RE = re.compile(
    r"(?P<conflict>!)?"
    r"(?P<name>[A-Za-z0-9+._\-,:/\[\]]+)"
    r"(?:@(?P<tag>[A-Za-z0-9._\-]+))?"
    r"(?:(?P<op>[<>=~]+)(?P<version>[^\s@]+)(?:@(?P<tag2>[A-Za-z0-9._\-]+))?)?"
)


@dataclass(frozen=True)
class Dependency:
    """One atom: ``[!]name[@tag][op version]``; for ``><`` the version is the package identity."""

    name: str
    op: int = ANY
    version: str | None = None
    conflict: bool = False
    tag: str | None = None

    @property
    def identity(self) -> str | None:
        """The ``Q1…`` package identity of a ``name><Q1…`` atom."""
        return self.version if self.op == CHECKSUM else None

    @property
    def is_versioned(self) -> bool:
        return self.version is not None

    @property
    def op_str(self) -> str:
        return op_string(self.op)

    def matches_version(self, version: str, checksum: str | None = None) -> bool:
        """Whether a package/provide of this version (and identity) satisfies the constraint.

        The conflict flag is not applied here: for ``!name<2`` this answers "is it name<2?".
        An unversioned provide (``version`` None) matches only an unversioned atom.
        """
        if self.version is None:
            return True
        if self.op == CHECKSUM:
            return checksum is not None and checksum == self.version
        if version is None:
            return False
        return match(version, self.op, self.version)

    def __str__(self) -> str:
        text = ("!" if self.conflict else "") + self.name
        if self.tag:
            text += "@" + self.tag
        if self.version is not None:
            text += op_string(self.op) + self.version
        return text


def parse_dependency(atom: str, *, where: str = "", legacy: bool = False) -> Dependency:
    """Parse one atom (``apk_blob_pull_dep``); also accepts apko's ``name=1.0@tag`` order.

    ``legacy`` accepts versions only apk-tools 2.x accepts (see ``is_valid``).
    """
    m = _DEP_RE.fullmatch(atom)
    if m is None:
        raise VersionError(
            f"invalid dependency {atom!r} (expected [!]name[@tag][op version])",
            where=where or None,
        )
    # One groups() call, not a group() per field: atoms are parsed by the thousand per resolve.
    bang, name, tag, op_text, version, tag2 = m.groups()
    if tag2:
        if tag:
            raise VersionError(f"invalid dependency {atom!r}: two @tags", where=where or None)
        tag = tag2
    if op_text is None:
        return Dependency(name, ANY, None, bang is not None, tag)
    mask = op_mask(op_text)
    if mask == CHECKSUM:
        if not version.startswith("Q1"):
            raise VersionError(
                f"invalid dependency {atom!r}: '><' needs a Q1 package identity",
                where=where or None,
            )
    elif mask == 0 or mask == ANY or op_text not in _VALID_OPS:
        raise VersionError(
            f"invalid dependency {atom!r}: unknown operator {op_text!r}", where=where or None
        )
    elif not is_valid(version, legacy=legacy):
        raise VersionError(
            f"invalid dependency {atom!r}: invalid version {version!r}", where=where or None
        )
    return Dependency(name, mask, version, bang is not None, tag)


_VALID_OPS = frozenset({"<", "<=", "=", ">=", ">", "~", "=~", "~=", "<~", ">~", "><"})


def parse_dependencies(text: str | Iterable[str], *, where: str = "") -> list[Dependency]:
    """Parse a space/newline separated list (``D:``, ``p:``, world) or an iterable of atoms."""
    atoms = text.split() if isinstance(text, str) else [a for t in text for a in t.split()]
    return [parse_dependency(atom, where=where) for atom in atoms]


def split_name_version(text: str) -> tuple[str, str]:
    """Split ``foo-1.2-r0`` at the last ``-[0-9]`` into ``("foo", "1.2-r0")``."""
    for index in range(len(text) - 2, 0, -1):
        if text[index] == "-" and text[index + 1].isdigit():
            return text[:index], text[index + 1 :]
    raise VersionError(f"{text!r} is not name-version (expected e.g. foo-1.2-r0)")
