"""CVSS v3.x base score from a vector string, and the qualitative severity of a score.

The formulas and weights are those of the CVSS v3.1 specification (FIRST, section 7.1 and 7.4,
Appendix A "Round up" with the floating-point-safe ``roundup``); v3.0 vectors use the same base
equations (only the rounding helper differs, and the v3.1 one is the exact form of it).
"""

from __future__ import annotations

from nanodistro.errors import FormatError

__all__ = ["SEVERITY_LEVELS", "base_score", "level_of_score"]

#: Qualitative levels, lowest first ("none" is a score of 0.0; "unknown" has no score).
SEVERITY_LEVELS = ("unknown", "none", "low", "medium", "high", "critical")

_WEIGHTS: dict[str, dict[str, float]] = {
    "AV": {"N": 0.85, "A": 0.62, "L": 0.55, "P": 0.2},
    "AC": {"L": 0.77, "H": 0.44},
    "UI": {"N": 0.85, "R": 0.62},
    "C": {"H": 0.56, "L": 0.22, "N": 0.0},
    "I": {"H": 0.56, "L": 0.22, "N": 0.0},
    "A": {"H": 0.56, "L": 0.22, "N": 0.0},
}
# Privileges Required depends on Scope.
_PR = {"U": {"N": 0.85, "L": 0.62, "H": 0.27}, "C": {"N": 0.85, "L": 0.68, "H": 0.5}}
_BASE_METRICS = ("AV", "AC", "PR", "UI", "S", "C", "I", "A")


def _roundup(value: float) -> float:
    """The smallest number with one decimal place >= value (CVSS v3.1 Appendix A)."""
    integer = round(value * 100000)
    if integer % 10000 == 0:
        return integer / 100000.0
    return (integer // 10000 + 1) / 10.0


def base_score(vector: str, *, where: str = "<cvss>") -> float:
    """``CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H`` -> 9.8."""
    parts = vector.strip().split("/")
    if not parts[0].startswith("CVSS:3."):
        raise FormatError(f"not a CVSS v3 vector: {vector!r}", where=where)
    metrics: dict[str, str] = {}
    for part in parts[1:]:
        key, sep, value = part.partition(":")
        if not sep or key in metrics:
            raise FormatError(f"malformed CVSS metric {part!r} in {vector!r}", where=where)
        metrics[key] = value
    missing = [m for m in _BASE_METRICS if m not in metrics]
    if missing:
        raise FormatError(f"CVSS vector {vector!r} lacks {', '.join(missing)}", where=where)
    scope = metrics["S"]
    try:
        if scope not in _PR:
            raise KeyError("S")
        av, ac, ui = (_WEIGHTS[m][metrics[m]] for m in ("AV", "AC", "UI"))
        c, i, a = (_WEIGHTS[m][metrics[m]] for m in ("C", "I", "A"))
        pr = _PR[scope][metrics["PR"]]
    except KeyError:
        raise FormatError(f"unknown CVSS metric value in {vector!r}", where=where) from None
    iss = 1 - (1 - c) * (1 - i) * (1 - a)
    changed = 7.52 * (iss - 0.029) - 3.25 * (iss - 0.02) ** 15  # Scope: Changed
    impact = 6.42 * iss if scope == "U" else changed
    exploitability = 8.22 * av * ac * pr * ui
    if impact <= 0:
        return 0.0
    if scope == "U":
        return _roundup(min(impact + exploitability, 10))
    return _roundup(min(1.08 * (impact + exploitability), 10))


def level_of_score(score: float) -> str:
    """CVSS v3 qualitative rating: 0 none, 0.1-3.9 low, 4-6.9 medium, 7-8.9 high, 9+ critical."""
    if score <= 0:
        return "none"
    if score < 4.0:
        return "low"
    if score < 7.0:
        return "medium"
    if score < 9.0:
        return "high"
    return "critical"
