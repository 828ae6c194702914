"""Busybox applet links, as apko makes them (apko pkg/build/busybox.go ``InstallBusyboxLinks``).

apko does not run the busybox package's trigger (``busybox --install -s``), so it makes the applet
symlinks itself when ``/bin/busybox`` exists: one ``<applet path> -> /bin/busybox`` link per line
of ``/etc/busybox-paths.d/<package>`` (shipped by Alpine busybox >= 1.36.0-r8 and Wolfi >=
1.36.0-r3), skipping paths that already exist. For older packages without that manifest apko
falls back to a list compiled into apko per busybox version; that list is not carried here, so
the build reports it instead (unless the package already ships its own applet links, as
nanodistro's busybox recipe does through ``make install``).
"""

from __future__ import annotations

from collections.abc import Iterable

from nanodistro.formats.tarball import TarEntry
from nanodistro.image.rootfs import RootFS

BUSYBOX = "bin/busybox"
PATHS_DIR = "etc/busybox-paths.d"


def install_busybox_links(
    fs: RootFS, packages: Iterable[tuple[str, str, list[str]]], *, mtime: int
) -> list[str]:
    """``packages``: (name, version, provides) of every installed package, in install order.

    Returns warnings for what apko would do that is not done here."""
    if fs.get(BUSYBOX) is None:
        return []
    provider = None
    for name, version, provides in packages:
        if name == "busybox" or any("busybox" in p for p in provides):
            provider = (name, version)
            if name == "busybox":
                break
    if provider is None:
        return []
    manifest = fs.read(f"{PATHS_DIR}/{provider[0]}")
    if manifest is None:
        links_to_busybox = any(
            node.entry.type == "symlink" and node.entry.linkname.endswith("busybox")
            for node in fs.nodes.values()
        )
        if links_to_busybox:
            return []
        return [
            f"busybox {provider[1]} ships no /{PATHS_DIR}/{provider[0]}: its applet links "
            "were not made (apko uses a list built into apko for old busybox packages)"
        ]
    for line in manifest.decode("utf-8", "replace").splitlines():
        link = line.strip().strip("/")
        if not link or link == BUSYBOX or ".." in link.split("/"):
            continue
        if fs.get(link, follow=False) is not None or fs.get(link) is not None:
            continue  # like `busybox --install -s`: an existing file or link stays
        fs.put(TarEntry(link, "symlink", mode=0o777, linkname="/bin/busybox", mtime=mtime))
    return []
