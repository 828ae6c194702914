"""apko image configuration model (models layer: no I/O beyond reading the config files)."""

from nanodistro.imageconfig.arch import ALL_ARCHS, APK_TO_OCI, OCI_TO_APK, Arch
from nanodistro.imageconfig.load import LoadedConfig, deep_merge, load_config, load_config_text
from nanodistro.imageconfig.model import (
    Accounts,
    Contents,
    Entrypoint,
    Group,
    ImageConfig,
    InlineKey,
    Layering,
    PathMutation,
    User,
)

__all__ = [
    "ALL_ARCHS",
    "APK_TO_OCI",
    "OCI_TO_APK",
    "Accounts",
    "Arch",
    "Contents",
    "Entrypoint",
    "Group",
    "ImageConfig",
    "InlineKey",
    "Layering",
    "LoadedConfig",
    "PathMutation",
    "User",
    "deep_merge",
    "load_config",
    "load_config_text",
]
