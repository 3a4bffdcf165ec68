#!/usr/bin/env bash
# Runs `rlif bench` (release) and the PyTorch reference on the same shape, then prints rlif/torch ratios.
# Usage: scripts/bench/run-model-bench.sh [extra args for both, e.g. --iterations 5]
set -euo pipefail
cd "$(dirname "$0")/../.."
SCRATCH=${RLIF_SCRATCH:-.build-model-rel}
swift build -c release --scratch-path "$SCRATCH" --product rlif >/dev/null
BIN="$SCRATCH/release/rlif"
out_rlif=$(mktemp); out_torch=$(mktemp)
trap 'rm -f "$out_rlif" "$out_torch"' EXIT
echo "== rlif =="; "$BIN" bench "$@" | tee "$out_rlif" | grep -v '^BENCH'
echo "== torch =="; python3 scripts/bench/model_bench.py "$@" 2>/dev/null | tee "$out_torch" | grep -v '^BENCH'
echo "== rlif / torch =="
python3 - "$out_rlif" "$out_torch" <<'PY'
import sys
def parse(path):
    r = {}
    for line in open(path):
        if line.startswith("BENCH "):
            kv = dict(x.split("=", 1) for x in line.split()[1:] if "=" in x)
            r[kv["name"]] = kv
    return r
a, b = parse(sys.argv[1]), parse(sys.argv[2])
for name in a:
    if name in b:
        ra = float(a[name]["tokens_per_s"]); rb = float(b[name]["tokens_per_s"])
        g = f"  rlif {float(a[name]['gflops']):.1f} vs torch {float(b[name]['gflops']):.1f} GFLOP/s" if "gflops" in a[name] and "gflops" in b[name] else ""
        print(f"{name:9s} {ra:9.1f} vs {rb:9.1f} tokens/s  ratio {ra / rb:5.2f}x{g}")
PY
