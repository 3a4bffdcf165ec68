#!/usr/bin/env bash
# Wire + transport throughput (release): RolloutGroup 8x1024 encode+decode rate, and 100 MB of weights in
# 4 MB chunks over tcp loopback with the real codec and CRCs. Prints numbers; asserts only correctness.
#   scripts/bench/wire_bench.sh [extra swift test args]
set -euo pipefail
cd "$(dirname "$0")/../.."
RLIF_BENCH=1 swift test -c release --scratch-path "${SCRATCH:-.build-bench-rel}" --filter WireBench "$@" 2>&1 \
  | grep -E "WireBench |passed|failed|error" 
