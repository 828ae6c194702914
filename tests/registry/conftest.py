"""Registry fixtures for tests/registry (defined in tests/registry_server.py)."""

from registry_server import crane_registry, docker_registry  # noqa: F401
