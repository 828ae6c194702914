"""Signed local APK repositories: publish packages immutably, (re)generate signed indexes."""

from nanodistro.repo.lock import repository_lock
from nanodistro.repo.repository import (
    DEFAULT_NOARCH_ARCHS,
    INDEX_FILE,
    PublishedPackage,
    PublishResult,
    load_index,
    publish,
    reindex,
)

__all__ = [
    "DEFAULT_NOARCH_ARCHS",
    "INDEX_FILE",
    "PublishResult",
    "PublishedPackage",
    "load_index",
    "publish",
    "reindex",
    "repository_lock",
]
