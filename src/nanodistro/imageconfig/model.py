"""Temporary: the image config classes (being split into plain runtime classes and schema.py)."""

from nanodistro.imageconfig.schema import *  # noqa: F403
from nanodistro.imageconfig.schema import EntrypointType, PathType  # noqa: F401
