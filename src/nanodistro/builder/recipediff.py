"""What changed in a recipe since its version was published, in the recipe's own terms.

A published package is immutable, so a recipe changed under the same version is refused (bump
``package.epoch``). The refusal names what changed: the package records the configuration it
was built from (``.melange.yaml``, the recipe with its environment locked), else the recipe's
last committed version in git stands in for it.
"""

from __future__ import annotations

import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from nanodistro.builder.package import MELANGE_CONTROL
from nanodistro.errors import NanodistroError
from nanodistro.formats.apk import read_apk
from nanodistro.recipe.model import Recipe

_MAX_LISTED = 8


def describe_recipe_change(recipe: Recipe, path: Path, published: Path) -> str:
    """``changed: package.description, pipeline[2] (runs)`` — or where the difference lies when
    the recipe's fields are the same ("" when nothing can be compared)."""
    new = _comparable(recipe.model_dump(mode="json", by_alias=True, exclude_defaults=True))
    old, source = _published_config(published), "the published package's recipe"
    if old is None:
        old, source = _committed_config(path), "the recipe at git HEAD"
    if old is None:
        return ""
    changes = _differences(_comparable(old), new)
    if not changes:
        files = path.parent / recipe.package.name
        if files.is_dir():
            return f"the recipe's fields match {source}; files under {files}/ changed"
        return ""
    listed = ", ".join(changes[:_MAX_LISTED])
    more = f" and {len(changes) - _MAX_LISTED} more" if len(changes) > _MAX_LISTED else ""
    return f"changed since {source}: {listed}{more}"


def _published_config(apk: Path) -> dict[str, Any] | None:
    try:
        raw = read_apk(apk.read_bytes(), where=str(apk)).extra_control.get(MELANGE_CONTROL)
        data = yaml.safe_load(raw) if raw else None
    except (OSError, NanodistroError, yaml.YAMLError):
        return None
    return data if isinstance(data, dict) else None


def _committed_config(path: Path) -> dict[str, Any] | None:
    from nanodistro.recipe.loading import load_recipe_text

    try:
        shown = subprocess.run(
            ["git", "show", f"HEAD:./{path.name}"],
            cwd=path.parent,
            capture_output=True,
            text=True,
            check=False,
        )
    except OSError:
        return None
    if shown.returncode != 0:
        return None
    try:
        old = load_recipe_text(shown.stdout, f"HEAD:{path.name}")
    except NanodistroError:
        return None
    return old.model_dump(mode="json", by_alias=True, exclude_defaults=True)


def _comparable(config: Mapping[str, Any]) -> dict[str, Any]:
    """The published form locks environment packages (``name=version``, plus what they pulled
    in): compare names, and only whether the recipe asks for a name that was not installed."""
    data = dict(config)
    environment = dict(data.get("environment") or {})
    contents = dict(environment.get("contents") or {})
    packages = contents.pop("packages", None) or []
    names = sorted({str(p).split("=", 1)[0] for p in packages})
    if contents:
        environment["contents"] = contents
    else:
        environment.pop("contents", None)
    if environment:
        data["environment"] = environment
    else:  # only the locked packages were there: nothing the recipe wrote
        data.pop("environment", None)
    data["_environment_packages"] = names
    return data


def _differences(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    changes: list[str] = []
    new_names = set(new.get("_environment_packages", []))
    if new_names - set(old.get("_environment_packages", [])):
        added = sorted(new_names - set(old.get("_environment_packages", [])))
        changes.append(f"environment.contents.packages (+{', +'.join(added)})")
    for key in sorted(set(old) | set(new)):
        if key == "_environment_packages" or old.get(key) == new.get(key):
            continue
        if key == "pipeline":
            changes.extend(_steps("pipeline", old.get(key) or [], new.get(key) or []))
        elif key == "subpackages":
            changes.extend(_subpackages(old.get(key) or [], new.get(key) or []))
        elif isinstance(old.get(key), dict) and isinstance(new.get(key), dict):
            inner = old[key].keys() | new[key].keys()
            changes.extend(
                f"{key}.{k}" for k in sorted(inner) if old[key].get(k) != new[key].get(k)
            )
        else:
            changes.append(key)
    return changes


def _step_label(step: Any) -> str:
    if not isinstance(step, dict):
        return "step"
    if step.get("uses"):
        return f"uses: {step['uses']}"
    return str(step.get("name") or "runs")


def _steps(where: str, old: list[Any], new: list[Any]) -> list[str]:
    changes = [
        f"{where}[{i}] ({_step_label(b)})"
        for i, (a, b) in enumerate(zip(old, new, strict=False))
        if a != b
    ]
    if len(new) > len(old):
        changes.append(f"{where}: {len(new) - len(old)} step(s) added")
    elif len(old) > len(new):
        changes.append(f"{where}: {len(old) - len(new)} step(s) removed")
    return changes


def _subpackages(old: list[Any], new: list[Any]) -> list[str]:
    def by_name(items: list[Any]) -> dict[str, Any]:
        return {str(s.get("name")): s for s in items if isinstance(s, dict)}

    before, after = by_name(old), by_name(new)
    changes = [f"subpackage {n} added" for n in sorted(after.keys() - before.keys())]
    changes += [f"subpackage {n} removed" for n in sorted(before.keys() - after.keys())]
    for name in sorted(before.keys() & after.keys()):
        a, b = before[name], after[name]
        for key in sorted(a.keys() | b.keys()):
            if a.get(key) == b.get(key):
                continue
            if key == "pipeline":
                changes.extend(_steps(f"subpackage {name} pipeline", a[key] or [], b[key] or []))
            else:
                changes.append(f"subpackage {name} {key}")
    return changes
