#!/usr/bin/env bash
# cosign and oras (Debian trixie) and crane (Debian sid) as .deb files, extracted into DEST/bin.
# Uses a private apt state so the system's apt sources are never changed.
set -euo pipefail
dest=${1:?usage: install-oci-tools.sh DEST}
if [ -x "$dest/bin/cosign" ] && [ -x "$dest/bin/oras" ] && [ -x "$dest/bin/crane" ]; then
  exit 0
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/lists/partial" "$work/cache/archives/partial" "$work/root" "$dest/bin"
keyring=/usr/share/keyrings/debian-archive-keyring.gpg
mirror=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null \
  | awk '/^deb |^URIs:/ {for (i=1;i<=NF;i++) if ($i ~ /^https?:\/\//) {print $i; exit}}' || true)
mirror=${mirror:-http://deb.debian.org/debian}
fetch() {  # suite packages...
  local suite=$1; shift
  echo "deb [signed-by=$keyring] $mirror $suite main" > "$work/$suite.list"
  local opts=(-o Dir::Etc::sourceparts=- -o "Dir::State::Lists=$work/lists"
              -o "Dir::Cache=$work/cache" -o "Dir::Etc::sourcelist=$work/$suite.list")
  apt-get "${opts[@]}" update -qq
  (cd "$work" && apt-get "${opts[@]}" download "$@" >/dev/null)
}
echo "fetching cosign, oras (trixie) and crane (sid)"
fetch trixie cosign oras
rm -rf "$work/lists"; mkdir -p "$work/lists/partial"
fetch sid crane
for deb in "$work"/*.deb; do dpkg-deb -x "$deb" "$work/root"; done
for tool in cosign oras crane; do install -m 0755 "$work/root/usr/bin/$tool" "$dest/bin/$tool"; done
"$dest/bin/crane" version >/dev/null
