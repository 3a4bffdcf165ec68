#!/usr/bin/env python3
"""PyTorch reference numbers for `rlif bench` (same shape, same workloads, CPU, 2 threads).

forward: no_grad forward of 4 x 256 tokens; fwd+bwd: forward + mean next-token CE + backward;
generate: HF generate, batch 16, prompt 64, 128 new tokens, greedy (prefill + decode end-to-end);
decode: generate time minus a prefill-only forward of the same batch.
Prints `BENCH impl=torch name=... tokens_per_s=... [gflops=...]` lines (FLOPs counted like rlif's).
"""
import argparse
import statistics
import time

import torch


def flops_forward(cfg, lengths, logit_rows=None):
    c, f = cfg.hidden_size, cfg.intermediate_size
    qd = cfg.num_attention_heads * cfg.head_dim
    kvd = cfg.num_key_value_heads * cfg.head_dim
    n = sum(lengths)
    per_token_layer = 2 * c * (2 * qd + 2 * kvd) + 2 * 3 * c * f
    attn = sum(2 * 2 * t * (t + 1) / 2 * qd for t in lengths)
    head = 2 * (logit_rows if logit_rows is not None else n) * c * cfg.vocab_size
    return cfg.num_hidden_layers * (n * per_token_layer + attn) + head


CPU_UTIL = {}


def timed(fn, iters, key=None):
    """Median wall time after a warm-up; records CPU seconds / wall seconds of the runs under `key`."""
    fn()
    ts = []
    c0, w0 = time.process_time(), time.perf_counter()
    for _ in range(iters):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    if key:
        CPU_UTIL[key] = (time.process_time() - c0) / (time.perf_counter() - w0)
    return statistics.median(ts)


def report(name, tokens, seconds, flops=None, extra=""):
    tps = tokens / seconds
    util = CPU_UTIL.get(name, float("nan"))
    line = f"BENCH impl=torch name={name} tokens_per_s={tps:.4g} seconds={seconds:.4g} cpu_util={util:.3g}"
    human = f"{name:9s} {tps:9.1f} tokens/s"
    if flops is not None:
        g = flops / seconds / 1e9
        line += f" gflops={g:.4g}"
        human += f"  {g:6.1f} GFLOP/s"
    print(human + f"  ({extra}, {seconds:.4g} s, cpu util {util:.2f})")
    print(line + " " + extra.replace(" ", "_"))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sequences", type=int, default=4)
    ap.add_argument("--seq-len", type=int, default=256)
    ap.add_argument("--decode-batch", type=int, default=16)
    ap.add_argument("--prefill", type=int, default=64)
    ap.add_argument("--decode-tokens", type=int, default=128)
    ap.add_argument("--iterations", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--only", nargs="+", default=["all"], help="all, forward, train, decode (one or more)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    from transformers import AutoModelForCausalLM, Qwen2Config
    cfg = Qwen2Config(hidden_size=512, intermediate_size=1536, num_hidden_layers=8, num_attention_heads=8,
                      num_key_value_heads=2, head_dim=64, vocab_size=16384, max_position_embeddings=2048,
                      tie_word_embeddings=True, rms_norm_eps=1e-6, use_sliding_window=False,
                      rope_parameters={"rope_type": "default", "rope_theta": 1000000.0})
    model = AutoModelForCausalLM.from_config(cfg, dtype=torch.float32, attn_implementation="sdpa")
    nparams = sum(p.numel() for p in model.parameters())
    print(f"torch bench: Qwen2 small ({nparams} parameters), threads {args.threads}, torch {torch.__version__}")
    B, T = args.sequences, args.seq_len
    ids = torch.randint(0, cfg.vocab_size, (B, T))
    fwd = flops_forward(cfg, [T] * B)
    if "all" in args.only or "forward" in args.only:
        model.eval()
        def f():
            with torch.no_grad():
                model(input_ids=ids)
        report("forward", B * T, timed(f, args.iterations, "forward"), fwd, f"batch={B}x{T}")
    if "all" in args.only or "train" in args.only:
        model.train()
        def fb():
            model.zero_grad(set_to_none=False)
            out = model(input_ids=ids, labels=ids)
            out.loss.backward()
        report("fwd+bwd", B * T, timed(fb, args.iterations, "fwd+bwd"), 3 * fwd, f"batch={B}x{T}")
        model.eval()
    if "all" in args.only or "decode" in args.only:
        b, p, nnew = args.decode_batch, args.prefill, args.decode_tokens
        prompts = torch.randint(0, cfg.vocab_size, (b, p))
        mask = torch.ones_like(prompts)
        def gen():
            with torch.no_grad():
                out = model.generate(input_ids=prompts, attention_mask=mask, max_new_tokens=nnew,
                                     min_new_tokens=nnew, do_sample=False, pad_token_id=0)
            assert out.shape[1] == p + nnew
        def pre():
            with torch.no_grad():
                model(input_ids=prompts, attention_mask=mask, use_cache=True, logits_to_keep=1)
        tg = timed(gen, max(1, args.iterations - 1), "generate")
        CPU_UTIL["decode"] = CPU_UTIL["generate"]
        tp = timed(pre, args.iterations)
        dec_flops = 0.0
        qd = cfg.num_attention_heads * cfg.head_dim
        for s in range(nnew):
            dec_flops += b * (flops_forward(cfg, [1]) - 2 * 2 * qd * cfg.num_hidden_layers)
            dec_flops += b * 2 * 2 * (p + s + 1) * qd * cfg.num_hidden_layers
        report("decode", b * nnew, tg - tp, dec_flops, f"batch={b} prefill={p} new={nnew} prefill_s={tp:.4g}")
        report("generate", b * nnew, tg, None, f"batch={b} prefill+decode end-to-end")


if __name__ == "__main__":
    main()
