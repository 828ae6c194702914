"""The apko image configuration (apko pkg/build/types/types.go, docs/apko_file.md): the classes
the rest of nanodistro reads.

Plain dataclasses, not pydantic models: pydantic and the schema it builds cost ``image build``
~0.35 s of start-up. What a config may contain, and every error message, is defined once, by the
pydantic models in ``imageconfig/schema.py``; ``load.py`` checks simple configs itself
(``quick.py``) and hands everything else to that schema, then copies the result into these
classes. They keep the two pydantic methods the project uses (``model_dump`` as
``mode="json", by_alias=True, exclude_defaults=True`` gives it, ``model_copy(update=...)``).

Keys keep apko's YAML spelling through aliases (``work-dir``, ``run-as``, ``shell-fragment``...).
"""

from __future__ import annotations

import dataclasses
import shlex
from dataclasses import dataclass, field
from typing import Any, Literal, Self

from nanodistro.imageconfig.arch import ALL_ARCHS, Arch

EntrypointType = Literal["", "service-bundle"]
PathType = Literal["directory", "empty-file", "hardlink", "symlink", "permissions"]


def _alias(name: str) -> dict[str, str]:
    return {"alias": name}


def _dump(value: Any) -> Any:
    if isinstance(value, _Model):
        return value.model_dump(mode="json", by_alias=True, exclude_defaults=True)
    if isinstance(value, list):
        return [_dump(v) for v in value]
    if isinstance(value, dict):
        return {k: _dump(v) for k, v in value.items()}
    return value


class _Model:
    """What the project uses of pydantic's BaseModel API, with pydantic's semantics."""

    def model_dump(
        self, *, mode: str = "json", by_alias: bool = True, exclude_defaults: bool = True
    ) -> dict[str, Any]:
        """pydantic's ``model_dump(mode="json", by_alias=True, exclude_defaults=True)``: fields
        in declaration order, those equal to their default left out, nested models alike."""
        if (mode, by_alias, exclude_defaults) != ("json", True, True):
            raise NotImplementedError("only mode='json', by_alias=True, exclude_defaults=True")
        out: dict[str, Any] = {}
        for spec in dataclasses.fields(self):  # type: ignore[arg-type]
            value = getattr(self, spec.name)
            if spec.default is not dataclasses.MISSING:
                default = spec.default
            elif spec.default_factory is not dataclasses.MISSING:
                default = spec.default_factory()
            else:
                default = dataclasses.MISSING
            if default is not dataclasses.MISSING and value == default:
                continue
            out[spec.metadata.get("alias", spec.name)] = _dump(value)
        return out

    def model_copy(self, *, update: dict[str, Any] | None = None) -> Self:
        """A shallow copy with ``update``'s fields replaced (not validated, as in pydantic)."""
        return dataclasses.replace(self, **(update or {}))  # type: ignore[type-var]


@dataclass
class InlineKey(_Model):
    """A key or certificate given inline: ``{name, content}``."""

    name: str
    content: str


@dataclass
class BaseImage(_Model):
    image: str = ""
    apkindex: str = ""


@dataclass
class Contents(_Model):
    repositories: list[str] = field(default_factory=list)
    build_repositories: list[str] = field(default_factory=list)
    runtime_repositories: list[str] = field(default_factory=list)
    keyring: list[str] = field(default_factory=list)
    runtime_keyring: list[InlineKey] = field(default_factory=list)
    packages: list[str] = field(default_factory=list)
    baseimage: BaseImage | None = None


@dataclass
class Entrypoint(_Model):
    type: EntrypointType = ""
    command: str = ""
    shell_fragment: str = field(default="", metadata=_alias("shell-fragment"))
    services: dict[str, str] = field(default_factory=dict)

    def argv(self) -> list[str]:
        """config.Entrypoint as apko computes it (pkg/build/oci/image.go)."""
        if self.type == "service-bundle":
            return ["/bin/s6-svscan", "/sv"]
        if self.shell_fragment:
            return ["/bin/sh", "-c", self.shell_fragment]
        if self.command:
            return shlex.split(self.command)
        return []


