#!/bin/sh
# Re-fetch the console's chart library (uPlot) from the npm registry and vendor it into
# src/nanodistro/web/static/vendor/uplot/, checking the tarball against the registry's
# sha512 integrity first. The console never loads anything from a CDN at run time: these
# files are served from /static/vendor/.
#
# Usage: scripts/vendor-web-assets.sh [VERSION]   (default: the version recorded below)
#
# After a version change, update UPLOT_VERSION and UPLOT_INTEGRITY here and the table in
# static/vendor/README.md (the script prints the file hashes); tests/web/test_catalog_pages.py
# checks the vendored bytes against the README.
set -eu

UPLOT_VERSION="${1:-1.6.32}"
# `npm view uplot@1.6.32 dist.integrity`
UPLOT_INTEGRITY="sha512-KIMVnG68zvu5XXUbC4LQEPnhwOxBuLyW1AHtpm6IKTXImkbLgkMy+jabjLgSLMasNuGGzQm/ep3tOkyTxpiQIw=="

here="$(cd "$(dirname "$0")/.." && pwd)"
target="$here/src/nanodistro/web/static/vendor/uplot"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

registry_integrity="$(npm view "uplot@$UPLOT_VERSION" dist.integrity)"
if [ "$#" -eq 0 ] && [ "$registry_integrity" != "$UPLOT_INTEGRITY" ]; then
    echo "registry integrity for uplot@$UPLOT_VERSION changed:" >&2
    echo "  recorded: $UPLOT_INTEGRITY" >&2
    echo "  registry: $registry_integrity" >&2
    exit 1
fi

(cd "$work" && npm pack --silent "uplot@$UPLOT_VERSION" >/dev/null)
tarball="$work/uplot-$UPLOT_VERSION.tgz"
actual="sha512-$(openssl dgst -sha512 -binary "$tarball" | base64 -w0)"
if [ "$actual" != "$registry_integrity" ]; then
    echo "uplot-$UPLOT_VERSION.tgz does not match the registry's integrity:" >&2
    echo "  registry: $registry_integrity" >&2
    echo "  tarball:  $actual" >&2
    exit 1
fi

tar -xzf "$tarball" -C "$work"
mkdir -p "$target"
cp "$work/package/dist/uPlot.iife.min.js" "$work/package/dist/uPlot.min.css" \
    "$work/package/LICENSE" "$target/"
echo "vendored uplot@$UPLOT_VERSION ($actual) into $target"
(cd "$target" && sha256sum uPlot.iife.min.js uPlot.min.css LICENSE)
