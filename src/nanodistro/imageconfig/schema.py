"""The apko image configuration's schema (apko pkg/build/types/types.go, docs/apko_file.md).

The one definition of what a config may hold and of every validation error. Configs are
validated here (except the simple ones imageconfig/quick.py recognises) and then copied into the
plain classes of model.py, which carry the derived values the build reads; pydantic is imported
only when a config needs this module.

Keys keep apko's YAML spelling through aliases (``work-dir``, ``run-as``, ``shell-fragment``...).
Unknown keys are rejected so a typo is an error naming the key, not a silently ignored setting.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from nanodistro.errors import ConfigError
from nanodistro.imageconfig.arch import Arch


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


def _stringify(value: Any) -> Any:
    """YAML numbers where apko has strings (``run-as: 1000``, ``cmd: 5``) become strings."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return str(value)
    return value


class InlineKey(_Model):
    """A key or certificate given inline: ``{name, content}``."""

    name: str
    content: str


class BaseImage(_Model):
    image: str = ""
    apkindex: str = ""


class Contents(_Model):
    repositories: list[str] = Field(default_factory=list)
    build_repositories: list[str] = Field(default_factory=list)
    runtime_repositories: list[str] = Field(default_factory=list)
    keyring: list[str] = Field(default_factory=list)
    runtime_keyring: list[InlineKey] = Field(default_factory=list)
    packages: list[str] = Field(default_factory=list)
    baseimage: BaseImage | None = None

    @field_validator("packages", "repositories", "build_repositories", "runtime_repositories")
    @classmethod
    def _no_empty(cls, values: list[str]) -> list[str]:
        for value in values:
            if not str(value).strip():
                raise ValueError("empty entry")
        return [str(v).strip() for v in values]


EntrypointType = Literal["", "service-bundle"]


class Entrypoint(_Model):
    type: EntrypointType = ""
    command: str = ""
    shell_fragment: str = Field(default="", alias="shell-fragment")
    services: dict[str, str] = Field(default_factory=dict)

    _coerce = field_validator("command", "shell_fragment", mode="before")(_stringify)


class User(_Model):
    username: str = ""
    uid: int | None = None
    gid: int | None = None
    shell: str = ""
    homedir: str = ""

    @field_validator("uid", "gid")
    @classmethod
    def _range(cls, value: int | None) -> int | None:
        if value is not None and not 0 <= value < 2**32:
            raise ValueError("must be between 0 and 4294967295")
        return value

    @model_validator(mode="after")
    def _apko_rules(self) -> User:
        # as apko pkg/build/types/image_configuration.go Validate
        if not self.username:
            raise ValueError("a user needs a username")
        if self.uid is None:
            raise ValueError(f"user {self.username!r} needs a uid")
        if self.uid == 0:
            raise ValueError(
                f"user {self.username!r} has uid 0, which is reserved for root "
                "(to run as root, use run-as: 0)"
            )
        return self


class Group(_Model):
    groupname: str = ""
    gid: int | None = None
    members: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _apko_rules(self) -> Group:
        if not self.groupname:
            raise ValueError("a group needs a groupname")
        if self.gid is None:
            raise ValueError(f"group {self.groupname!r} needs a gid")
        if self.gid == 0:
            raise ValueError(f"group {self.groupname!r} has gid 0, which is reserved for root")
        if not 0 < self.gid < 2**32:
            raise ValueError("gid must be between 1 and 4294967295")
        return self


class Accounts(_Model):
    run_as: str = Field(default="", alias="run-as")
    users: list[User] = Field(default_factory=list)
    groups: list[Group] = Field(default_factory=list)

    _coerce = field_validator("run_as", mode="before")(_stringify)


PathType = Literal["directory", "empty-file", "hardlink", "symlink", "permissions"]


class PathMutation(_Model):
    path: str
    type: PathType
    uid: int = 0
    gid: int = 0
    permissions: int | None = None
    source: str = ""
    recursive: bool = False

    @field_validator("permissions", mode="before")
    @classmethod
    def _octal(cls, value: Any) -> Any:
        # "0o755"/"0755" written as strings are octal, as apko's yaml decoder reads them
        if isinstance(value, str):
            text = value.strip().lower().removeprefix("0o")
            try:
                return int(text, 8)
            except ValueError as error:
                raise ValueError(f"expected an octal mode such as 0o755, got {value!r}") from error
        return value

    @field_validator("permissions")
    @classmethod
    def _mode_range(cls, value: int | None) -> int | None:
        if value is not None and not 0 <= value <= 0o7777:
            raise ValueError("mode must be between 0 and 0o7777")
        return value

    @model_validator(mode="after")
    def _needs(self) -> PathMutation:
        if not self.path.strip():
            raise ValueError("path is empty")
        if self.type in ("hardlink", "symlink") and not self.source:
            raise ValueError(f"a {self.type} needs a source")
        return self


class Layering(_Model):
    strategy: Literal["", "origin"] = ""
    budget: int = 0

    @field_validator("budget")
    @classmethod
    def _positive(cls, value: int) -> int:
        if value < 0:
            raise ValueError("budget must be >= 0")
        return value

    @property
    def enabled(self) -> bool:
        return bool(self.strategy or self.budget)


class Certificates(_Model):
    additional: list[InlineKey] = Field(default_factory=list)
    providers: list[str] = Field(default_factory=list)


class ImageConfig(_Model):
    contents: Contents = Field(default_factory=Contents)
    entrypoint: Entrypoint = Field(default_factory=Entrypoint)
    cmd: str = ""
    stop_signal: str = Field(default="", alias="stop-signal")
    work_dir: str = Field(default="", alias="work-dir")
    accounts: Accounts = Field(default_factory=Accounts)
    archs: list[str] = Field(default_factory=list)
    environment: dict[str, str] = Field(default_factory=dict)
    paths: list[PathMutation] = Field(default_factory=list)
    vcs_url: str = Field(default="", alias="vcs-url")
    annotations: dict[str, str] = Field(default_factory=dict)
    include: str = ""
    volumes: list[str] = Field(default_factory=list)
    layering: Layering | None = None
    format: Literal["", "tar", "erofs"] = ""
    certificates: Certificates | None = None

    _coerce = field_validator("cmd", mode="before")(_stringify)

    @field_validator("environment", "annotations", mode="before")
    @classmethod
    def _string_values(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {str(k): "" if v is None else _stringify(v) for k, v in value.items()}
        return value

    @field_validator("archs", mode="before")
    @classmethod
    def _archs(cls, value: Any) -> Any:
        if isinstance(value, list):
            return [str(v) for v in value]
        return value

    @field_validator("archs")
    @classmethod
    def _known_archs(cls, values: list[str]) -> list[str]:
        for value in values:
            if value != "all":
                try:
                    Arch.parse(value)
                except ConfigError as error:
                    raise ValueError(error.message) from None
        return values

    @model_validator(mode="after")
    def _cross_checks(self) -> ImageConfig:
        names = [u.username for u in self.accounts.users]
        for name in names:
            if names.count(name) > 1:
                raise ValueError(f"user {name!r} is configured more than once")
        if self.layering is not None and self.layering.enabled and self.format == "erofs":
            raise ValueError("layering cannot be combined with format: erofs")
        return self
