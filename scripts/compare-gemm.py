#!/usr/bin/env python3
"""Side-by-side times of two bench_gptq_gemm --json files (a baseline binary and
this build, run in the same GPU call): one line per shape, weights, path and M.

Usage: compare-gemm.py BASE.json NEW.json [PATHS] [MAX_M]
PATHS is a comma-separated list of bench paths (default: fused,fused-acc,mma);
rows with M above MAX_M (default 64) are left out.
"""
import json
import signal
import sys


def main():
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # quiet under `| head`
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    base, new = (json.load(open(path)) for path in sys.argv[1:3])
    paths = sys.argv[3].split(",") if len(sys.argv) > 3 else ["fused", "fused-acc", "mma"]
    max_m = int(sys.argv[4]) if len(sys.argv) > 4 else 64
    key = lambda r: (r["shape"], r["weights"], r["path"], r["M"])
    before = {key(r): r for r in base["rows"]}
    print(f"copy GB/s: base {base['copy_gbs']:.0f}, new {new['copy_gbs']:.0f}")
    print(f"{'shape':<30} {'weights':<14} {'path':<11} {'M':>5} {'base us':>9} {'new us':>9} {'speedup':>8} {'frac copy':>9}")
    for r in new["rows"]:
        if r["path"] not in paths or r["M"] > max_m:
            continue
        old = before.get(key(r))
        base_us = f"{old['us']:9.1f}" if old else f"{'-':>9}"
        speedup = f"{old['us'] / r['us']:8.2f}" if old else f"{'-':>8}"
        print(f"{r['shape'][:30]:<30} {r['weights']:<14} {r['path']:<11} {r['M']:>5} {base_us} {r['us']:9.1f} {speedup} {r['frac_copy']:9.3f}")


if __name__ == "__main__":
    main()
