"""Shared building blocks of the recipe models: the strict base class and the text field types.

Every recipe model derives from ``_Model``: unknown keys are errors (melange decodes with yaml.v3
``KnownFields(true)``), attributes use underscores while melange's dashed spelling is the alias, and
a ``key:`` left null counts as absent. ``Text`` is a string as written in the file; numbers and
booleans built in Python become their text so the model never holds a non-string scalar.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, model_validator

__all__ = ["Text", "TextMap"]


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
