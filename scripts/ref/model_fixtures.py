#!/usr/bin/env python3
"""Reference fixtures for the SafeTensors and Model modules (dev tool, not run by CI).

Writes, deterministically (seeded), under Tests/Fixtures/model/:
  safetensors-python.safetensors  tensors of every dtype written by safetensors.torch (+ conversion sources)
  safetensors-layout.safetensors  a small file whose exact bytes the Swift writer must reproduce
  tiny-qwen2/, tiny-llama/        random tiny HF checkpoints (config.json + model.safetensors, F32)
  <name>-expected.safetensors     for a fixed batch of 3 sequences (HF: right-padded + attention_mask; rlif
                                  packs them): tokens/seq_starts, logits of the real rows (packed), the mean
                                  next-token cross-entropy over real tokens, and the gradient of every parameter
  stories260K-greedy.json         200 greedy tokens of ../shared/data/stories260K from BOS [1] (if present)

Usage: python3 scripts/ref/model_fixtures.py [--only safetensors|models|stories]
       python3 scripts/ref/model_fixtures.py --check-saved DIR --like tiny-qwen2
           loads a directory written by rlif's Transformer.save with transformers.AutoModelForCausalLM and
           checks its logits on the fixture batch against <like>-expected.safetensors.
"""
import argparse
import json
import os
import struct
import sys

import torch
from safetensors.torch import save_file

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "Tests", "Fixtures", "model")


def safetensors_fixture():
    g = torch.Generator().manual_seed(1234)
    src = torch.randn(64, generator=g, dtype=torch.float32) * 3
    # Exact ties for round-to-nearest-even (low 16 bits == 0x8000, even and odd upper halves), specials.
    ties = torch.tensor([0x3F808000, 0x3F818000, 0xBF808000, 0xBF818000, 0x7F7FFFFF, 0x00008000, 0x00018000],
                        dtype=torch.int64).to(torch.int32).view(torch.float32)
    specials = torch.tensor([0.0, -0.0, float("inf"), float("-inf"), 1e-40, -1e-40, 65504.0, 1e-7, 3.4e38],
                            dtype=torch.float32)
    bf16_src = torch.cat([src, ties, specials])
    f16_src = torch.cat([src, torch.tensor([0.0, -0.0, 65504.0, 1e-7, 6.1e-5, -2.5, 0.1], dtype=torch.float32)])
    tensors = {
        "f32": (torch.arange(24, dtype=torch.float32).reshape(2, 3, 4) * 0.37 - 3).contiguous(),
        "bf16_src": bf16_src,
        "bf16": bf16_src.to(torch.bfloat16),
        "f16_src": f16_src,
        "f16": f16_src.to(torch.float16),
        "f64": torch.linspace(-1, 1, 5, dtype=torch.float64),
        "i64": torch.arange(-5, 5, dtype=torch.int64).reshape(2, 5),
        "i32": torch.tensor([[2**31 - 1, -(2**31)], [7, -7]], dtype=torch.int32),
        "scalar": torch.tensor(2.5, dtype=torch.float32),
        "empty": torch.zeros(0, 3, dtype=torch.float32),
    }
    path = os.path.join(OUT, "safetensors-python.safetensors")
    save_file(tensors, path, metadata={"writer": "safetensors.torch"})
    # Same-dtype pair whose bytes the Swift writer must reproduce exactly.
    same = {"w": torch.arange(6, dtype=torch.float32).reshape(2, 3) / 4, "a": torch.tensor([1.5, -2.0]),
            "b": torch.tensor([3, 4], dtype=torch.int64), "h": torch.tensor([0.5, 1.0, 2.0], dtype=torch.bfloat16)}
    save_file(same, os.path.join(OUT, "safetensors-layout.safetensors"), metadata={"k": "v"})
    print("wrote", path)


TINY = {
    "tiny-qwen2": dict(arch="qwen2", tie=True, theta=1000000.0),
    "tiny-llama": dict(arch="llama", tie=False, theta=10000.0),
}
BATCH_LENGTHS = [7, 4, 10]


def tiny_config(name):
    from transformers import LlamaConfig, Qwen2Config
    spec = TINY[name]
    common = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, head_dim=8,
                  intermediate_size=48, vocab_size=97, max_position_embeddings=64, rms_norm_eps=1e-6,
                  tie_word_embeddings=spec["tie"], bos_token_id=1, eos_token_id=2,
                  rope_parameters={"rope_type": "default", "rope_theta": spec["theta"]})
    if spec["arch"] == "qwen2":
        return Qwen2Config(**common, use_sliding_window=False)
    return LlamaConfig(**common, attention_bias=False, mlp_bias=False)


def fixture_batch(vocab):
    g = torch.Generator().manual_seed(7)
    return [torch.randint(0, vocab, (n,), generator=g).tolist() for n in BATCH_LENGTHS]


