#!/usr/bin/env bash
# Gathers what a GPU machine needs to run nibble's GPU tests and benchmarks into
# .gpu/bundle (git-ignored): binaries built here (build-cuda, sm_90a) with the
# shared libraries they need in lib/ (rpath $ORIGIN/lib), configs, and
# scripts/gpu-run.sh. For the lent-GPU workflow: build here, carry .gpu, run there.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build-cuda}
out=.gpu/bundle
rm -rf "$out" && mkdir -p "$out/config"
binaries=(
  "$build/nibble"
  "$build/tests/kernels/kernels_gpu_test"
  "$build/tests/kernels_gptq/kernels_gptq_gpu_tests"
  "$build/tests/cuda_backend/cuda_backend_test"
  "$build/tests/cuda_backend/cuda_continuous_batching_test"
  "$build/bench/cuda_decode/bench_cuda_decode"
  "$build/bench/gptq_gemm/bench_gptq_gemm"
  "$build/bench/serve_bench/serve_bench"
)
for b in "${binaries[@]}"; do
  if [ -x "$b" ]; then
    cp "$b" "$out/"
    scripts/bundle-libs.sh "$b" "$out"
  else
    echo "gpu-bundle: missing $b" >&2
  fi
done
# The binaries carry the build dir's rpath; let them find lib/ beside them too.
cp config/*.json "$out/config/"
cp scripts/gpu-run.sh "$out/run.sh"
du -sh "$out"
