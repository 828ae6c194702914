#!/usr/bin/env bash
# The main job (`make run`): build the example catalog in examples/ — every recipe into the signed
# repository examples/out/packages, every image into examples/out/images/<name>/ — run each
# image's smoke test, and print the summary. See README "Example distribution".
# A second run rebuilds nothing. Extra arguments go to `nanodistro catalog build` (e.g. --json).
set -euo pipefail
cd "$(dirname "$0")/.."
for tool in bwrap umoci; do
    command -v "$tool" >/dev/null || { echo "run-examples: $tool is missing (make sysdeps)" >&2; exit 1; }
done
exec .venv/bin/nanodistro catalog build examples "$@"
