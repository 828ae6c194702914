"""Fixtures of the factory tests."""

from factory_catalog import first_cycle

__all__ = ["first_cycle"]
