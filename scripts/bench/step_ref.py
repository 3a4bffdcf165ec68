#!/usr/bin/env python3
"""The whole INTUITOR step in PyTorch, for scripts/bench/step-bench: plain PyTorch (`--impl torch`) or TRL's
GRPOTrainer with a self-certainty reward (`--impl trl`). CPU, float32, `--threads` threads.

Both run `--warmup` + `--steps` optimizer steps of B prompts x G completions (prompt P tokens, exactly T new
tokens: min_new_tokens = T, so every implementation generates the same work; rlif cannot force it and reports
its own token count), temperature 0.9, top-k off, top-p 1, beta 0.005 (k3 KL against a frozen copy of the
initial policy), clip 0.2, AdamW lr 3e-6 (constant) weight decay 0.01, grad-norm clip 1.0, and print one line
per timed step:

    STEP impl=torch step=K seconds=S sample_s=A train_s=B tokens=N

--impl torch, one step (what rlif's single-process step does, the same objective as scripts/ref/grpo_step_fixtures.py):
  1. sampling: HF generate with its KV cache on the B*G rows (each prompt repeated G times);
  2. self-certainty of the current policy: one no-grad forward of the B*G sequences (P + T), per completion
     token logsumexp(z) - mean(z) - log V, mean over the completion -> reward; the same forward gives the
     behaviour log-probs log softmax(z / 0.9)[token];
  3. advantages: (r - mean_g) / (unbiased std_g + 1e-6) per group;
  4. reference forward (no grad) -> ref log-probs;
  5. policy forward with grad, rho = exp(logp - old), pg = max(-A rho, -A clip(rho, 0.8, 1.2)),
     k3 KL = exp(ref - logp) - (ref - logp) - 1, loss = token mean of pg + beta kl, backward;
  6. clip_grad_norm_(1.0), AdamW step.
  sample_s = (1), train_s = (2)..(6).

--impl trl: trl.GRPOTrainer (num_generations G, per-device batch B*G, one optimizer step per generation batch,
beta 0.005, loss_type "dapo" (its default), no gradient checkpointing, no vLLM) with a reward function that does
what the official INTUITOR trainer (sunblaze-ucb/Intuitor, open-r1 based) does: a no-grad forward of the current
policy over prompt + completion and the mean per-token KL(U || p) of the completion. Step time = wall time
between consecutive `on_step_end` callbacks (generation, reward, reference forward, loss, backward, AdamW).
"""
import argparse
import math
import os
import statistics
import sys
import time

import torch


def load_prompts(path, n):
    import json
    rows = [json.loads(line)["prompt"] for line in open(path) if line.strip()]
    return rows[:n]


def self_certainty(logits):
    """(..., V) raw logits -> (...,) KL(U || softmax(z)) = logsumexp(z) - mean(z) - log V."""
    return torch.logsumexp(logits, dim=-1) - logits.mean(dim=-1) - math.log(logits.shape[-1])


def torch_steps(args, model_dir, prompts):
    from tokenizers import Tokenizer
    from transformers import AutoModelForCausalLM
    tok = Tokenizer.from_file(os.path.join(model_dir, "tokenizer.json"))
    policy = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32, attn_implementation="sdpa")
    ref = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32, attn_implementation="sdpa").eval()
    for p in ref.parameters():
        p.requires_grad_(False)
    opt = torch.optim.AdamW(policy.parameters(), lr=args.lr, weight_decay=0.01)
    B, G, T, temp, beta, eps = args.prompts_per_step, args.group, args.new_tokens, 0.9, args.beta, 0.2
    encoded = [tok.encode(p).ids for p in prompts]
    P = len(encoded[0])
    assert all(len(e) == P for e in encoded), "step-bench prompts must all have the same token count"
    cursor = 0
    for step in range(args.warmup + args.steps):
        batch = [encoded[(cursor + i) % len(encoded)] for i in range(B)]
        cursor += B
        ids = torch.tensor([b for b in batch for _ in range(G)])              # (B*G, P), group-major
        t0 = time.perf_counter()
        policy.eval()
        with torch.no_grad():
            seqs = policy.generate(input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=True,
                                   temperature=temp, top_k=0, top_p=1.0, max_new_tokens=T, min_new_tokens=T,
                                   pad_token_id=0, use_cache=True)                # (B*G, P + T)
        t1 = time.perf_counter()
        comp = seqs[:, P:]
        with torch.no_grad():
            z = policy(input_ids=seqs).logits[:, P - 1:-1]                     # (B*G, T, V) rows predicting completion
            reward = self_certainty(z).mean(dim=1)                           # (B*G,)
            old = torch.log_softmax(z / temp, dim=-1).gather(-1, comp.unsqueeze(-1)).squeeze(-1)
            del z
            r = reward.view(B, G)
            adv = ((r - r.mean(1, keepdim=True)) / (r.std(1, keepdim=True, unbiased=True) + 1e-6)).reshape(-1, 1)
            zr = ref(input_ids=seqs).logits[:, P - 1:-1]
            ref_lp = torch.log_softmax(zr / temp, dim=-1).gather(-1, comp.unsqueeze(-1)).squeeze(-1)
            del zr
        policy.train()
        zp = policy(input_ids=seqs).logits[:, P - 1:-1]
        logp = torch.log_softmax(zp / temp, dim=-1).gather(-1, comp.unsqueeze(-1)).squeeze(-1)
        rho = torch.exp(torch.clamp(logp - old, -20, 20))
        pg = torch.maximum(-adv * rho, -adv * torch.clamp(rho, 1 - eps, 1 + eps))
        x = torch.clamp(ref_lp - logp, -20, 20)
        kl = torch.clamp(torch.exp(x) - x - 1, -10, 10)
        loss = (pg + beta * kl).mean()
        opt.zero_grad(set_to_none=False)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(policy.parameters(), 1.0)
        opt.step()
        t2 = time.perf_counter()
        if step >= args.warmup:
            print(f"STEP impl=torch step={step + 1} seconds={t2 - t0:.4f} sample_s={t1 - t0:.4f} "
                  f"train_s={t2 - t1:.4f} tokens={comp.numel()} loss={loss.item():.4g}", flush=True)


