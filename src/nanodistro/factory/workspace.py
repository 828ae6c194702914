"""The workspace a user keeps in git: ``nanodistro.toml`` plus recipes/, images/, keys/.

Every path in the file is relative to the file itself, so a workspace can be moved or checked out
anywhere. Defaults make an empty ``nanodistro.toml`` a valid workspace.
"""

from __future__ import annotations

import difflib
import os
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nanodistro.errors import ConfigError
from nanodistro.util.host import host_arch

WORKSPACE_FILE = "nanodistro.toml"


@dataclass(frozen=True)
class Workspace:
    root: Path
    name: str
    archs: list[str]
    recipes_dir: Path
    images_dir: Path
    out_dir: Path
    keys_dir: Path
    key_name: str
    source_cache: Path
    mirrors: dict[str, str] = field(default_factory=dict)
    toolchain_root: Path = Path("/usr")
    toolchain_provides: list[str] = field(default_factory=list)
    # [sandbox]: build uid/gid and per-step limits, keys with "_" for "-" (file_size, ...); sizes
    # in bytes, step_timeout in seconds. Absent keys keep the builder's defaults.
    sandbox: dict[str, int | float] = field(default_factory=dict)
    # [state] url: any SQLAlchemy URL for the factory's state; None = <root>/.nanodistro/state.db.
    state_url: str | None = None
    # [registry] url: where the factory pushes every promoted image (<url>/<image>:stable).
    registry: str | None = None
    # [rebuild-on]: recipe -> package or recipe names whose every change rebuilds it (the
    # factory also rebuilds for static embedding and changed sonames without being told).
    rebuild_on: dict[str, list[str]] = field(default_factory=dict)
    # [executor] concurrency: jobs (builds, tests, images, smoke tests) run at once by the
    # factory; None = the CPU count.
    concurrency: int | None = None
    # [executor] kind: "local" (threads of the factory process) or "celery" (Celery workers,
    # factory/distributed); broker: the Celery broker URL (Redis or RabbitMQ, passed through).
    executor_kind: str = "local"
    broker: str | None = None
    # [executor] repository-url: where workers on other machines read the working repository
    # (this workspace's out/packages served over HTTP); None = its path (workers on this host).
    repository_url: str | None = None
    # [vulnerabilities] osv: OSV records (a directory or a .zip) the scanner matches against;
    # None = <root>/.nanodistro/osv (where 'nanodistro vuln update' writes).
    vulnerabilities_osv: Path | None = None
    # [workspace] advisories: the advisory documents (<package>.advisories.yaml);
    # Path() = <root>/advisories.
    advisories_dir: Path = Path()
    # [reproducibility] sample: recipes rebuilt independently per factory cycle and compared
    # with what was published (factory/reproducibility.py); 0 = off.
    reproducibility_sample: int = 1
    # [gates] block: vulnerability severities that keep an image out of stable unless fixed or
    # accepted in an advisory (factory/vulnerabilities.py); empty = no vulnerability gate.
    gates_block: tuple[str, ...] = ()
    # [monitor] deadline: seconds one recipe's upstream check may take in all; None = the
    # monitor's default (monitor/check.py RECIPE_TIMEOUT).
    monitor_deadline: float | None = None
    # [serve] and [webhooks] as written; web/settings.py checks them when the console starts.
    serve_config: dict[str, Any] = field(default_factory=dict)
    webhooks_config: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.advisories_dir == Path():
            object.__setattr__(self, "advisories_dir", self.root / "advisories")

    @property
    def packages_dir(self) -> Path:
        """The signed repository: ``<packages_dir>/<arch>/APKINDEX.tar.gz``."""
        return self.out_dir / "packages"

    @property
    def image_out_dir(self) -> Path:
        return self.out_dir / "images"

    def recipe_files(self) -> list[Path]:
        """The recipes: ``*.yaml`` of the recipes folder that are recipes (not ``.yam.yaml``,
        dot files or YAML without ``package:``), sorted."""
        from nanodistro.recipe.folder import folder_recipes

        return folder_recipes(self.recipes_dir)[0]

    def image_files(self) -> list[Path]:
        return sorted(self.images_dir.glob("*.yaml"))

    def signing_key(self) -> Path | None:
        """The workspace's private key (``<keys>/<name>-<hex>.rsa``), if one was generated."""
        keys = sorted(self.keys_dir.glob(f"{self.key_name}-*.rsa"))
        return keys[-1] if keys else None

    def ecdsa_key(self) -> Path | None:
        """The workspace's ECDSA P-256 key in cosign's format (``<keys>/cosign.key``), which
        signs provenance, images and attestations; None until generated."""
        key = self.keys_dir / "cosign.key"
        return key if key.is_file() else None


