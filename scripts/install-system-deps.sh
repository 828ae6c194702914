#!/usr/bin/env bash
# Debian packages that nanodistro and its tests use. Idempotent and quiet when all are present.
set -euo pipefail
packages=(
  bubblewrap      # the build sandbox
  git patch       # git-checkout and patch pipelines
  make gcc libc6-dev autoconf automake libtool pkg-config  # toolchain root for builds
  skopeo umoci runc docker-registry  # real OCI clients and a real registry for tests
  busybox-static  # a static shell for container smoke tests
  postgresql      # the factory state tests also run on a real PostgreSQL (initdb/pg_ctl)
  redis-server    # the Celery executor's broker in the distributed factory tests
  chromium chromium-driver  # browser tests of the console (nanodistro serve)
  ca-certificates
  python3 python3-cryptography  # certdata2pem.py in the example catalog's ca-certificates-bundle
)
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
# the unprivileged host account build steps run as when nanodistro runs as root ([sandbox] uid/gid)
id nanodistro-build >/dev/null 2>&1 ||
  useradd --system --no-create-home --shell /usr/sbin/nologin nanodistro-build
