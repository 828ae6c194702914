"""Signed local APK repositories: publish packages immutably, (re)generate signed indexes,
freeze numbered versions and point channels at them."""

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
from nanodistro.repo.versions import (
    CHANNELS,
    RepoVersion,
    channel_version,
    channels,
    list_versions,
    locked_versions,
    prune,
    read_version,
    set_channel,
    snapshot,
)

__all__ = [
    "CHANNELS",
    "DEFAULT_NOARCH_ARCHS",
    "INDEX_FILE",
    "PublishResult",
    "PublishedPackage",
    "RepoVersion",
    "channel_version",
    "channels",
    "list_versions",
    "load_index",
    "locked_versions",
    "prune",
    "publish",
    "read_version",
    "reindex",
    "repository_lock",
    "set_channel",
    "snapshot",
]
