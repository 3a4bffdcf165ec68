#!/usr/bin/env bash
# Tokenizer speed: encode every GSM8K-test question and answer with the Qwen tokenizer.json, Swift (release
# `rlif tokenize --benchmark`) vs Python `tokenizers` (encode one by one, and encode_batch), best of N; plus
# the load time of the 151k-token file. Prints the ratios.
#   scripts/bench/tokenizer_bench.sh [--shared ../shared/data] [--reps 5] [--no-build]
set -euo pipefail
cd "$(dirname "$0")/../.."
SHARED="${RLIF_SHARED_DATA:-../shared/data}"
REPS=5
BUILD=1
while [[ $# -gt 0 ]]; do
  case "$1" in
    --shared) SHARED="$2"; shift 2 ;;
    --reps) REPS="$2"; shift 2 ;;
    --no-build) BUILD=0; shift ;;
    *) echo "usage: $0 [--shared DIR] [--reps N] [--no-build]" >&2; exit 2 ;;
  esac
done
TOK="$SHARED/qwen-tokenizer/tokenizer.json"
DATA="$SHARED/gsm8k/test.jsonl"
for f in "$TOK" "$DATA"; do [[ -f "$f" ]] || { echo "missing $f" >&2; exit 1; }; done

SCRATCH="${SCRATCH:-.build-bench}"
if [[ $BUILD == 1 ]]; then swift build -c release --scratch-path "$SCRATCH" --product rlif >&2; fi
RLIF="$SCRATCH/release/rlif"

swift_line=$("$RLIF" tokenize --tokenizer "$TOK" --benchmark "$DATA" --repetitions "$REPS")
echo "$swift_line"

py_line=$(python3 - "$TOK" "$DATA" "$REPS" <<'PY'
import json, sys, time, os
import tokenizers
from tokenizers import Tokenizer
tok_path, data_path, reps = sys.argv[1], sys.argv[2], int(sys.argv[3])
t0 = time.perf_counter(); tok = Tokenizer.from_file(tok_path); load = time.perf_counter() - t0
texts = []
for line in open(data_path, encoding="utf-8"):
    row = json.loads(line); texts += [row["question"], row["answer"]]
mb = sum(len(t.encode("utf-8")) for t in texts) / 1e6
def best(f):
    b = float("inf"); bc = float("inf"); n = 0
    for _ in range(reps):
        s = time.perf_counter(); c = time.process_time(); n = f()
        bc = min(bc, time.process_time() - c); b = min(b, time.perf_counter() - s)
    return b, bc, n
single, single_cpu, n1 = best(lambda: sum(len(tok.encode(t, add_special_tokens=False).ids) for t in texts))
batch, _, n2 = best(lambda: sum(len(e.ids) for e in tok.encode_batch(texts, add_special_tokens=False)))
assert n1 == n2
print(f"python tokenizers={tokenizers.__version__} load_s={load:.3f} texts={len(texts)} tokens={n1} MB={mb:.3f} "
      f"single_s={single:.4f} ({mb/single:.1f} MB/s) single_cpu_s={single_cpu:.4f} "
      f"batch_s={batch:.4f} ({mb/batch:.1f} MB/s, {os.cpu_count()} threads)")
PY
)
echo "$py_line"

field() { sed -n "s/.*$2=\([0-9.]*\).*/\1/p" <<<"$1"; }
for k in load_s single_s single_cpu_s batch_s; do
  s=$(field "$swift_line" " $k"); p=$(field "$py_line" " $k")
  python3 -c "import sys; s,p=float('$s'),float('$p'); print(f'$k: swift {s:.4f} s, python {p:.4f} s, python/swift = {p/s:.2f}x')"
done
st=$(field "$swift_line" tokens); pt=$(field "$py_line" tokens)
[[ "$st" == "$pt" ]] && echo "token counts agree ($st)" || { echo "TOKEN COUNTS DIFFER: swift $st python $pt" >&2; exit 1; }
