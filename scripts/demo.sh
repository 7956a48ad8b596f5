#!/usr/bin/env bash
# The README's first command: installs what is needed, builds nibble, writes the
# demo model (random weights: its text is meaningless) and serves it on
# http://127.0.0.1:8000/v1. Extra arguments go to `nibble serve`.
set -euo pipefail
cd "$(dirname "$0")/.."
NIBBLE_SKIP_NPM=1 scripts/install-deps.sh
NIBBLE_TARGET=nibble scripts/build.sh
model_dir=${NIBBLE_DEMO_MODEL:-demo-model}
if [ ! -f "$model_dir/config.json" ]; then
  ./build/nibble make-demo-model "$model_dir" --preset small
fi
exec ./build/nibble serve --model "$model_dir" --device cpu "$@"
