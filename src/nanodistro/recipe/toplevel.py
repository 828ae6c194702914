"""The whole-recipe model: :class:`Recipe` and the top-level sections only it carries.

Besides ``package:``, ``environment:``, ``pipeline:``, ``subpackages:``, ``test:`` and ``update:``
(modelled in their own modules), a recipe has sandbox capabilities, ``vars`` and
``var-transforms``, ``data:`` ranges and named build options. A :class:`Recipe` loaded from YAML
keeps its parsed source so callers can name file lines; loading itself is in
:mod:`nanodistro.recipe.loading`.
"""

from __future__ import annotations

from pydantic import Field, PrivateAttr

from nanodistro.recipe.environment import BuildEnvironment
from nanodistro.recipe.fields import Text, TextMap, _Model
from nanodistro.recipe.package import PackageInfo, Subpackage
from nanodistro.recipe.steps import PipelineStep, TestSpec
from nanodistro.recipe.update import UpdateConfig
from nanodistro.recipe.yamlsource import KeyPath, YamlDocument

__all__ = [
    "BuildOption",
    "Capabilities",
    "ContentsOption",
    "EnvironmentOption",
    "PackageListOption",
    "RangeData",
    "Recipe",
    "VarTransform",
]


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
