#!/usr/bin/env python3
"""Driver of scripts/bench/step-bench: the whole INTUITOR step on the `small` shape, side by side.

Shape and settings (issue 13): `rlif bench --shape small` as a random-weight HF directory (make-random-qwen.py
small), B 2 prompts x G 8, prompts of exactly P = 64 tokens (GSM8K questions cut to 64 tokens of the model's
tokenizer, `template: raw`, no system prompt), T = 128 new tokens, temperature 0.9, top-k off, top-p 1, beta
0.005, clip 0.2, AdamW lr 3e-6 constant, weight decay 0.01, grad clip 1.0, 2 threads.

Implementations, run one after another in each round, ROUNDS rounds (alternating, default 3):
  rlif-single  `rlif train --single-process`
  rlif-local   `rlif train` (local mode: a learner process + 1 actor process; sampling of step k+1 overlaps
               training of step k, max_lag 1)
  torch        scripts/bench/step_ref.py --impl torch (a faithful plain-PyTorch GRPO step)
  trl          scripts/bench/step_ref.py --impl trl (trl.GRPOTrainer + a self-certainty reward function)
Each does WARMUP + STEPS optimizer steps in one process; a round's value is the median of its STEPS timed steps
(rlif: `total_seconds` of metrics.jsonl = sample_seconds + step_seconds; local mode: the learner's wait for
groups + training, i.e. the step period). Each round also runs `rlif bench --only roof` first: the same-run
OpenBLAS sgemm rate.

The compute roof of one step (FLOPs at the round's sgemm rate; the minimum work, what rlif does):
  per token per layer (linear layers)  f_lin  = 2 c (2 qd + 2 kvd) + 2 * 3 c f          c hidden, f ffn
  attention of a row at position t     f_att  = 2 * 2 t qd  per layer                      (QK^T and PV)
  LM head per logit row                f_head = 2 c V
  sampling   = prefill of the B prompts (B P f_lin L + attention + B f_head: last rows only)
             + sum_{s<T} B G (L f_lin + L 2 2 (P + s + 1) qd + f_head)                       (KV-cache decode)
  reference  = forward of the B G sequences of P + T tokens with T logit rows each: F
  policy     = forward + backward (input and weight gradients) = 3 F
  roof seconds = (sampling + reference + policy) / sgemm rate
  F = L (N f_lin + sum over sequences of 2 * 2 * t(t+1)/2 * qd) + rows f_head,  N = B G (P + T), rows = B G T.
Self-certainty and behaviour log-probs come from the sampling logits (rlif computes them there); the extra
no-grad policy forward the PyTorch and TRL steps do for them is not in the roof. Exits 0 (benchmarks are not
tests); an implementation that fails prints why and is left out of the ratios.
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# GSM8K and the Qwen tokenizer: ../shared/data next to the repository or $RLIF_SHARED_DATA (as the tests).
SHARED = os.environ.get("RLIF_SHARED_DATA", os.path.join(ROOT, "..", "shared", "data"))

# `rlif bench --shape small`
SMALL = dict(c=512, f=1536, layers=8, heads=8, kv_heads=2, head_dim=64, vocab=16384)


def step_flops(B, G, P, T, m=SMALL):
    c, f, L, V = m["c"], m["f"], m["layers"], m["vocab"]
    qd, kvd = m["heads"] * m["head_dim"], m["kv_heads"] * m["head_dim"]
    f_lin = 2 * c * (2 * qd + 2 * kvd) + 2 * 3 * c * f
    f_head = 2 * c * V

    def att(t):  # causal attention of a whole sequence of t tokens, one layer
        return 2 * 2 * t * (t + 1) / 2 * qd

    prefill = L * (B * P * f_lin + B * att(P)) + B * f_head
    decode = sum(B * G * (L * f_lin + L * 2 * 2 * (P + s + 1) * qd + f_head) for s in range(T))
    n = B * G * (P + T)
    fwd = L * (n * f_lin + B * G * att(P + T)) + B * G * T * f_head
    return {"sampling": prefill + decode, "reference": fwd, "policy": 3 * fwd}


def make_prompts(tokenizer_json, out, n=16, P=64):
    """GSM8K questions cut to exactly P tokens (re-encoding the cut text must give P tokens again)."""
    from tokenizers import Tokenizer
    tok = Tokenizer.from_file(tokenizer_json)
    rows = []
    for line in open(os.path.join(SHARED, "gsm8k", "train.jsonl")):
        ids = tok.encode(json.loads(line)["question"]).ids
        if len(ids) >= P:
            text = tok.decode(ids[:P])
            if len(tok.encode(text).ids) == P:
                rows.append(text)
        if len(rows) == n:
            break
    with open(out, "w") as fh:
        for t in rows:
            fh.write(json.dumps({"prompt": t}) + "\n")


RLIF_YAML = """model: {model}
prompts: {prompts}
template: raw
system_prompt: none
steps: {steps}
prompts_per_step: {B}
group_size: {G}
max_new_tokens: {T}
temperature: 0.9
top_k: 0
top_p: 1.0
learning_rate: 3.0e-6
lr_schedule: constant
warmup_ratio: 0
weight_decay: 0.01
max_grad_norm: 1.0
kl_beta: {beta}
clip_epsilon_low: 0.2
clip_epsilon_high: 0.2
reward: self_certainty
checkpoint_every: 0
eval_every: 0
log_samples_every: 0
tensorboard: false
actors: 1
"""


def run(cmd, timeout, env=None):
    t0 = time.time()
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return None, f"timed out after {timeout} s"
    if p.returncode != 0:
        return None, f"exit {p.returncode}: " + (p.stderr.strip().splitlines() or ["?"])[-1][:300]
    return p.stdout, f"{time.time() - t0:.0f} s"


def rlif_steps(args, work, local):
    out = os.path.join(work, "run-local" if local else "run-single")
    cmd = [args.rlif, "train", "--config", os.path.join(work, "step.yaml"), "--output-dir", out, "--overwrite"]
    cmd += ["--actors", "1"] if local else ["--single-process"]
    env = dict(os.environ, OPENBLAS_NUM_THREADS=str(args.threads))
    _, why = run(cmd, args.timeout, env)
    rows = []
    if os.path.exists(os.path.join(out, "metrics.jsonl")):
        rows = [json.loads(line) for line in open(os.path.join(out, "metrics.jsonl")) if line.strip()]
    rows = [r for r in rows if r.get("kind") == "train" and r["step"] > args.warmup]
    if len(rows) < args.steps:
        return None, why
    return [{"seconds": r["total_seconds"], "sample_s": r["sample_seconds"], "train_s": r["step_seconds"],
             "tokens": r["response_length"] * args.B * args.G} for r in rows], why


def ref_steps(args, work, impl):
    py = args.python_trl if impl == "trl" else args.python
    cmd = [py, os.path.join(ROOT, "scripts", "bench", "step_ref.py"), "--impl", impl, "--model", args.model,
           "--prompts", os.path.join(work, "prompts.jsonl"), "--warmup", str(args.warmup), "--steps", str(args.steps),
           "--threads", str(args.threads), "--beta", str(args.beta), "--prompts-per-step", str(args.B),
           "--group", str(args.G), "--new-tokens", str(args.T), "--scratch", os.path.join(work, "trl")]
    stdout, why = run(cmd, args.timeout)
    if stdout is None:
        return None, why
    rows = []
    for line in stdout.splitlines():
        if line.startswith("STEP "):
            kv = dict(x.split("=", 1) for x in line.split()[1:])
            rows.append({k: float(v) for k, v in kv.items() if k in ("seconds", "sample_s", "train_s", "tokens")})
    return (rows, why) if len(rows) >= args.steps else (None, why + f"; {len(rows)} STEP lines")


def sgemm_roof(args):
    stdout, _ = run([args.rlif, "bench", "--only", "roof", "--threads", str(args.threads)], 300)
    for line in (stdout or "").splitlines():
        if line.startswith("BENCH") and "name=sgemm_roof" in line:
            return float(dict(x.split("=", 1) for x in line.split()[1:])["gflops"])
    return None


def span(xs, f="{:.2f}"):
    return f"median {f.format(statistics.median(xs))} (range {f.format(min(xs))}–{f.format(max(xs))})"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rlif", required=True)
    ap.add_argument("--python", default=sys.executable, help="python with torch + transformers")
    ap.add_argument("--python-trl", default=sys.executable, help="python with trl")
    ap.add_argument("--work", default="/tmp/rlif-step-bench")
    ap.add_argument("--model", help="HF directory of the small shape (default: made under --work)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--impls", default="rlif-single,rlif-local,torch,trl")
    ap.add_argument("--timeout", type=int, default=900, help="seconds per implementation per round")
    ap.add_argument("--beta", type=float, default=0.005)
    args = ap.parse_args()
    args.B, args.G, args.P, args.T = 2, 8, 64, 128
    os.makedirs(args.work, exist_ok=True)
    if not os.path.exists(os.path.join(SHARED, "gsm8k", "train.jsonl")):
        print(f"step-bench: GSM8K not found in {SHARED} (set RLIF_SHARED_DATA); nothing run")
        return
    if not args.model:
        args.model = os.path.join(args.work, "small")
        if not os.path.exists(os.path.join(args.model, "tokenizer.json")):
            subprocess.run([args.python, os.path.join(ROOT, "scripts", "bench", "make-random-qwen.py"), "small",
                            args.model, os.path.join(SHARED, "qwen-tokenizer", "tokenizer.json")],
                           check=True, capture_output=True)
    make_prompts(os.path.join(args.model, "tokenizer.json"), os.path.join(args.work, "prompts.jsonl"), P=args.P)
    with open(os.path.join(args.work, "step.yaml"), "w") as fh:
        fh.write(RLIF_YAML.format(model=args.model, prompts=os.path.join(args.work, "prompts.jsonl"),
                                  steps=args.warmup + args.steps, B=args.B, G=args.G, T=args.T, beta=args.beta))
    impls = args.impls.split(",")
    flops = step_flops(args.B, args.G, args.P, args.T)
    total = sum(flops.values())
    print(f"step-bench: small shape, B {args.B} x G {args.G}, P {args.P}, T {args.T}, beta {args.beta}, "
          f"{args.threads} threads; {args.rounds} alternating rounds of {', '.join(impls)}; each {args.warmup} "
          f"warm-up + {args.steps} timed steps; started {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}, "
          f"load {open('/proc/loadavg').read().split()[:3]}")
    print("step FLOPs: " + ", ".join(f"{k} {v / 1e9:.1f} G" for k, v in flops.items()) + f", total {total / 1e9:.1f} G")
    results = {i: [] for i in impls}   # per round: median step seconds (None = failed)
    roofs = []
    for r in range(1, args.rounds + 1):
        roof = sgemm_roof(args)
        roofs.append(roof)
        print(f"-- round {r}: sgemm roof {roof if roof is None else f'{roof:.1f}'} GFLOP/s", flush=True)
        for impl in impls:
            if impl.startswith("rlif"):
                steps, why = rlif_steps(args, args.work, impl == "rlif-local")
            else:
                steps, why = ref_steps(args, args.work, impl)
            if steps is None:
                results[impl].append(None)
                print(f"   {impl:11s} FAILED ({why})", flush=True)
                continue
            sec = statistics.median(s["seconds"] for s in steps)
            results[impl].append(sec)
            parts = " ".join(f"{s['seconds']:.2f}" + (f" ({s['sample_s']:.2f} + {s['train_s']:.2f})"
                             if s["sample_s"] == s["sample_s"] else "") for s in steps)
            print(f"   {impl:11s} median {sec:6.2f} s/step  steps: {parts}  tokens/step "
                  f"{statistics.median(s['tokens'] for s in steps):.0f}  (process {why})", flush=True)
    print(f"== summary over {args.rounds} alternating rounds (ended {time.strftime('%H:%M:%S UTC', time.gmtime())}, "
          f"load {open('/proc/loadavg').read().split()[:3]}) ==")
    good_roofs = [x for x in roofs if x]
    if good_roofs:
        print(f"sgemm roof {span(good_roofs, '{:.1f}')} GFLOP/s")
    for impl in impls:
        xs = [x for x in results[impl] if x is not None]
        if xs:
            print(f"{impl:11s} {span(xs)} s/step")
        else:
            print(f"{impl:11s} no successful round")
    for mine in [i for i in impls if i.startswith("rlif")]:
        for other in [i for i in impls if not i.startswith("rlif")]:
            ratios = [o / m for m, o in zip(results[mine], results[other]) if m and o]
            if ratios:
                print(f"{other} / {mine} (speed-up of {mine}): {span(ratios)}x")
        pct = [100 * total / (roof * 1e9) / m for m, roof in zip(results[mine], roofs) if m and roof]
        if pct:
            secs = [total / (roof * 1e9) for roof in good_roofs]
            print(f"{mine} step time as % of its compute roof ({total / 1e9:.0f} GFLOP at the round's sgemm rate = "
                  f"{span(secs)} s): {span(pct, '{:.0f}')} %")


if __name__ == "__main__":
    main()
