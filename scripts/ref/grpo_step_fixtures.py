#!/usr/bin/env python3
"""One-step GRPO parity fixtures for GRPOTrainer (dev tool, not run by CI).

For each tiny model in Tests/Fixtures/model/ (tiny-qwen2, tiny-llama) this builds a fixed batch of 2 groups x G=3
completions (prompts of 4 and 6 tokens, completions of 3..7 tokens), runs the INTUITOR/GRPO objective in PyTorch
float32 with transformers (each prompt+completion sequence unpadded, eager attention), backpropagates, and takes
one torch.optim.AdamW step without gradient clipping. Writes, deterministically (seeded), under
Tests/Fixtures/grpo-step/:

  reference-<name>/          the KL reference model: the policy with small seeded noise on every parameter (HF dir)
  <name>.json                the batch (prompt/completion token ids, behaviour log-probs, rewards), the settings,
                             and the expected advantages / loss / pg_loss / kl_loss
  <name>.safetensors         grad.<param> (dL/dθ at the initial weights), after.<param> (θ after one AdamW step),
                             logp / ref_logp (per completion token, flat, group-major) for debugging

Objective (verl compute_policy_loss_vanilla + low_var_kl + token-mean agg_loss, see Sources/GRPO/PolicyLoss.swift):
  logp_t = log softmax(z_{t-1} / T)[token_t]                 T = 0.9
  A_i    = (r_i - mean_g) / (std_unbiased_g + 1e-6)          per group
  rho_t  = exp(clamp(logp_t - old_t, +-20))                 old_t = behaviour log-prob (own logp + noise, detached)
  pg_t   = max(-A rho_t, -A clip(rho_t, 0.8, 1.2))
  x_t    = clamp(ref_t - logp_t, +-20);  kl_t = clamp(exp(x_t) - x_t - 1, +-10)
  L      = sum_t (pg_t + beta kl_t) / (number of completion tokens)     beta = 0.05

Usage: python3 scripts/ref/grpo_step_fixtures.py
"""
import json
import os
import shutil

import torch
from safetensors.torch import save_file

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MODELS = os.path.join(ROOT, "Tests", "Fixtures", "model")
OUT = os.path.join(ROOT, "Tests", "Fixtures", "grpo-step")

NAMES = ["tiny-qwen2", "tiny-llama"]
SETTINGS = dict(temperature=0.9, kl_beta=0.05, clip_epsilon_low=0.2, clip_epsilon_high=0.2, advantage_epsilon=1e-6,
                unbiased_std=True, loss_aggregation="token_mean", learning_rate=1e-3, adam_beta1=0.9,
                adam_beta2=0.999, adam_epsilon=1e-8, weight_decay=0.01, max_grad_norm=0, lr_schedule="constant",
                warmup_ratio=0.0, ppo_epochs=1, minibatches=1, behaviour_noise=0.35, reference_noise=0.03)
PROMPT_LENGTHS = [4, 6]
COMPLETION_LENGTHS = [[3, 7, 5], [6, 4, 7]]
REWARDS = [[0.25, -0.5, 1.0], [0.8, 0.1, 0.35]]


def load(path):
    from transformers import AutoModelForCausalLM
    return AutoModelForCausalLM.from_pretrained(path, attn_implementation="eager", dtype=torch.float32).eval()


def token_logprobs(model, prompt, completion, temperature):
    """log softmax(z/T) of each completion token, from one unpadded forward of prompt + completion."""
    ids = torch.tensor([prompt + completion])
    logits = model(input_ids=ids).logits[0]                      # (P + L, V)
    p = len(prompt)
    rows = logits[p - 1:p - 1 + len(completion)] / temperature   # row P+j-1 predicts completion token j
    lp = torch.log_softmax(rows, dim=-1)
    return lp.gather(-1, torch.tensor(completion).unsqueeze(-1)).squeeze(-1)  # (L,)