@dataclass
class User(_Model):
    username: str = ""
    uid: int | None = None
    gid: int | None = None
    shell: str = ""
    homedir: str = ""

    @property
    def effective_gid(self) -> int:
        return self.gid if self.gid is not None else int(self.uid or 0)

    @property
    def effective_homedir(self) -> str:
        return self.homedir or f"/home/{self.username}"

    @property
    def effective_shell(self) -> str:
        return self.shell or "/bin/sh"


@dataclass
class Group(_Model):
    groupname: str = ""
    gid: int | None = None
    members: list[str] = field(default_factory=list)


@dataclass
class Accounts(_Model):
    run_as: str = field(default="", metadata=_alias("run-as"))
    users: list[User] = field(default_factory=list)
    groups: list[Group] = field(default_factory=list)


@dataclass
class PathMutation(_Model):
    path: str
    type: PathType
    uid: int = 0
    gid: int = 0
    permissions: int | None = None
    source: str = ""
    recursive: bool = False

    @property
    def mode(self) -> int:
        if self.permissions is not None:
            return self.permissions
        return 0o755 if self.type == "directory" else 0o644


@dataclass
class Layering(_Model):
    strategy: Literal["", "origin"] = ""
    budget: int = 0

    @property
    def enabled(self) -> bool:
        return bool(self.strategy or self.budget)


@dataclass
class Certificates(_Model):
    additional: list[InlineKey] = field(default_factory=list)
    providers: list[str] = field(default_factory=list)


@dataclass
class ImageConfig(_Model):
    contents: Contents = field(default_factory=Contents)
    entrypoint: Entrypoint = field(default_factory=Entrypoint)
    cmd: str = ""
    stop_signal: str = field(default="", metadata=_alias("stop-signal"))
    work_dir: str = field(default="", metadata=_alias("work-dir"))
    accounts: Accounts = field(default_factory=Accounts)
    archs: list[str] = field(default_factory=list)
    environment: dict[str, str] = field(default_factory=dict)
    paths: list[PathMutation] = field(default_factory=list)
    vcs_url: str = field(default="", metadata=_alias("vcs-url"))
    annotations: dict[str, str] = field(default_factory=dict)
    include: str = ""
    volumes: list[str] = field(default_factory=list)
    layering: Layering | None = None
    format: Literal["", "tar", "erofs"] = ""
    certificates: Certificates | None = None

    # ---- derived values -------------------------------------------------------------------

    def target_archs(self, override: list[str] | None = None) -> list[Arch]:
        """The architectures to build, sorted as apko sorts its index (by OCI name)."""
        names = override or self.archs or list(ALL_ARCHS)
        if "all" in names:
            names = list(ALL_ARCHS)
        return sorted({Arch.parse(n) for n in names})

    def all_packages(self) -> list[str]:
        """contents.packages plus what the entrypoint type implies (s6 for service bundles)."""
        packages = list(self.contents.packages)
        if self.entrypoint.type == "service-bundle" and "s6" not in packages:
            packages.append("s6")
        return packages

    def build_repositories(self) -> list[str]:
        return sorted(set(self.contents.build_repositories) | set(self.contents.repositories))

    def runtime_repositories(self) -> list[str]:
        return sorted(set(self.contents.repositories) | set(self.contents.runtime_repositories))

    def cmd_argv(self) -> list[str]:
        return shlex.split(self.cmd) if self.cmd else []


def from_schema(model: Any) -> ImageConfig:
    """The plain copy of a validated ``schema.ImageConfig`` (same field names, same values)."""
    return _convert(ImageConfig, model)


_CLASSES: dict[str, type[_Model]] = {
    cls.__name__: cls
    for cls in (
        InlineKey,
        BaseImage,
        Contents,
        Entrypoint,
        User,
        Group,
        Accounts,
        PathMutation,
        Layering,
        Certificates,
        ImageConfig,
    )
}


def _value(value: Any) -> Any:
    cls = _CLASSES.get(type(value).__name__)
    if cls is not None and hasattr(type(value), "model_fields"):
        return _convert(cls, value)
    if isinstance(value, list):
        return [_value(v) for v in value]
    if isinstance(value, dict):
        return {k: _value(v) for k, v in value.items()}
    return value


def _convert(cls: type[Any], model: Any) -> Any:
    return cls(**{spec.name: _value(getattr(model, spec.name)) for spec in dataclasses.fields(cls)})