def hf_loss_and_logits(model, seqs):
    """Right-padded batch with attention_mask; returns (packed real-row logits, mean CE over real next tokens)."""
    T = max(len(s) for s in seqs)
    ids = torch.zeros(len(seqs), T, dtype=torch.long)
    mask = torch.zeros(len(seqs), T, dtype=torch.long)
    for b, s in enumerate(seqs):
        ids[b, :len(s)] = torch.tensor(s)
        mask[b, :len(s)] = 1
    logits = model(input_ids=ids, attention_mask=mask).logits  # (B, T, V)
    tgt = ids[:, 1:]
    valid = mask[:, 1:].bool()
    lp = torch.log_softmax(logits[:, :-1].double(), dim=-1)
    nll = -lp.gather(-1, tgt.unsqueeze(-1)).squeeze(-1)
    loss = nll[valid].mean()
    packed = torch.cat([logits[b, :len(s)] for b, s in enumerate(seqs)], dim=0)
    return packed, loss


def models_fixture():
    from transformers import AutoModelForCausalLM
    for idx, name in enumerate(TINY):
        torch.manual_seed(100 + idx)
        cfg = tiny_config(name)
        model = AutoModelForCausalLM.from_config(cfg, attn_implementation="eager", dtype=torch.float32)
        g = torch.Generator().manual_seed(200 + idx)
        with torch.no_grad():
            for pname, p in model.named_parameters():
                if pname.endswith("norm.weight"):
                    p.copy_(1 + 0.1 * torch.randn(p.shape, generator=g))
                else:
                    p.copy_(0.15 * torch.randn(p.shape, generator=g))
        model.eval()
        d = os.path.join(OUT, name)
        model.save_pretrained(d, safe_serialization=True)
        gen = os.path.join(d, "generation_config.json")
        if os.path.exists(gen):
            os.remove(gen)
        seqs = fixture_batch(cfg.vocab_size)
        packed, loss = hf_loss_and_logits(model, seqs)
        model.zero_grad()
        loss.backward()
        out = {"logits": packed.detach().contiguous(), "loss": loss.detach().float().reshape(1),
               "loss_f64": loss.detach().reshape(1),
               "tokens": torch.tensor(sum(seqs, []), dtype=torch.int64),
               "seq_starts": torch.tensor([0] + list(torch.cumsum(torch.tensor(BATCH_LENGTHS), 0).tolist()),
                                          dtype=torch.int64)}
        for pname, p in model.named_parameters():
            if pname == "lm_head.weight" and cfg.tie_word_embeddings:
                continue
            out["grad." + pname] = p.grad.detach().contiguous().clone()
        save_file(out, os.path.join(OUT, f"{name}-expected.safetensors"), metadata={"name": name})
        print(f"wrote {d} and {name}-expected.safetensors (loss {loss.item():.6f}, {len(out) - 5} grads)")


def stories_fixture():
    src = os.path.join(ROOT, "..", "shared", "data", "stories260K")
    if not os.path.isdir(src):
        print("skip stories260K: ../shared/data/stories260K absent")
        return
    from transformers import AutoModelForCausalLM, AutoTokenizer
    model = AutoModelForCausalLM.from_pretrained(src, attn_implementation="eager", dtype=torch.float32).eval()
    ids = torch.tensor([[1]])
    with torch.no_grad():
        out = model.generate(ids, max_new_tokens=200, do_sample=False, min_new_tokens=200, pad_token_id=0)
    gen = out[0, 1:].tolist()
    assert len(gen) == 200, len(gen)
    # Cross-check generate (KV cache) against full forwards without a cache.
    with torch.no_grad():
        full = model(out[:, :-1]).logits[0].argmax(-1)[0:].tolist()
    assert full == gen, "HF generate disagrees with its own full forward"
    tok = AutoTokenizer.from_pretrained(src)
    text = tok.decode(gen)
    with open(os.path.join(OUT, "stories260K-greedy.json"), "w") as f:
        json.dump({"prompt": [1], "generated": gen, "text": text,
                   "note": "greedy (argmax) continuation of BOS by transformers, eager attention, float32"}, f, indent=1)
        f.write("\n")
    print("stories260K greedy:", text[:80].replace("\n", " "), "...")


def check_saved(directory, like, atol=1e-4):
    """Loads a directory saved by rlif with transformers and compares to the fixture logits."""
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM
    model = AutoModelForCausalLM.from_pretrained(directory, attn_implementation="eager", dtype=torch.float32).eval()
    exp = load_file(os.path.join(OUT, f"{like}-expected.safetensors"))
    seqs = fixture_batch(model.config.vocab_size)
    with torch.no_grad():
        packed, loss = hf_loss_and_logits(model, seqs)
    diff = (packed - exp["logits"]).abs().max().item()
    print(f"{directory}: loaded as {type(model).__name__}, max |logits - fixture| = {diff:.3g}, "
          f"loss {loss.item():.6f} vs {exp['loss'].item():.6f}")
    if diff > atol:
        sys.exit(1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", choices=["safetensors", "models", "stories"])
    ap.add_argument("--check-saved")
    ap.add_argument("--like", default="tiny-qwen2")
    ap.add_argument("--atol", type=float, default=1e-4, help="max abs logits difference (use ~0.1 for a BF16 save)")
    args = ap.parse_args()
    if args.check_saved:
        check_saved(args.check_saved, args.like, args.atol)
        return
    os.makedirs(OUT, exist_ok=True)
    torch.manual_seed(0)
    if args.only in (None, "safetensors"):
        safetensors_fixture()
    if args.only in (None, "models"):
        models_fixture()
    if args.only in (None, "stories"):
        stories_fixture()


if __name__ == "__main__":
    main()
