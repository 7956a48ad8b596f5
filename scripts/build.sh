#!/usr/bin/env bash
# Configures and builds nibble into ./build (Release). Extra arguments go to cmake.
# CUDA is built when nvcc is found; set NIBBLE_CUDA=OFF to skip it.
# NIBBLE_TARGET=nibble builds only the server binary (default: everything).
set -euo pipefail
cd "$(dirname "$0")/.."
args=(-DNIBBLE_CUDA="${NIBBLE_CUDA:-AUTO}")
if [ -n "${NIBBLE_CUDA_ARCHITECTURES:-}" ]; then
  args+=(-DCMAKE_CUDA_ARCHITECTURES="${NIBBLE_CUDA_ARCHITECTURES}")
fi
if command -v ccache >/dev/null; then
  args+=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_CUDA_COMPILER_LAUNCHER=ccache)
fi
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release "${args[@]}" "$@"
cmake --build build --parallel "$(nproc)" ${NIBBLE_TARGET:+--target "$NIBBLE_TARGET"}
