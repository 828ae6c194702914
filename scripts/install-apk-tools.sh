#!/usr/bin/env bash
# The reference APK client, built from the unmodified upstream releases in the shared folder
# (Debian does not package apk-tools): apk-tools 2.14.10 -> DEST/bin/apk2, 3.0.6 -> DEST/bin/apk3,
# both static. The shared folder is read-only in CI, so sources are unpacked under DEST/build.
# A client is rebuilt only when its source tarball's sha256 differs from the one recorded in
# DEST/bin/.apkN.sha256 (written last, so an interrupted build is redone).
set -euo pipefail
dest=${1:?usage: install-apk-tools.sh DEST}
here=$(cd "$(dirname "$0")/.." && pwd)
src=${APK_TOOLS_SRC:-${NANODISTRO_SHARED:-$here/../shared}/tools/apk-tools}
v2=2.14.10
v3=3.0.6
sum() { sha256sum "$1" | cut -d' ' -f1; }
current() {  # N VERSION: is DEST/bin/apkN built from this tarball?
  [ -x "$dest/bin/apk$1" ] && [ -f "$dest/bin/.apk$1.sha256" ] \
    && [ "$(cat "$dest/bin/.apk$1.sha256")" = "$(sum "$src/apk-tools-$2.tar.gz")" ]
}
for v in $v2 $v3; do
  [ -f "$src/apk-tools-$v.tar.gz" ] || { echo "missing $src/apk-tools-$v.tar.gz" >&2; exit 1; }
done
if current 2 $v2 && current 3 $v3; then
  exit 0
fi

packages=(build-essential pkg-config libssl-dev zlib1g-dev meson ninja-build libzstd-dev)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

build=$dest/build
mkdir -p "$build" "$dest/bin"
jobs=$(nproc 2>/dev/null || echo 2)
if ! current 2 $v2; then
  echo "building apk-tools $v2 (static) -> $dest/bin/apk2"
  rm -rf "$build/apk-tools-$v2"
  tar -xzf "$src/apk-tools-$v2.tar.gz" -C "$build"
  make -C "$build/apk-tools-$v2" -j"$jobs" STATIC=y LUA=no >"$build/apk2.log" 2>&1 \
    || { tail -n 30 "$build/apk2.log" >&2; exit 1; }
  install -m 0755 "$build/apk-tools-$v2/src/apk.static" "$dest/bin/apk2"
  "$dest/bin/apk2" --version >/dev/null
  sum "$src/apk-tools-$v2.tar.gz" >"$dest/bin/.apk2.sha256"
fi
if ! current 3 $v3; then
  echo "building apk-tools $v3 (static) -> $dest/bin/apk3"
  rm -rf "$build/apk-tools-$v3"
  tar -xzf "$src/apk-tools-$v3.tar.gz" -C "$build"
  (
    cd "$build/apk-tools-$v3"
    meson setup build -Dlua=disabled -Ddocs=disabled -Dpython=disabled -Dtests=disabled \
      -Ddefault_library=static -Dprefer_static=true
    ninja -C build -j"$jobs"
  ) >"$build/apk3.log" 2>&1 || { tail -n 30 "$build/apk3.log" >&2; exit 1; }
  install -m 0755 "$build/apk-tools-$v3/build/src/apk" "$dest/bin/apk3"
  "$dest/bin/apk3" --version >/dev/null
  sum "$src/apk-tools-$v3.tar.gz" >"$dest/bin/.apk3.sha256"
fi