def find_workspace(start: Path) -> Path | None:
    """The nearest ``nanodistro.toml`` at or above ``start`` (a file or directory)."""
    start = start.resolve()
    for directory in [start if start.is_dir() else start.parent, *start.parents]:
        candidate = directory / WORKSPACE_FILE
        if candidate.is_file():
            return candidate
    return None


# Every table and key nanodistro.toml may hold (None: any key, e.g. mirror names). A typo must
# not silently fall back to a default.
KNOWN_KEYS: dict[str, frozenset[str] | None] = {
    "workspace": frozenset({"name", "archs", "recipes", "images", "out", "advisories"}),
    "keys": frozenset({"dir", "name"}),
    "sources": frozenset({"cache"}),
    "mirrors": None,
    "toolchain": frozenset({"root", "provides"}),
    "sandbox": frozenset(
        {"uid", "gid", "processes", "memory", "file-size", "open-files", "step-timeout", "tmp-size"}
    ),
    "state": frozenset({"url"}),
    "registry": frozenset({"url"}),
    "rebuild-on": None,
    "executor": frozenset({"concurrency", "kind", "broker", "repository-url"}),
    "vulnerabilities": frozenset({"osv"}),
    "reproducibility": frozenset({"sample"}),
    "gates": frozenset({"block"}),
    "monitor": frozenset({"deadline"}),
    # read by web/settings.py, which checks their values
    "serve": frozenset({"public-reads", "interval"}),
    "webhooks": frozenset({"url", "events", "secret-file", "github-secret-file"}),
}

_SIZE_KEYS = frozenset({"memory", "file-size", "tmp-size"})
_SIZE_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def _unknown(name: str, known: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(known), n=1)
    return f"unknown key {name!r}" + (f" (did you mean {close[0]!r}?)" if close else "")


def _check_keys(data: dict[str, Any], where: Path) -> None:
    for section, value in data.items():
        if section not in KNOWN_KEYS:
            raise ConfigError(_unknown(section, KNOWN_KEYS), where=str(where), field=section)
        known = KNOWN_KEYS[section]
        if known is None or not isinstance(value, dict):
            continue
        for key in value:
            if key not in known:
                raise ConfigError(_unknown(key, known), where=str(where), field=f"{section}.{key}")


def _table(data: dict[str, Any], name: str, where: Path) -> dict[str, Any]:
    value = data.get(name, {})
    if not isinstance(value, dict):
        raise ConfigError("expected a table", where=str(where), field=name)
    return value