def build(name, idx):
    s = SETTINGS
    policy = load(os.path.join(MODELS, name))
    vocab = policy.config.vocab_size
    g = torch.Generator().manual_seed(1000 + idx)
    prompts = [torch.randint(3, vocab, (n,), generator=g).tolist() for n in PROMPT_LENGTHS]
    completions = [[torch.randint(3, vocab, (n,), generator=g).tolist() for n in lens] for lens in COMPLETION_LENGTHS]

    # Reference = policy + seeded noise on every parameter (tied lm_head follows the embedding).
    reference = load(os.path.join(MODELS, name))
    with torch.no_grad():
        for pname, p in reference.named_parameters():
            p.add_(s["reference_noise"] * torch.randn(p.shape, generator=g))
    ref_dir = os.path.join(OUT, f"reference-{name}")
    if os.path.isdir(ref_dir):
        shutil.rmtree(ref_dir)
    reference.save_pretrained(ref_dir, safe_serialization=True)
    gen = os.path.join(ref_dir, "generation_config.json")
    if os.path.exists(gen):
        os.remove(gen)
    reference = load(ref_dir)  # exactly what the Swift side loads

    T = s["temperature"]
    # Behaviour log-probs: the policy's own at T plus seeded noise, so ratios != 1 and some leave [0.8, 1.2].
    behaviour = []
    with torch.no_grad():
        for pr, comps in zip(prompts, completions):
            row = []
            for c in comps:
                lp = token_logprobs(policy, pr, c, T)
                noise = s["behaviour_noise"] * (2 * torch.rand(len(c), generator=g) - 1)
                row.append((lp + noise).tolist())
            behaviour.append(row)

    # Advantages in float64, rounded to float32 (what the Swift side holds).
    advantages = []
    for r in REWARDS:
        rt = torch.tensor(r, dtype=torch.float64)
        a = (rt - rt.mean()) / (rt.std(unbiased=True) + s["advantage_epsilon"])
        advantages.append(a.float().tolist())

    policy.zero_grad()
    n_tokens = sum(len(c) for comps in completions for c in comps)
    pg_sum = torch.zeros((), dtype=torch.float64)
    kl_sum = torch.zeros((), dtype=torch.float64)
    logps, ref_logps = [], []
    clipped = outside = 0
    for gi, (pr, comps) in enumerate(zip(prompts, completions)):
        for ci, c in enumerate(comps):
            logp = token_logprobs(policy, pr, c, T).double()
            with torch.no_grad():
                ref = token_logprobs(reference, pr, c, T).double()
            old = torch.tensor(behaviour[gi][ci], dtype=torch.float32).double()
            A = torch.tensor(advantages[gi][ci], dtype=torch.float32).double()
            ratio = torch.exp(torch.clamp(logp - old, -20, 20))
            clipped_ratio = torch.clamp(ratio, 1 - s["clip_epsilon_low"], 1 + s["clip_epsilon_high"])
            pg = torch.maximum(-A * ratio, -A * clipped_ratio)
            outside += int(((ratio < 1 - s["clip_epsilon_low"]) | (ratio > 1 + s["clip_epsilon_high"])).sum())
            clipped += int((-A * clipped_ratio > -A * ratio).sum())  # verl pg_clipfrac: the clipped branch won
            x = torch.clamp(ref - logp, -20, 20)
            kl = torch.clamp(torch.exp(x) - x - 1, -10, 10)
            pg_sum = pg_sum + pg.sum()
            kl_sum = kl_sum + kl.sum()
            logps.append(logp.detach().float())
            ref_logps.append(ref.float())
    pg_loss = pg_sum / n_tokens
    kl_loss = kl_sum / n_tokens
    loss = pg_loss + s["kl_beta"] * kl_loss
    loss.backward()

    tied = policy.config.tie_word_embeddings
    out = {"logp": torch.cat(logps).contiguous(), "ref_logp": torch.cat(ref_logps).contiguous()}
    for pname, p in policy.named_parameters():
        if pname == "lm_head.weight" and tied:
            continue
        out["grad." + pname] = p.grad.detach().contiguous().clone()

    opt = torch.optim.AdamW(policy.parameters(), lr=s["learning_rate"], betas=(s["adam_beta1"], s["adam_beta2"]),
                            eps=s["adam_epsilon"], weight_decay=s["weight_decay"], foreach=False)
    opt.step()
    for pname, p in policy.named_parameters():
        if pname == "lm_head.weight" and tied:
            continue
        out["after." + pname] = p.detach().contiguous().clone()
    save_file(out, os.path.join(OUT, f"{name}.safetensors"), metadata={"name": name})

    meta = {
        "model": f"model/{name}", "reference": f"grpo-step/reference-{name}", "settings": s,
        "groups": [{"prompt": pr, "completions": comps, "behaviour_logprobs": beh, "rewards": r, "advantages": a}
                   for pr, comps, beh, r, a in zip(prompts, completions, behaviour, REWARDS, advantages)],
        "loss": loss.item(), "pg_loss": pg_loss.item(), "kl_loss": kl_loss.item(),
        "completion_tokens": n_tokens, "clipped_tokens": clipped, "tokens_outside_clip_range": outside,
        "note": "written by scripts/ref/grpo_step_fixtures.py (torch float32, loss terms in float64)",
    }
    with open(os.path.join(OUT, f"{name}.json"), "w") as f:
        json.dump(meta, f, indent=1)
        f.write("\n")
    print(f"{name}: loss {loss.item():.8f} (pg {pg_loss.item():.6f}, kl {kl_loss.item():.6f}), "
          f"{outside}/{n_tokens} tokens outside the clip range, {clipped} clipped")


def main():
    os.makedirs(OUT, exist_ok=True)
    torch.manual_seed(0)
    for idx, name in enumerate(NAMES):
        build(name, idx)


if __name__ == "__main__":
    main()
