#!/usr/bin/env bash
# The whole test suite: installs what is needed, builds, runs every test.
# GPU tests (ctest label "gpu") skip cleanly on a machine without a GPU.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
# Without a GPU, compile the CUDA code for Hopper only: it proves the code
# builds without multiplying compile time by every architecture.
if [ -z "${NIBBLE_CUDA_ARCHITECTURES:-}" ] && ! nvidia-smi -L >/dev/null 2>&1; then
  export NIBBLE_CUDA_ARCHITECTURES="90a-real"
fi
scripts/build.sh
ctest --test-dir build --output-on-failure --parallel "$(nproc)" --timeout 900
