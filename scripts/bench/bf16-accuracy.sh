#!/bin/bash
# Per-token log-prob effect of BF16 base weights on a real model: `rlif score` (teacher forcing) of the first N GSM8K
# test questions (chatml, math system prompt) with their reference solutions as completions, once with F32 and once
# with BF16 weights (separate processes, so only one copy is resident), then max / mean |Δ logp| and the largest
# |Δ| of the mean self-certainty.
#   scripts/bench/bf16-accuracy.sh /work/models/qwen2.5-coder-0.5b-instruct.gguf 5
set -euo pipefail
model=$1; n=${2:-5}
rlif=${RLIF_BIN:-.build/release/rlif}
data=${RLIF_SHARED_DATA:-../shared/data}/gsm8k/test.jsonl
out=$(mktemp -d)
for bw in f32 bf16; do
  head -n "$n" "$data" | while IFS= read -r line; do
    q=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["question"])' "$line")
    a=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["answer"])' "$line")
    "$rlif" score --model "$model" --base-weights "$bw" --template chatml --system-prompt math --prompt "$q" --completion "$a"
  done > "$out/$bw.jsonl"
done
python3 - "$out/f32.jsonl" "$out/bf16.jsonl" <<'PY'
import json, sys
f = [json.loads(l) for l in open(sys.argv[1])]
b = [json.loads(l) for l in open(sys.argv[2])]
d = [abs(x - y) for p, q in zip(f, b) for x, y in zip(p["logprobs"], q["logprobs"])]
sc = [abs(p["mean_self_certainty"] - q["mean_self_certainty"]) for p, q in zip(f, b)]
print(f"{len(f)} prompts, {len(d)} tokens: max |dlogp| {max(d):.4g}, mean |dlogp| {sum(d)/len(d):.3g}, "
      f"max |d mean self-certainty| {max(sc):.3g}; mean logp f32 {sum(x for p in f for x in p['logprobs'])/len(d):.4f}, "
      f"bf16 {sum(x for p in b for x in p['logprobs'])/len(d):.4f}")
PY
