#!/bin/sh
# serve_bench against a real `nibble serve` on the tiny demo model: every
# request must succeed with exactly max_tokens outputs and sane timings.
# Usage: against_nibble.sh NIBBLE SERVE_BENCH WORKDIR. Exits 77 (skip) when
# this build's nibble has no serve command.
set -eu
nibble=$1
bench=$2
work=$3

if ! "$nibble" serve --help >/dev/null 2>&1; then
  echo "nibble has no serve command in this build; skipping"
  exit 77
fi
rm -rf "$work"
mkdir -p "$work"
"$nibble" make-demo-model "$work/model" --preset tiny >"$work/make.log" 2>&1

"$nibble" serve --model "$work/model" --port 0 --threads 1 >"$work/serve.log" 2>&1 &
server=$!
trap 'kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true' EXIT INT TERM

url=""
tries=0
while [ -z "$url" ] && [ "$tries" -lt 600 ]; do  # at most 60 s
  url=$(sed -n 's|.*ready: \(http://127\.0\.0\.1:[0-9]*\)/v1.*|\1|p' "$work/serve.log" | head -n 1)
  if ! kill -0 "$server" 2>/dev/null; then
    echo "nibble serve exited:"; cat "$work/serve.log"; exit 1
  fi
  [ -n "$url" ] || sleep 0.1
  tries=$((tries + 1))
done
if [ -z "$url" ]; then
  echo "nibble serve did not get ready:"; cat "$work/serve.log"; exit 1
fi

for endpoint in completions chat; do
  json="$work/$endpoint.json"
  "$bench" --url "$url" --endpoint "$endpoint" --concurrency 1,4 --requests-per-client 2 \
    --prompt-tokens 16,48 --max-tokens 8 --request-timeout 60 --json "$json"
  # 1 x 2 and 4 x 2 requests of 8 tokens each, no errors, no short outputs.
  for expected in '"requests_ok": 2,' '"requests_ok": 8,' '"output_tokens": 16,' '"output_tokens": 64,'; do
    grep -q "$expected" "$json" || { echo "$endpoint: $expected missing in $json"; cat "$json"; exit 1; }
  done
  if grep -q '"errors": [1-9]' "$json" || grep -q '"short_outputs": [1-9]' "$json"; then
    echo "$endpoint: errors or short outputs"; cat "$json"; exit 1
  fi
done
# Completions prompts are exact token ids of 16 or 48 tokens: every level's
# prompt total is a multiple of 16 (the usage the server reported).
grep -q '"prompt_mode": "token ids' "$work/completions.json"
for total in $(sed -n 's/^ *"prompt_tokens": \([0-9]*\),$/\1/p' "$work/completions.json"); do
  [ $((total % 16)) -eq 0 ] || { echo "prompt total $total is not a sum of 16s and 48s"; exit 1; }
done
echo "serve_bench against nibble serve: ok"
