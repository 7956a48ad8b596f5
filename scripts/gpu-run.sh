#!/usr/bin/env bash
# Runs on the GPU machine from the bundle made by scripts/gpu-bundle.sh: the GPU
# tests, nibble serve on the GPU answering a streamed request over HTTP, the
# serving benchmark on it, and the end-to-end decode/prefill benchmark on dummy
# Llama-3-8B and 70B shapes. Logs go to $OUT. Optional: RUN_GEMM=1 (the GPTQ
# kernel benchmark, side by side with bench_gptq_gemm_base when the bundle has
# one; GEMM_FLAGS=--big adds the 70B shapes to this build's run, GEMM_PATHS and
# GEMM_MAX_M pick the rows shown), RUN_READ_ORDER=1 (weight bytes read in the
# GEMV's order vs contiguous runs), RUN_TIMELINE=1 (the kernel timeline of batch-1
# decode steps, CUPTI; with RUN_70B=1 also the 70B's), RUN_70B=1, RUN_NO_PDL=1,
# RUN_SAMPLING=1, CONTEXTS="128 1024". Every log also ends up in $OUT/00-logs.tgz:
# the lent machine returns only the first few files of $OUT (by name), so the
# archive, named to sort first, carries them all.
cd "$(dirname "$0")"
export LD_LIBRARY_PATH=$PWD/lib:${LD_LIBRARY_PATH:-}
export NIBBLE_SOURCE_DIR=$PWD  # tests read config/*.json from here
for d in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib; do
  [ -e "$d/libcublas.so.13" ] && export LD_LIBRARY_PATH=$d:$LD_LIBRARY_PATH
done
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
archive="$OUT/00-logs.tgz"
trap 'tar czf "/tmp/00-logs.$$.tgz" --exclude=00-logs.tgz -C "$OUT" . && mv "/tmp/00-logs.$$.tgz" "$archive"' EXIT
nvidia-smi --query-gpu=name,memory.total,clocks.sm,clocks.mem --format=csv,noheader
step() { echo "=== $*"; }

step "GPU tests"
for t in kernels_gpu_test sampling_gpu_test kernels_gptq_gpu_tests cuda_backend_test cuda_continuous_batching_test \
  cuda_device_sampling_test; do
  ./$t --gtest_brief=1 > "$OUT/$t.log" 2>&1
  echo "$t rc=$? $(grep -E '^\[  (PASSED|FAILED|SKIPPED)' "$OUT/$t.log" | tr '\n' ' ')" | tee -a "$OUT/gpu_tests_summary.txt"
done

step "nibble serve on the GPU"
./nibble make-demo-model /tmp/demo-small --preset small > /dev/null 2>&1
./nibble serve --model /tmp/demo-small --served-model-name demo --port 8123 --device cuda --max-num-seqs 128 \
  --log-level info > "$OUT/serve.log" 2>&1 &
pid=$!
for _ in $(seq 1 120); do curl -fs http://127.0.0.1:8123/health > /dev/null && break; sleep 0.5; done
grep -E "device|quant|ready" "$OUT/serve.log" | head -5
curl -sS -N http://127.0.0.1:8123/v1/chat/completions -H 'Content-Type: application/json' \
  -d '{"model":"demo","messages":[{"role":"user","content":"Hello"}],"max_tokens":12,"stream":true,"stream_options":{"include_usage":true}}' \
  | tee "$OUT/stream.txt" | tail -4
# A seeded, sampled request twice (device sampling). The texts may differ: the
# split-K reduction's fp32 order varies between runs, and the random demo
# model's nearly flat distributions turn last-bit logit changes into other draws.
for i in 1 2; do
  curl -sS http://127.0.0.1:8123/v1/completions -H 'Content-Type: application/json' \
    -d '{"model":"demo","prompt":"Once upon a time","max_tokens":16,"temperature":0.8,"top_p":0.95,"seed":7}' \
    > "$OUT/sampled_$i.json"
done
python3 -c "import json,sys; a=[json.load(open(sys.argv[i]))['choices'][0]['text'] for i in (1,2)]; print('seeded sampled request:', repr(a[0]), '| again:', repr(a[1]))" \
  "$OUT/sampled_1.json" "$OUT/sampled_2.json"
./serve_bench --url http://127.0.0.1:8123 --concurrency 1,8,32,128 --requests-per-client 2 --prompt-tokens 128,512 --max-tokens 128 --json "$OUT/serve_bench.json" \
  > "$OUT/serve_bench.log" 2>&1
tail -8 "$OUT/serve_bench.log"
kill -TERM $pid; wait $pid; echo "serve exit code $?"

step "nibble serve --load-format dummy (Llama-3-8B shapes) on the GPU"
./nibble serve --load-format dummy --model config/llama-3-8b.json --served-model-name dummy8b --port 8124 \
  --device cuda --max-num-seqs 16 > "$OUT/serve_dummy.log" 2>&1 &
