"""The melange recipe model (reference/formats.md §5; chainguard-dev/melange:pkg/config/config.go).

Keys keep melange's spelling as aliases (``target-architecture``, ``build_repositories``); Python
attributes use underscores. Like melange (yaml.v3 with ``KnownFields(true)``), an unknown key is an
error. Every scalar is a string as written in the file (``version: 1.10`` stays ``"1.10"``), see
:mod:`nanodistro.recipe.yamlsource`. Values are kept *unsubstituted*; ``${{…}}`` expansion is done
per architecture by :mod:`nanodistro.recipe.substitute`.

Entry points: :func:`load_recipe` and :func:`load_recipe_text`. Errors are
:class:`RecipeLoadError` (a ``RecipeError``) naming ``file:line: key.path: problem``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    model_validator,
)

from nanodistro.errors import RecipeError
from nanodistro.recipe.update import UpdateConfig
from nanodistro.recipe.yamlsource import KeyPath, YamlDocument, format_path, parse_yaml

__all__ = [
    "Accounts",
    "BuildEnvironment",
    "BuildOption",
    "Capabilities",
    "Capability",
    "Checks",
    "Contents",
    "Copyright",
    "Cpe",
    "Dependencies",
    "PackageInfo",
    "PackageOptions",
    "PipelineStep",
    "RangeData",
    "Recipe",
    "RecipeLoadError",
    "Resources",
    "Scriptlets",
    "Subpackage",
    "TestSpec",
    "VarTransform",
    "load_recipe",
    "load_recipe_text",
    "with_melange_defaults",
]


def _to_text(value: Any) -> Any:
    # Go decodes a YAML null into a string field as "" and numbers as their text; the YAML loader
    # already hands us source text, this covers recipes built in Python.
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    return value


Text = Annotated[str, BeforeValidator(_to_text)]
TextMap = dict[str, Text]


class _Model(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        populate_by_name=True,
        alias_generator=lambda name: name.rstrip("_").replace("_", "-"),
        validate_default=False,
    )

    @model_validator(mode="before")
    @classmethod
    def _null_is_absent(cls, data: Any) -> Any:
        # yaml.v3 leaves a struct field at its zero value when the YAML says `key:` (null).
        if isinstance(data, dict) and any(v is None for v in data.values()):
            return {k: v for k, v in data.items() if v is not None}
        return data


# --- package -------------------------------------------------------------------------------


class Copyright(_Model):
    """One licence entry; each becomes a ``license =`` line, SPDX expression joined by AND."""

    license: Text
    paths: list[Text] = Field(default_factory=list)
    attestation: Text = ""
    license_path: Text = ""
    detection_override: Text = ""


class Dependencies(_Model):
    """Declared runtime deps, provides and replaces (merged with SCA results at build time)."""

    runtime: list[Text] = Field(default_factory=list)
    provides: list[Text] = Field(default_factory=list)
    replaces: list[Text] = Field(default_factory=list)
    provider_priority: Text = ""
    replaces_priority: Text = ""


class PackageOptions(_Model):
    """Switches that drop generated provides/depends (melange ``PackageOption``)."""

    no_provides: bool = False
    no_depends: bool = False
    no_commands: bool = False
    no_versioned_shlib_deps: bool = False


class Trigger(_Model):
    """apk trigger: ``script`` runs when files under ``paths`` change."""

    script: Text = ""
    paths: list[Text] = Field(default_factory=list)


class Scriptlets(_Model):
    """Install scripts stored as control files (``.pre-install`` …)."""

    trigger: Trigger | None = None
    pre_install: Text = ""
    post_install: Text = ""
    pre_deinstall: Text = ""
    post_deinstall: Text = ""
    pre_upgrade: Text = ""
    post_upgrade: Text = ""


class Checks(_Model):
    """Package linters disabled for this (sub)package."""

    disabled: list[Text] = Field(default_factory=list)
    enabled: list[Text] = Field(default_factory=list)


class Cpe(_Model):
    """CPE parts used to match NVD records."""

    part: Text = ""
    vendor: Text = ""
    product: Text = ""
    edition: Text = ""
    language: Text = ""
    sw_edition: Text = Field("", alias="sw_edition")
    target_sw: Text = Field("", alias="target_sw")
    target_hw: Text = Field("", alias="target_hw")
    other: Text = ""


class Capability(_Model):
    """File capabilities written as ``security.capability`` xattrs."""

    path: Text
    add: TextMap = Field(default_factory=dict)
    reason: Text = ""


class Resources(_Model):
    """Resource hints for VM/cluster runners."""

    cpu: Text = ""
    cpumodel: Text = ""
    memory: Text = ""
    disk: Text = ""


_GO_DURATION = re.compile(r"^(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+$|^\d+$")
_DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}


class PackageInfo(_Model):
    """The ``package:`` block."""

    name: Text
    version: Text
    epoch: int = Field(0, ge=0)
    description: Text = ""
    url: Text = ""
    commit: Text = ""
    annotations: TextMap = Field(default_factory=dict)
    target_architecture: list[Text] = Field(default_factory=list)
    copyright: list[Copyright] = Field(default_factory=list)
    dependencies: Dependencies = Field(default_factory=Dependencies)
    options: PackageOptions | None = None
    scriptlets: Scriptlets | None = None
    checks: Checks = Field(default_factory=Checks)
    cpe: Cpe | None = None
    setcap: list[Capability] = Field(default_factory=list)
    timeout: Text = ""
    resources: Resources | None = None
    test_resources: Resources | None = None

    @property
    def full_version(self) -> str:
        """``<version>-r<epoch>``."""
        return f"{self.version}-r{self.epoch}"

    @property
    def timeout_seconds(self) -> float | None:
        """``timeout`` (a Go duration like ``1h30m``, or nanoseconds) in seconds."""
        if not self.timeout:
            return None
        if self.timeout.isdigit():
            return int(self.timeout) / 1e9
        return sum(
            float(number) * _DURATION_UNITS[unit]
            for number, unit in re.findall(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)", self.timeout)
        )

    def license_expression(self) -> str:
        """SPDX expression of all copyright entries (joined with AND, as melange's SBOM does)."""
        licenses = [entry.license for entry in self.copyright if entry.license]
        if len(licenses) <= 1:
            return licenses[0] if licenses else ""
        return " AND ".join(f"({lic})" if " " in lic else lic for lic in licenses)


# --- build environment (an apko ImageConfiguration) ---------------------------------------------
#
# These mirror nanodistro.imageconfig.model on purpose; reusing those classes here was tried and
# changes what a recipe means. The imageconfig classes carry apko's Validate rules, which melange
# does not apply when it decodes a recipe (yaml.v3 into apko's structs, no Validate call):
#   - a user without a uid, or with uid 0, and a paths[].type outside apko's five names, load today
#     and would become errors;
#   - an empty contents.packages entry would be an error reported at `packages`, not `packages[N]`;
#   - their ValueError messages reach users through _message() as "Value error, ...";
#   - paths[].permissions: the recipe loader hands every scalar over as source text, and
#     imageconfig's octal parser reads the text "0755" as 0o755 where this model reads 755 (yaml.v3
#     gives 0o755; nothing consumes recipe paths today, so the difference is latent);
#   - imageconfig accepts contents.runtime_keyring, which this model rejects as an unknown key.
# Speed was not the obstacle (bench/bench_recipe_load.py: 0.99 s vs 1.11 s for the extrapolated
# corpus); sharing needs those rules moved out of the imageconfig models first.


class BaseImage(_Model):
    """apko ``contents.baseimage``."""

    image: Text = ""
    apkindex: Text = ""


class Contents(_Model):
    """apko ``contents``: where packages come from and which to install."""

    repositories: list[Text] = Field(default_factory=list)
    build_repositories: list[Text] = Field(default_factory=list, alias="build_repositories")
    runtime_repositories: list[Text] = Field(default_factory=list, alias="runtime_repositories")
    keyring: list[Text] = Field(default_factory=list)
    packages: list[Text] = Field(default_factory=list)
    baseimage: BaseImage | None = None


class User(_Model):
    """An account in the build guest."""

    username: Text = ""
    uid: int | None = None
    gid: int | None = None
    shell: Text = ""
    homedir: Text = ""


class Group(_Model):
    """A group in the build guest."""

    groupname: Text = ""
    gid: int | None = None
    members: list[Text] = Field(default_factory=list)


class Accounts(_Model):
    """apko ``accounts``."""

    run_as: Text = ""
    users: list[User] = Field(default_factory=list)
    groups: list[Group] = Field(default_factory=list)


class Entrypoint(_Model):
    """apko ``entrypoint`` (accepted for completeness; builds ignore it)."""

    type: Text = ""
    command: Text = ""
    shell_fragment: Text = ""
    services: TextMap = Field(default_factory=dict)


class PathMutation(_Model):
    """apko ``paths`` entry."""

    path: Text = ""
    type: Text = ""
    uid: int | None = None
    gid: int | None = None
    permissions: int | None = None
    source: Text = ""
    recursive: bool = False


class Layering(_Model):
    """apko ``layering``."""

    strategy: Text = ""
    budget: int | None = None


class CertificateEntry(_Model):
    """apko ``certificates.additional`` entry."""

    name: Text = ""
    content: Text = ""


class Certificates(_Model):
    """apko ``certificates``."""

    additional: list[CertificateEntry] = Field(default_factory=list)
    providers: list[Text] = Field(default_factory=list)


class BuildEnvironment(_Model):
    """``environment:`` (and ``test.environment``): the apko image the build runs in."""

    contents: Contents = Field(default_factory=Contents)
    entrypoint: Entrypoint | None = None
    cmd: Text = ""
    stop_signal: Text = ""
    work_dir: Text = ""
    accounts: Accounts = Field(default_factory=Accounts)
    archs: list[Text] = Field(default_factory=list)
    environment: TextMap = Field(default_factory=dict)
    paths: list[PathMutation] = Field(default_factory=list)
    vcs_url: Text = ""
    annotations: TextMap = Field(default_factory=dict)
    include: Text = ""
    volumes: list[Text] = Field(default_factory=list)
    layering: Layering | None = None
    certificates: Certificates | None = None


# Parse-time defaults melange adds (MEL:pkg/config/config.go ParseConfiguration).
MELANGE_DEFAULT_ENV = {
    "HOME": "/home/build",
    "GOPATH": "/home/build/.cache/go",
    "GOMODCACHE": "/var/cache/melange/gomodcache",
    "UV_CACHE_DIR": "/var/cache/melange/uv",
    "PIP_CACHE_DIR": "/var/cache/melange/pip",
    "COMPOSER_CACHE_DIR": "/var/cache/melange/composer",
    "npm_config_cache": "/var/cache/melange/npm",
}


def with_melange_defaults(environment: BuildEnvironment) -> BuildEnvironment:
    """A copy with the ``build`` user/group (uid/gid 1000) and default env vars melange adds."""
    env = environment.model_copy(deep=True)
    if not any(g.groupname == "build" for g in env.accounts.groups):
        env.accounts.groups.append(Group(groupname="build", gid=1000, members=["build"]))
    if not any(u.username == "build" for u in env.accounts.users):
        env.accounts.users.append(User(username="build", uid=1000, gid=1000))
    for key, value in MELANGE_DEFAULT_ENV.items():
        if not env.environment.get(key):
            env.environment[key] = value
    return env


# --- pipelines ---------------------------------------------------------------------------------


class Needs(_Model):
    """Packages a step adds to the build environment."""

    packages: list[Text] = Field(default_factory=list)


class Assertions(_Model):
    """``assertions: {required-steps: N}``."""

    required_steps: int = 0


class PipelineInput(_Model):
    """An input declared by a pipeline definition (``inputs:``)."""

    description: Text = ""
    default: Text = ""
    required: bool = False


class PipelineStep(_Model):
    """One step: ``uses`` a named pipeline, ``runs`` a shell fragment, or nests ``pipeline``."""

    name: Text = ""
    uses: Text = ""
    with_: TextMap = Field(default_factory=dict, alias="with")
    runs: Text = ""
    pipeline: list[PipelineStep] = Field(default_factory=list)
    inputs: dict[str, PipelineInput] = Field(default_factory=dict)
    needs: Needs | None = None
    label: Text = ""
    if_: Text = Field("", alias="if")
    assertions: Assertions | None = None
    working_directory: Text = ""
    environment: TextMap = Field(default_factory=dict)

    def walk(self) -> list[PipelineStep]:
        """This step and every nested step, depth first."""
        steps = [self]
        for child in self.pipeline:
            steps.extend(child.walk())
        return steps


class TestSpec(_Model):
    """``test:`` of the package or a subpackage."""

    environment: BuildEnvironment = Field(default_factory=BuildEnvironment)
    pipeline: list[PipelineStep] = Field(default_factory=list)


class Subpackage(_Model):
    """One ``subpackages:`` entry (before ``range`` expansion and substitution)."""

    name: Text
    if_: Text = Field("", alias="if")
    range_: Text = Field("", alias="range")
    description: Text = ""
    url: Text = ""
    commit: Text = ""
    annotations: TextMap = Field(default_factory=dict)
    copyright: list[Copyright] = Field(default_factory=list)
    dependencies: Dependencies = Field(default_factory=Dependencies)
    options: PackageOptions | None = None
    scriptlets: Scriptlets | None = None
    checks: Checks = Field(default_factory=Checks)
    setcap: list[Capability] = Field(default_factory=list)
    pipeline: list[PipelineStep] = Field(default_factory=list)
    test: TestSpec | None = None


# --- top level -----------------------------------------------------------------------------


class Capabilities(_Model):
    """Linux capabilities added to / dropped from the build sandbox."""

    add: list[Text] = Field(default_factory=list)
    drop: list[Text] = Field(default_factory=list)


class VarTransform(_Model):
    """``${{vars.<to>}}`` = regex replace of ``match`` by ``replace`` in ``from``."""

    from_: Text = Field(alias="from")
    match: Text
    replace: Text
    to: Text


class RangeData(_Model):
    """``data:`` entry iterated by subpackages with ``range: <name>``."""

    name: Text
    items: TextMap


class PackageListOption(_Model):
    """``add``/``remove`` lists of a build option."""

    add: list[Text] = Field(default_factory=list)
    remove: list[Text] = Field(default_factory=list)


class ContentsOption(_Model):
    """``contents:`` of a build option."""

    packages: PackageListOption = Field(default_factory=PackageListOption)


class EnvironmentOption(_Model):
    """``environment:`` of a build option."""

    contents: ContentsOption = Field(default_factory=ContentsOption)


class BuildOption(_Model):
    """A named deviation enabled with ``--build-option``."""

    vars: TextMap = Field(default_factory=dict)
    environment: EnvironmentOption = Field(default_factory=EnvironmentOption)


class Recipe(_Model):
    """A whole melange recipe."""

    package: PackageInfo
    environment: BuildEnvironment = Field(default_factory=BuildEnvironment)
    capabilities: Capabilities | None = None
    vars: TextMap = Field(default_factory=dict)
    var_transforms: list[VarTransform] = Field(default_factory=list)
    data: list[RangeData] = Field(default_factory=list)
    options: dict[str, BuildOption] = Field(default_factory=dict)
    pipeline: list[PipelineStep] = Field(default_factory=list)
    subpackages: list[Subpackage] = Field(default_factory=list)
    test: TestSpec | None = None
    update: UpdateConfig | None = None

    _source: YamlDocument | None = PrivateAttr(default=None)

    @property
    def source(self) -> YamlDocument | None:
        """The parsed file (raw data, text and line numbers), when loaded from YAML."""
        return self._source

    @property
    def where(self) -> str:
        """The file this recipe came from (or ``<recipe>``)."""
        return self._source.where if self._source else "<recipe>"

    def line_of(self, path: KeyPath) -> int | None:
        """1-based line of a key path such as ``("pipeline", 0, "with", "uri")``."""
        return self._source.line_of(path) if self._source else None

    def all_steps(self) -> list[tuple[KeyPath, PipelineStep]]:
        """Every pipeline step (main, subpackages, tests; nested included) with its key path."""
        found: list[tuple[KeyPath, PipelineStep]] = []

        def visit(prefix: KeyPath, steps: list[PipelineStep]) -> None:
            for index, step in enumerate(steps):
                path = (*prefix, index)
                found.append((path, step))
                visit((*path, "pipeline"), step.pipeline)

        visit(("pipeline",), self.pipeline)
        if self.test:
            visit(("test", "pipeline"), self.test.pipeline)
        for index, sub in enumerate(self.subpackages):
            visit(("subpackages", index, "pipeline"), sub.pipeline)
            if sub.test:
                visit(("subpackages", index, "test", "pipeline"), sub.test.pipeline)
        return found


# --- loading -----------------------------------------------------------------------------------


class RecipeLoadError(RecipeError):
    """A recipe that does not load; ``problems`` lists every ``(line, key path, message)``."""

    def __init__(
        self,
        message: str,
        *,
        where: str | None = None,
        line: int | None = None,
        field: str | None = None,
        problems: list[tuple[int | None, str, str]] | None = None,
    ) -> None:
        super().__init__(message, where=where, line=line, field=field)
        self.problems = problems or [(line, field or "", message)]


def load_recipe(path: Path) -> Recipe:
    """Load and validate a melange recipe file."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RecipeLoadError("file not found", where=str(path)) from None
    except UnicodeDecodeError as error:
        raise RecipeLoadError(f"not UTF-8 text ({error.reason})", where=str(path)) from None
    except OSError as error:
        raise RecipeLoadError(f"cannot read: {error.strerror}", where=str(path)) from None
    return load_recipe_text(text, str(path))


def load_recipe_text(text: str, where: str = "<recipe>") -> Recipe:
    """Load and validate recipe YAML text; ``where`` names it in errors."""
    try:
        doc = parse_yaml(text, where)
    except RecipeLoadError:
        raise
    except RecipeError as error:
        raise RecipeLoadError(
            error.message, where=error.where, line=error.line, field=error.field
        ) from None
    return recipe_from_document(doc)


def recipe_from_document(doc: YamlDocument) -> Recipe:
    """Validate an already parsed :class:`YamlDocument` into a :class:`Recipe`."""
    if not isinstance(doc.data, dict):
        raise RecipeLoadError(
            "a recipe must be a YAML mapping with 'package', 'pipeline', …", where=doc.where, line=1
        )
    data = doc.data
    if isinstance(data.get("update"), dict):
        data = {**data, "update": _drop_nulls(data["update"])}
    try:
        recipe = Recipe.model_validate(data)
    except ValidationError as error:
        raise _translate(error, doc) from None
    recipe._source = doc
    problems = _semantic_problems(recipe)
    if problems:
        raise _problems_error(
            [(doc.line_of(path), format_path(path), message) for path, message in problems], doc
        )
    return recipe


def _drop_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _drop_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_nulls(v) for v in value]
    return value


def _problems_error(
    problems: list[tuple[int | None, str, str]], doc: YamlDocument
) -> RecipeLoadError:
    problems.sort(key=lambda p: (p[0] or 0, p[1]))
    line, field, message = problems[0]
    if len(problems) > 1:
        message += f" (and {len(problems) - 1} more problem{'s' if len(problems) > 2 else ''})"
    return RecipeLoadError(
        message, where=doc.where, line=line, field=field or None, problems=problems
    )


def _translate(error: ValidationError, doc: YamlDocument) -> RecipeLoadError:
    problems: list[tuple[int | None, str, str]] = []
    seen: set[tuple[str, str]] = set()
    for item in error.errors(include_url=False):
        path = _clean_loc(item["loc"], doc)
        message = _message(item, path)
        key = (format_path(path), message)
        if key in seen:
            continue
        seen.add(key)
        problems.append((doc.line_of(path), format_path(path), message))
    return _problems_error(problems, doc)


def _clean_loc(loc: tuple[Any, ...], doc: YamlDocument) -> KeyPath:
    # pydantic inserts union-member tags ("str", "function-before[...]") into locations; keep only
    # the parts that are real keys/indexes in the document (plus a final missing key).
    path: list[str | int] = []
    for position, part in enumerate(loc):
        candidate = (*path, part)
        if isinstance(part, int) or candidate in doc.lines or position == len(loc) - 1:
            if isinstance(part, str) and "[" in part and candidate not in doc.lines:
                continue
            path.append(part)
    return tuple(path)


def _message(item: Any, path: KeyPath) -> str:
    kind = item["type"]
    if kind == "extra_forbidden":
        allowed = _allowed_keys(path[:-1])
        hint = f" (expected one of: {', '.join(allowed)})" if allowed else ""
        return f"unknown key{hint}"
    if kind == "missing":
        return "required key is missing"
    if kind in ("string_type", "str_type"):
        return "expected a string (a scalar), got a list or mapping"
    if kind in ("list_type",):
        return "expected a list"
    if kind in ("dict_type", "model_type", "model_attributes_type"):
        return "expected a mapping"
    if kind in ("bool_parsing", "bool_type"):
        return "expected true or false"
    if kind in ("int_parsing", "int_type", "int_from_float"):
        return "expected an integer"
    if kind == "greater_than_equal":
        return "expected a non-negative integer"
    if kind == "literal_error":
        return f"expected {item['ctx'].get('expected', 'one of the allowed values')}"
    return str(item["msg"])


def _allowed_keys(path: KeyPath) -> list[str]:
    model: Any = Recipe
    skip_key = False  # the previous field was a dict[str, Model]: this part is a free key
    for part in path:
        if isinstance(part, int):
            continue
        if skip_key:
            skip_key = False
            continue
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            return []
        next_model = None
        for name, info in model.model_fields.items():
            if (info.alias or name) == part:
                next_model = _model_of(info.annotation)
                skip_key = getattr(info.annotation, "__origin__", None) is dict
                break
        if next_model is None:
            return []
        model = next_model
    if isinstance(model, type) and issubclass(model, BaseModel):
        return sorted(info.alias or name for name, info in model.model_fields.items())
    return []


def _model_of(annotation: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()) or ():
        found = _model_of(arg)
        if found is not None:
            return found
    return None


# --- checks melange makes after decoding (MEL:pkg/config/config.go validate, pipeline.go) --------

_PACKAGE_NAME = re.compile(r"^[a-zA-Z\d][a-zA-Z\d+_.-]*$")
_HEX_LENGTHS = {"expected-sha256": 64, "expected-sha512": 128, "expected-commit": 40}
_HEX = re.compile(r"^[0-9a-f]+$")


def _semantic_problems(recipe: Recipe) -> list[tuple[KeyPath, str]]:
    problems: list[tuple[KeyPath, str]] = []
    name = recipe.package.name
    if "${{" not in name and not _PACKAGE_NAME.match(name):
        problems.append((("package", "name"), f"package name must match {_PACKAGE_NAME.pattern}"))
    if not recipe.package.version:
        problems.append((("package", "version"), "package version must not be empty"))
    if recipe.package.timeout and not _GO_DURATION.match(recipe.package.timeout):
        problems.append((("package", "timeout"), "expected a Go duration such as 30m or 1h30m"))
    _check_priorities(("package", "dependencies"), recipe.package.dependencies, problems)
    data_names = {d.name for d in recipe.data}
    for index, sub in enumerate(recipe.subpackages):
        _check_priorities(("subpackages", index, "dependencies"), sub.dependencies, problems)
        if sub.range_ and sub.range_ not in data_names:
            problems.append(
                (("subpackages", index, "range"), f"undefined range {sub.range_!r} (not in data:)")
            )
    for path, step in recipe.all_steps():
        problems.extend(step_problems(path, step))
    return problems


def _check_priorities(
    path: KeyPath, deps: Dependencies, problems: list[tuple[KeyPath, str]]
) -> None:
    for key, value in (
        ("provider-priority", deps.provider_priority),
        ("replaces-priority", deps.replaces_priority),
    ):
        if value and "${{" not in value and not re.fullmatch(r"-?\d+", value):
            problems.append(((*path, key), "priority must be an integer"))


def step_problems(path: KeyPath, step: PipelineStep) -> list[tuple[KeyPath, str]]:
    """Structural problems of one step (melange ``validatePipelines`` and ``validateWith``)."""
    problems: list[tuple[KeyPath, str]] = []
    if step.with_ and not step.uses:
        problems.append(((*path, "with"), "'with' needs 'uses' (a named pipeline)"))
    if step.uses and step.runs:
        problems.append(
            ((*path, "runs"), f"a step cannot have both 'uses: {step.uses}' and 'runs'")
        )
    for key, length in _HEX_LENGTHS.items():
        value = step.with_.get(key)
        if value is None or "${{" in value:
            continue
        if len(value) != length or not _HEX.match(value):
            problems.append(((*path, "with", key), f"expected {length} lowercase hex characters"))
    return problems
