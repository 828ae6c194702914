"""The pipeline step models: ``pipeline:`` entries and the ``test:`` block that runs them.

A :class:`PipelineStep` either ``uses`` a named pipeline, ``runs`` a shell fragment or nests
further steps; :class:`TestSpec` pairs test steps with their own build environment. The structural
checks melange makes on steps after decoding live in :mod:`nanodistro.recipe.loading`
(``step_problems``).
"""

from __future__ import annotations

from pydantic import Field

from nanodistro.recipe.environment import BuildEnvironment
from nanodistro.recipe.fields import Text, TextMap, _Model

__all__ = ["Assertions", "Needs", "PipelineInput", "PipelineStep", "TestSpec"]


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
