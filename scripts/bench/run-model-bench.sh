#!/usr/bin/env bash
# Runs `rlif bench` (release) and the PyTorch reference (scripts/bench/model_bench.py) on the same shape,
# ALTERNATING: rlif, torch, rlif, torch, ... ROUNDS times (default 3) in this one run, so that minute-to-minute
# drift of this shared VM hits both sides alike. Then prints, per workload (forward 4×256, fwd+bwd 4×256,
# decode 16 sequences, generate), the median rlif/torch throughput ratio and its range over the rounds (ratio of
# round i = rlif round i / torch round i), and each rlif figure as % of the same run's OpenBLAS sgemm rate (the
# `pct_of_sgemm` rlif bench prints in its BENCH lines: median and range over the rounds; generate has no FLOP
# count, so no %). Benchmarks are not tests: it prints and exits 0.
#
# Usage: scripts/bench/run-model-bench.sh [extra args for both, e.g. --iterations 5]
# Env: ROUNDS (default 3), ONLY (default "forward train decode": --only for both; rlif's gemm part is skipped),
#      RLIF_BIN (a built rlif; default: build release into $RLIF_SCRATCH or .build-model-rel), PYTHON (python3).
set -uo pipefail
cd "$(dirname "$0")/../.."
ROUNDS=${ROUNDS:-3}
ONLY=${ONLY:-forward train decode}
PY=${PYTHON:-python3}
if [[ -n "${RLIF_BIN:-}" ]]; then
  BIN=$RLIF_BIN
else
  SCRATCH=${RLIF_SCRATCH:-.build-model-rel}
  swift build -c release --scratch-path "$SCRATCH" --product rlif >/dev/null || { echo "build failed"; exit 0; }
  BIN="$SCRATCH/release/rlif"
fi
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
echo "run-model-bench: $ROUNDS alternating rounds, started $(date -u '+%Y-%m-%d %H:%M:%S UTC'), load $(cut -d' ' -f1-3 /proc/loadavg)"
for r in $(seq 1 "$ROUNDS"); do
  # shellcheck disable=SC2086
  echo "== round $r: rlif =="; "$BIN" bench --only $ONLY "$@" | tee "$dir/rlif.$r" | grep -v '^BENCH'
  # shellcheck disable=SC2086
  echo "== round $r: torch =="; "$PY" scripts/bench/model_bench.py --only $ONLY "$@" 2>/dev/null | tee "$dir/torch.$r" | grep -v '^BENCH'
done
echo "== rlif / torch over $ROUNDS alternating rounds (ended $(date -u '+%H:%M:%S UTC'), load $(cut -d' ' -f1-3 /proc/loadavg)) =="
PYTHONPATH=scripts/bench "$PY" - "$dir" "$ROUNDS" <<'PY'
import sys
from benchlines import parse, span
d, rounds = sys.argv[1], int(sys.argv[2])
rl = [parse(f"{d}/rlif.{i}") for i in range(1, rounds + 1)]
tr = [parse(f"{d}/torch.{i}") for i in range(1, rounds + 1)]
roofs = [float(x["sgemm_roof"]["gflops"]) for x in rl if "sgemm_roof" in x]
if roofs:
    print(f"sgemm roof   {span(roofs, '{:.1f}')} GFLOP/s")
for name in ["forward", "fwd+bwd", "decode", "generate"]:
    pairs = [(a[name], b[name]) for a, b in zip(rl, tr) if name in a and name in b]
    if not pairs:
        continue
    ratios = [float(a["tokens_per_s"]) / float(b["tokens_per_s"]) for a, b in pairs]
    line = (f"{name:9s} rlif {span([float(a['tokens_per_s']) for a, _ in pairs], '{:.0f}')} tokens/s, "
            f"torch {span([float(b['tokens_per_s']) for _, b in pairs], '{:.0f}')}; ratio {span(ratios)}x")
    pct = [float(a["pct_of_sgemm"]) for a, _ in pairs if "pct_of_sgemm" in a]
    if pct:
        line += f"; rlif {span([float(a['gflops']) for a, _ in pairs], '{:.1f}')} GFLOP/s = {span(pct, '{:.0f}')} % of sgemm"
    utils = [f"{float(a['cpu_util']):.2f}/{float(b['cpu_util']):.2f}" for a, b in pairs]
    print(line + f"  [cpu util rlif/torch per round: {' '.join(utils)}]")
PY
exit 0
