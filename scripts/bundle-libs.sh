#!/usr/bin/env bash
# Copies the shared libraries a binary needs, other than glibc's, libstdc++/libgcc
# and CUDA's (which the target system provides), into DIR/lib, so the binary runs
# on another Linux with an rpath of $ORIGIN/lib (Docker runtime image, GPU hosts).
# Usage: scripts/bundle-libs.sh BINARY DIR
set -euo pipefail
binary=$1
dest=$2/lib
mkdir -p "$dest"
ldd "$binary" | awk '/=> \// {print $3}' | while read -r lib; do
  case "$(basename "$lib")" in
    libc.so*|libm.so*|libdl.so*|libpthread.so*|librt.so*|ld-linux*|libstdc++*|libgcc_s*) ;;
    libcuda.so*|libcudart*|libcublas*|libcublasLt*|libnvidia*|libnvrtc*) ;;
    *) cp -L "$lib" "$dest/" ;;
  esac
done
