"""Architecture names: OCI platform names (amd64, arm64, arm/v7 ...) and their APK names.

apko accepts either spelling in ``archs:`` and maps with ``ToAPK``/``ToOCIPlatform``
(apko pkg/build/types/arch.go).
"""

from __future__ import annotations

from dataclasses import dataclass

from nanodistro.errors import ConfigError

# OCI architecture (with variant) -> APK architecture, as apko's ToAPK.
OCI_TO_APK: dict[str, str] = {
    "386": "x86",
    "amd64": "x86_64",
    "arm64": "aarch64",
    "arm/v6": "armhf",
    "arm/v7": "armv7",
    "loong64": "loongarch64",
    "ppc64le": "ppc64le",
    "riscv64": "riscv64",
    "s390x": "s390x",
}
APK_TO_OCI: dict[str, str] = {apk: oci for oci, apk in OCI_TO_APK.items()}
ALL_ARCHS: tuple[str, ...] = tuple(OCI_TO_APK)


@dataclass(frozen=True, order=True)
class Arch:
    """One target architecture, stored by its OCI name."""

    oci: str

    @classmethod
    def parse(cls, text: str, *, where: str = "", field: str | None = "archs") -> Arch:
        value = str(text).strip()
        if value in OCI_TO_APK:
            return cls(value)
        if value in APK_TO_OCI:
            return cls(APK_TO_OCI[value])
        aliases = {"i386": "386", "x86-64": "amd64", "armv7l": "arm/v7", "arm": "arm/v7"}
        if value in aliases:
            return cls(aliases[value])
        known = ", ".join(ALL_ARCHS)
        raise ConfigError(
            f"unknown architecture {value!r} (expected one of {known} or their APK names)",
            where=where or None,
            field=field,
        )

    @property
    def apk(self) -> str:
        return OCI_TO_APK[self.oci]

    @property
    def architecture(self) -> str:
        """OCI ``architecture`` (without variant)."""
        return self.oci.split("/", 1)[0]

    @property
    def variant(self) -> str | None:
        parts = self.oci.split("/", 1)
        return parts[1] if len(parts) == 2 else None

    def __str__(self) -> str:
        return self.oci