def _string_list(value: Any, where: Path, field_name: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError("expected a list of strings", where=str(where), field=field_name)
    return list(value)


def _sandbox(table: dict[str, Any], where: Path) -> dict[str, int | float]:
    """``[sandbox]`` values checked: positive integers; sizes may say ``"8G"`` (binary units)."""
    parsed: dict[str, int | float] = {}
    for key, value in table.items():
        field_name = f"sandbox.{key}"
        if key in _SIZE_KEYS and isinstance(value, str):
            text = value.strip().upper().removesuffix("IB").removesuffix("B")
            unit = text[-1:] if text[-1:] in _SIZE_UNITS else ""
            number = text[: len(text) - len(unit)].strip()
            if not number.isdigit():
                raise ConfigError(
                    f"expected a size like 8G, 512M or a number of bytes, got {value!r}",
                    where=str(where),
                    field=field_name,
                )
            value = int(number) * _SIZE_UNITS[unit]
        if key == "step-timeout" and isinstance(value, float) and value > 0:
            parsed["step_timeout"] = value
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ConfigError(
                "expected a positive integer (uid/gid 0 would build as root)",
                where=str(where),
                field=field_name,
            )
        parsed[key.replace("-", "_")] = value
    return parsed


def _state_url(table: dict[str, Any], root: Path, where: Path) -> str | None:
    """``[state] url``; a relative SQLite file is relative to the workspace like every path."""
    value = table.get("url")
    if value is None:
        return None
    if not isinstance(value, str) or "://" not in value:
        raise ConfigError(
            "expected a database URL like sqlite:///state.db or postgresql://host/db",
            where=str(where),
            field="state.url",
        )
    prefix, sep, database = value.partition(":///")
    if prefix.startswith("sqlite") and sep and database and not database.startswith(("/", ":")):
        return f"{prefix}:///{root / database}"
    return value


def _registry(table: dict[str, Any], where: Path) -> str | None:
    """``[registry] url``: a repository prefix like ``registry.example.com/team``."""
    url = table.get("url")
    if url is None:
        return None
    if not isinstance(url, str) or not url.strip() or "://" in url:
        raise ConfigError(
            "expected a registry prefix like registry.example.com/team (no scheme)",
            where=str(where),
            field="registry.url",
        )
    return url.strip().rstrip("/")


def _concurrency(table: dict[str, Any], where: Path) -> int | None:
    """``[executor] concurrency``: a positive integer (absent: the CPU count, decided later)."""
    value = table.get("concurrency")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(
            f"expected a positive integer (jobs run at once), got {value!r}",
            where=str(where),
            field="executor.concurrency",
        )
    return value


EXECUTOR_KINDS = ("local", "celery")


def _executor(table: dict[str, Any], where: Path) -> tuple[str, str | None]:
    """``[executor] kind`` (default local) and ``broker`` (celery: default Redis on this host;
    a Redis or RabbitMQ URL is passed to Celery untouched)."""
    kind = table.get("kind", "local")
    if kind not in EXECUTOR_KINDS:
        raise ConfigError(
            f"expected one of {', '.join(EXECUTOR_KINDS)}, got {kind!r}",
            where=str(where),
            field="executor.kind",
        )
    broker = table.get("broker")
    if broker is not None:
        from nanodistro.factory.distributed.app import BROKER_SCHEMES

        scheme, sep, _ = broker.partition("://") if isinstance(broker, str) else ("", "", "")
        if not sep or scheme not in BROKER_SCHEMES:
            raise ConfigError(
                "expected a broker URL like redis://127.0.0.1:6379/0 or amqp://user@host//, "
                f"got {broker!r}",
                where=str(where),
                field="executor.broker",
            )
    elif kind == "celery":
        broker = "redis://127.0.0.1:6379/0"
    return kind, broker


def _repository_url(table: dict[str, Any], where: Path) -> str | None:
    """``[executor] repository-url``: an http(s) URL (workers verify what they read from it)."""
    url = table.get("repository-url")
    if url is None:
        return None
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise ConfigError(
            f"expected the packages folder's http(s) URL like http://10.0.0.5:8080/, got {url!r}",
            where=str(where),
            field="executor.repository-url",
        )
    return url


def _sample(table: dict[str, Any], where: Path) -> int:
    """``[reproducibility] sample``: a non-negative integer (default 1)."""
    value = table.get("sample", 1)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(
            f"expected a number of recipes per cycle (0 = off), got {value!r}",
            where=str(where),
            field="reproducibility.sample",
        )
    return value


def _monitor_deadline(table: dict[str, Any], where: Path) -> float | None:
    """``[monitor] deadline``: positive seconds (absent: the monitor's default)."""
    value = table.get("deadline")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise ConfigError(
            f"expected a positive number of seconds per recipe, got {value!r}",
            where=str(where),
            field="monitor.deadline",
        )
    return float(value)


def _gates_block(table: dict[str, Any], where: Path) -> tuple[str, ...]:
    """``[gates] block``: a list of severities (low, medium, high, critical)."""
    levels = ("low", "medium", "high", "critical")
    value = table.get("block", [])
    if not isinstance(value, list) or any(v not in levels for v in value):
        raise ConfigError(
            f"expected a list of severities from {', '.join(levels)}, got {value!r}",
            where=str(where),
            field="gates.block",
        )
    return tuple(dict.fromkeys(value))


def load_workspace(path: Path) -> Workspace:
    """Load ``nanodistro.toml`` (or the one in directory ``path``)."""
    path = Path(path)
    if path.is_dir():
        path = path / WORKSPACE_FILE
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError("workspace file not found", where=str(path)) from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"invalid TOML: {error}", where=str(path)) from None
    _check_keys(data, path)
    root = path.parent.resolve()

    def rel(value: Any, field_name: str) -> Path:
        if not isinstance(value, str):
            raise ConfigError("expected a path string", where=str(path), field=field_name)
        return (root / os.path.expanduser(value)).resolve()

    ws = _table(data, "workspace", path)
    keys = _table(data, "keys", path)
    sources = _table(data, "sources", path)
    mirrors = _table(data, "mirrors", path)
    toolchain = _table(data, "toolchain", path)
    for mirror_name, base in mirrors.items():
        if not isinstance(base, str):
            raise ConfigError(
                "expected a URL string", where=str(path), field=f"mirrors.{mirror_name}"
            )
    executor_kind, broker = _executor(_table(data, "executor", path), path)
    repository_url = _repository_url(_table(data, "executor", path), path)
    return Workspace(
        root=root,
        name=str(ws.get("name", root.name)),
        archs=_string_list(ws.get("archs", [host_arch()]), path, "workspace.archs"),
        recipes_dir=rel(ws.get("recipes", "recipes"), "workspace.recipes"),
        images_dir=rel(ws.get("images", "images"), "workspace.images"),
        out_dir=rel(ws.get("out", "out"), "workspace.out"),
        keys_dir=rel(keys.get("dir", "keys"), "keys.dir"),
        key_name=str(keys.get("name", root.name)),
        source_cache=rel(sources.get("cache", "~/.cache/nanodistro/sources"), "sources.cache"),
        mirrors=dict(mirrors),
        toolchain_root=Path(str(toolchain.get("root", "/usr"))),
        toolchain_provides=_string_list(toolchain.get("provides", []), path, "toolchain.provides"),
        sandbox=_sandbox(_table(data, "sandbox", path), path),
        state_url=_state_url(_table(data, "state", path), root, path),
        registry=_registry(_table(data, "registry", path), path),
        rebuild_on={
            str(recipe): _string_list(names, path, f"rebuild-on.{recipe}")
            for recipe, names in _table(data, "rebuild-on", path).items()
        },
        concurrency=_concurrency(_table(data, "executor", path), path),
        executor_kind=executor_kind,
        broker=broker,
        repository_url=repository_url,
        advisories_dir=rel(ws.get("advisories", "advisories"), "workspace.advisories"),
        vulnerabilities_osv=rel(
            _table(data, "vulnerabilities", path).get("osv", ".nanodistro/osv"),
            "vulnerabilities.osv",
        ),
        reproducibility_sample=_sample(_table(data, "reproducibility", path), path),
        gates_block=_gates_block(_table(data, "gates", path), path),
        monitor_deadline=_monitor_deadline(_table(data, "monitor", path), path),
        serve_config=dict(_table(data, "serve", path)),
        webhooks_config=dict(_table(data, "webhooks", path)),
    )
