#!/usr/bin/env bash
# The main job (`make run`): build the example catalog in examples/ THROUGH THE FACTORY — one
# `nanodistro factory run examples --once` cycle: every recipe into the signed repository
# examples/out/packages (a new numbered version, channels staging and stable), every image into
# examples/out/images/<name>/ (tags build-<N>, staging, stable, latest), each image's smoke test,
# the gates, the promotion — and print the summary (the catalog tables, then repository version,
# channels and event count). See README "The factory".
# --no-monitor: `make run` builds what the recipes in this checkout say; it must neither need the
# network to check upstreams nor bump (and commit) the project's own recipes.
# A second run rebuilds nothing. Extra arguments go to `nanodistro factory run` (e.g. --json).
set -euo pipefail
cd "$(dirname "$0")/.."
for tool in bwrap umoci; do
    command -v "$tool" >/dev/null || { echo "run-examples: $tool is missing (make sysdeps)" >&2; exit 1; }
done
exec .venv/bin/nanodistro factory run examples --once --no-monitor "$@"