def trl_steps(args, model_dir, prompts):
    import trl
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, PreTrainedTokenizerFast, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer
    tok = PreTrainedTokenizerFast(tokenizer_file=os.path.join(model_dir, "tokenizer.json"),
                                  eos_token="<|endoftext|>", pad_token="<|endoftext|>")
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32, attn_implementation="sdpa")
    B, G, T = args.prompts_per_step, args.group, args.new_tokens
    total = args.warmup + args.steps
    data = Dataset.from_list([{"prompt": prompts[i % len(prompts)]} for i in range(B * total)])

    class SelfCertainty:
        """INTUITOR's reward from the current policy's logits (no grad), as the official trainer computes it."""
        __name__ = "self_certainty"
        trainer = None

        def __call__(self, prompts, completions, completion_ids, **kw):
            m = self.trainer.model
            rows = [tok(p, add_special_tokens=False)["input_ids"] + list(c) for p, c in zip(prompts, completion_ids)]
            plen = [len(r) - len(c) for r, c in zip(rows, completion_ids)]
            width = max(len(r) for r in rows)
            ids = torch.tensor([r + [tok.pad_token_id] * (width - len(r)) for r in rows])
            mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows])
            with torch.no_grad():
                z = m(input_ids=ids, attention_mask=mask).logits
            out = []
            for i, c in enumerate(completion_ids):
                p = plen[i]
                out.append(self_certainty(z[i, p - 1:p - 1 + len(c)]).mean().item())
            return out

    reward = SelfCertainty()
    cfg = GRPOConfig(output_dir=args.scratch, per_device_train_batch_size=B * G, num_generations=G,
                     gradient_accumulation_steps=1, max_completion_length=T, temperature=0.9, top_k=0, top_p=1.0,
                     beta=args.beta, epsilon=0.2, learning_rate=args.lr, lr_scheduler_type="constant",
                     weight_decay=0.01, max_grad_norm=1.0, max_steps=total, num_train_epochs=1,
                     activation_checkpointing=False, use_cpu=True, report_to="none", save_strategy="no",
                     logging_steps=10_000, disable_tqdm=True, shuffle_dataset=False, seed=0,
                     optim="adamw_torch", generation_kwargs={"min_new_tokens": T}, dataloader_num_workers=0)

    class Timer(TrainerCallback):
        def __init__(self):
            self.last = None

        def on_step_begin(self, a, state, control, **kw):
            if self.last is None:
                self.last = time.perf_counter()

        def on_step_end(self, a, state, control, **kw):
            now = time.perf_counter()
            if state.global_step > args.warmup:
                print(f"STEP impl=trl step={state.global_step} seconds={now - self.last:.4f} sample_s=nan "
                      f"train_s=nan tokens={B * G * T} trl={trl.__version__}", flush=True)
            self.last = now

    trainer = GRPOTrainer(model=model, reward_funcs=[reward], args=cfg, train_dataset=data, processing_class=tok,
                          callbacks=[Timer()])
    reward.trainer = trainer
    trainer.train()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--impl", choices=["torch", "trl"], required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--prompts", required=True, help="JSONL of {\"prompt\": ...}, each exactly P tokens")
    ap.add_argument("--prompts-per-step", type=int, default=2)
    ap.add_argument("--group", type=int, default=8)
    ap.add_argument("--new-tokens", type=int, default=128)
    ap.add_argument("--beta", type=float, default=0.005)
    ap.add_argument("--lr", type=float, default=3e-6)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--scratch", default="/tmp/step-bench-trl")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    prompts = load_prompts(args.prompts, 64)
    if args.impl == "torch":
        torch_steps(args, args.model, prompts)
    else:
        trl_steps(args, args.model, prompts)


if __name__ == "__main__":
    main()
