#!/usr/bin/env bash
# Gathers what a GPU machine needs to run nibble's GPU tests and benchmarks into
# .gpu/bundle.tar.xz (git-ignored; unpacks to bundle/): binaries built here
# (build-cuda, sm_90a), stripped, with the shared libraries they need in lib/,
# configs, and scripts/gpu-run.sh. For the lent-GPU workflow: build here, carry
# .gpu, then there: tar xJf .gpu/bundle.tar.xz -C /tmp && /tmp/bundle/run.sh
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build-cuda}
out=.gpu/bundle
rm -rf "$out" .gpu/bundle.tar.xz && mkdir -p "$out/config"
binaries=(
  "$build/nibble"
  "$build/tests/kernels/kernels_gpu_test"
  "$build/tests/kernels_gptq/kernels_gptq_gpu_tests"
  "$build/tests/cuda_backend/cuda_backend_test"
  "$build/tests/cuda_backend/cuda_continuous_batching_test"
  "$build/tests/cuda_backend/cuda_device_sampling_test"
  "$build/tests/kernels/sampling_gpu_test"
  "$build/bench/cuda_decode/bench_cuda_decode"
  "$build/bench/gptq_gemm/bench_gptq_gemm"
  "$build/bench/read_order/bench_read_order"
  "$build/bench/sampling/bench_sampling"
  "$build/bench/serve_bench/serve_bench"
)
for b in "${binaries[@]}"; do
  if [ -x "$b" ]; then
    cp "$b" "$out/"
    strip "$out/$(basename "$b")"
    scripts/bundle-libs.sh "$b" "$out"
  else
    echo "gpu-bundle: missing $b" >&2
  fi
done
# An optional baseline decode benchmark (e.g. built from the previous main) for
# same-call comparisons: BASELINE_DECODE=path/to/bench_cuda_decode.
if [ -n "${BASELINE_DECODE:-}" ]; then
  cp "$BASELINE_DECODE" "$out/bench_cuda_decode_base" && strip "$out/bench_cuda_decode_base"
  scripts/bundle-libs.sh "$BASELINE_DECODE" "$out"
fi
# Likewise a baseline kernel benchmark: BASELINE_GEMM=path/to/bench_gptq_gemm
# (RUN_GEMM=1 then prints both side by side).
if [ -n "${BASELINE_GEMM:-}" ]; then
  cp "$BASELINE_GEMM" "$out/bench_gptq_gemm_base" && strip "$out/bench_gptq_gemm_base"
  scripts/bundle-libs.sh "$BASELINE_GEMM" "$out"
fi
# The binaries carry the build dir's rpath; let them find lib/ beside them too.
cp config/*.json "$out/config/"
cp scripts/gpu-run.sh "$out/run.sh"
cp scripts/compare-gemm.py "$out/"
tar cJf .gpu/bundle.tar.xz -C .gpu bundle
rm -rf "$out"
du -sh .gpu/bundle.tar.xz