pid=$!
for _ in $(seq 1 240); do curl -fs http://127.0.0.1:8124/health > /dev/null && break; sleep 0.5; done
grep -iE "dummy|ready" "$OUT/serve_dummy.log" | head -3
curl -sS http://127.0.0.1:8124/v1/completions -H 'Content-Type: application/json' \
  -d '{"model":"dummy8b","prompt":"Hello","max_tokens":8}' | tee "$OUT/dummy_completion.json" | head -c 400; echo
kill -TERM $pid; wait $pid; echo "serve exit code $?"

if [ -n "${RUN_GEMM:-}" ]; then
  step "GPTQ kernel benchmark (--quick)"
  ./bench_gptq_gemm --quick ${GEMM_FLAGS:-} --json "$OUT/gemm.json" > "$OUT/gemm.log" 2>&1
  if [ -x ./bench_gptq_gemm_base ]; then
    ./bench_gptq_gemm_base --quick --json "$OUT/gemm_base.json" > "$OUT/gemm_base.log" 2>&1
    python3 ./compare-gemm.py "$OUT/gemm_base.json" "$OUT/gemm.json" "${GEMM_PATHS:-fused,fused-acc,mma}" "${GEMM_MAX_M:-64}" \
      | grep -E "copy|shape|4bit-g128 " | head -${GEMM_LINES:-90}
  else
    grep -E "^device|\| (fused|mma) " "$OUT/gemm.log" | grep -E "^device| 1 \|| 8 \|" | head -60
  fi
fi

if [ -n "${RUN_READ_ORDER:-}" ]; then
  step "weight read order (no arithmetic)"
  ./bench_read_order 2>&1 | tee "$OUT/read_order.log"
fi

if [ -n "${RUN_TIMELINE:-}" ]; then
  step "kernel timeline of batch-1 decode steps (device timestamps)"
  for m in 8b ${RUN_70B:+70b}; do
    ./bench_cuda_decode config/llama-3-$m.json --context 128 --timeline 1 > "$OUT/timeline_$m.log" 2>&1
    echo "--- Llama-3-${m^^}"
    sed -n '/^per step/,$p' "$OUT/timeline_$m.log"
  done
fi

step "decode/prefill benchmark, dummy weights (batch 1 after a 128-token prompt; CONTEXTS adds others)"
for ctx in ${CONTEXTS:-128}; do
  suffix=$([ "$ctx" = 128 ] && echo "" || echo "_ctx$ctx")
  if [ -x ./bench_cuda_decode_base ]; then
    ./bench_cuda_decode_base config/llama-3-8b.json --context "$ctx" --json "$OUT/bench_8b_base$suffix.json" \
      > "$OUT/bench_8b_base$suffix.log" 2>&1
    echo "--- baseline binary (${BASELINE_NAME:-previous main}), context $ctx"
    sed -n '/^case/,/^GPU memory/p' "$OUT/bench_8b_base$suffix.log"
  fi
  ./bench_cuda_decode config/llama-3-8b.json --context "$ctx" --json "$OUT/bench_8b$suffix.json" > "$OUT/bench_8b$suffix.log" 2>&1
  echo "--- this build, context $ctx"
  sed -n '/^case/,/^GPU memory/p' "$OUT/bench_8b$suffix.log"
done
if [ -n "${RUN_NO_PDL:-}" ]; then
  ./bench_cuda_decode config/llama-3-8b.json --context 128 --no-programmatic-launch \
    --json "$OUT/bench_8b_no_pdl.json" > "$OUT/bench_8b_no_pdl.log" 2>&1
  echo "--- this build without programmatic dependent launch, context 128"
  grep -E "^decode batch|^prefill" "$OUT/bench_8b_no_pdl.log"
fi
if [ -n "${RUN_70B:-}" ]; then
  if [ -x ./bench_cuda_decode_base ]; then
    ./bench_cuda_decode_base config/llama-3-70b.json --context 128 --decode-steps 32 \
      --json "$OUT/bench_70b_base.json" > "$OUT/bench_70b_base.log" 2>&1
    echo "--- baseline binary (${BASELINE_NAME:-previous main}), Llama-3-70B"
    grep -E "^decode batch|^prefill" "$OUT/bench_70b_base.log"
  fi
  ./bench_cuda_decode config/llama-3-70b.json --context 128 --decode-steps 32 --json "$OUT/bench_70b.json" \
    > "$OUT/bench_70b.log" 2>&1
  echo "--- this build, Llama-3-70B"
  sed -n '/^case/,/^GPU memory/p' "$OUT/bench_70b.log"
fi
if [ -n "${RUN_SAMPLING:-}" ]; then
  ./bench_sampling > "$OUT/bench_sampling.log" 2>&1; tail -6 "$OUT/bench_sampling.log"
fi

step "GPU tests (again, so a long log's tail shows them)"
cat "$OUT/gpu_tests_summary.txt"
