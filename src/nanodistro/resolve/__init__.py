"""Package resolution: repositories (fetch + verify), the universe of candidates, the solver.

Typical use::

    with RepositoryClient(load_keyring(keys_dir)) as client:
        universe = client.load_universe([parse_repository(url)], arch="x86_64")
    resolution = solve(universe, ["busybox", "python3>=3.11"])
    for pkg in resolution.packages:          # install order
        pkg.name, pkg.version, pkg.checksum, pkg.repository, pkg.candidate.info
"""

from nanodistro.resolve.repositories import (
    RepositoryClient,
    index_location,
    package_location,
    parse_repository,
    parse_repository_list,
    verify_package_bytes,
)
from nanodistro.resolve.solver import Resolution, ResolvedPackage, parse_world, solve
from nanodistro.resolve.universe import Candidate, RepositoryRef, Universe

__all__ = [
    "Candidate",
    "RepositoryClient",
    "RepositoryRef",
    "Resolution",
    "ResolvedPackage",
    "Universe",
    "index_location",
    "package_location",
    "parse_repository",
    "parse_repository_list",
    "parse_world",
    "solve",
    "verify_package_bytes",
]
