#!/usr/bin/env bash
# The build stage of docker/Dockerfile: installs the build packages, builds the
# `nibble` binary (CUDA ON or OFF) and lays it out in /opt/nibble with the
# shared libraries the runtime image lacks.
set -euo pipefail
cuda=$1
apt-get update
grep -v '^\s*#' scripts/debian-packages.txt | xargs apt-get install -y --no-install-recommends
rm -rf /var/lib/apt/lists/*
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DNIBBLE_CUDA="$cuda" \
  -DNIBBLE_BUILD_TESTS=OFF -DNIBBLE_BUILD_BENCH=OFF
cmake --build build --target nibble
mkdir -p /opt/nibble/bin
cp build/nibble /opt/nibble/bin/
scripts/bundle-libs.sh build/nibble /opt/nibble/bin
install -D -m 0644 config/nibble.toml /opt/nibble/etc/nibble.toml
