#!/usr/bin/env python3
"""LoRA parity fixtures for rlif's adapters (dev tool, not run by CI).

For each tiny model in Tests/Fixtures/model/ (tiny-qwen2: every linear layer adapted, r 4, alpha 8;
tiny-llama: q/v/o/down only, r 2, alpha 6) this wraps the base in a PEFT LoRA model (torch float32, eager
attention), gives the adapters seeded non-zero values (PEFT starts B at 0, which would make dA = 0 and the check
weak), saves them with PEFT's own `save_pretrained` and reloads them with `PeftModel.from_pretrained` (exactly
what the Swift side reads), then runs the same GRPO objective as grpo_step_fixtures.py on the same kind of batch
(2 groups x G=3, behaviour log-probs = own + noise) with the KL reference = the base with the adapters disabled
(`disable_adapter()`), backpropagates and takes one torch.optim.AdamW step over the adapter parameters only.
Writes under Tests/Fixtures/lora/:

  adapter-<name>/            PEFT directory (adapter_config.json + adapter_model.safetensors) of the initial adapters
  <name>.json                batch, settings, lora settings, expected loss / pg_loss / kl_loss
  <name>.safetensors         grad.<peft name>, after.<peft name> (adapters after the AdamW step),
                             logits (L, V): PeftModel.from_pretrained(base, adapter dir) on `logits_tokens`,
                             base_logits (L, V): the same tokens through the base alone

Usage: python3 scripts/ref/lora_fixtures.py
"""
import json
import os
import shutil
import sys

import torch
from safetensors.torch import save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from grpo_step_fixtures import COMPLETION_LENGTHS, PROMPT_LENGTHS, REWARDS, SETTINGS, load, token_logprobs  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MODELS = os.path.join(ROOT, "Tests", "Fixtures", "model")
OUT = os.path.join(ROOT, "Tests", "Fixtures", "lora")

CASES = {
    "tiny-qwen2": dict(r=4, lora_alpha=8,
                       target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]),
    "tiny-llama": dict(r=2, lora_alpha=6, target_modules=["q_proj", "v_proj", "o_proj", "down_proj"]),
}


def peft_name(n):
    """named_parameters name -> adapter_model.safetensors name (PEFT drops the adapter name)."""
    return n.replace(".lora_A.default.", ".lora_A.").replace(".lora_B.default.", ".lora_B.")


def build(name, idx):
    from peft import LoraConfig, PeftModel, get_peft_model
    s = SETTINGS
    lc = CASES[name]
    base_dir = os.path.join(MODELS, name)
    g = torch.Generator().manual_seed(2000 + idx)
    torch.manual_seed(3000 + idx)
    model = get_peft_model(load(base_dir), LoraConfig(lora_dropout=0.0, bias="none", task_type="CAUSAL_LM", **lc))
    with torch.no_grad():
        for n, p in model.named_parameters():
            if "lora_B" in n:
                p.copy_(0.2 * torch.randn(p.shape, generator=g))
    adir = os.path.join(OUT, f"adapter-{name}")
    if os.path.isdir(adir):
        shutil.rmtree(adir)
    model.save_pretrained(adir)
    for extra in os.listdir(adir):
        if extra not in ("adapter_config.json", "adapter_model.safetensors"):
            os.remove(os.path.join(adir, extra))
    # The base path PEFT recorded is this machine's; keep the committed fixture free of it (loading ignores it
    # when the base model is passed in).
    cfg_path = os.path.join(adir, "adapter_config.json")
    with open(cfg_path) as f:
        acfg = json.load(f)
    acfg["base_model_name_or_path"] = f"Tests/Fixtures/model/{name}"
    with open(cfg_path, "w") as f:
        json.dump(acfg, f, indent=2, sort_keys=True)
        f.write("\n")
    # Exactly what the Swift side loads: the base from its directory + the saved adapter directory.
    policy = PeftModel.from_pretrained(load(base_dir), adir, is_trainable=True)
    vocab = policy.config.vocab_size

    prompts = [torch.randint(3, vocab, (n,), generator=g).tolist() for n in PROMPT_LENGTHS]
    completions = [[torch.randint(3, vocab, (n,), generator=g).tolist() for n in lens] for lens in COMPLETION_LENGTHS]
    T = s["temperature"]
    behaviour = []
    with torch.no_grad():
        for pr, comps in zip(prompts, completions):
            row = []
            for c in comps:
                lp = token_logprobs(policy, pr, c, T)
                noise = s["behaviour_noise"] * (2 * torch.rand(len(c), generator=g) - 1)
                row.append((lp + noise).tolist())
            behaviour.append(row)
    advantages = []
    for r in REWARDS:
        rt = torch.tensor(r, dtype=torch.float64)
        a = (rt - rt.mean()) / (rt.std(unbiased=True) + s["advantage_epsilon"])
        advantages.append(a.float().tolist())

    # Logits of PEFT-loaded base + adapter (and of the base alone) on one sequence.
    logits_tokens = prompts[1] + completions[1][2]
    with torch.no_grad():
        ids = torch.tensor([logits_tokens])
        logits = policy(input_ids=ids).logits[0].contiguous().clone()
        with policy.disable_adapter():
            base_logits = policy(input_ids=ids).logits[0].contiguous().clone()

    policy.zero_grad()
    n_tokens = sum(len(c) for comps in completions for c in comps)
    pg_sum = torch.zeros((), dtype=torch.float64)
    kl_sum = torch.zeros((), dtype=torch.float64)
    for gi, (pr, comps) in enumerate(zip(prompts, completions)):
        for ci, c in enumerate(comps):
            logp = token_logprobs(policy, pr, c, T).double()
            with torch.no_grad(), policy.disable_adapter():
                ref = token_logprobs(policy, pr, c, T).double()
            old = torch.tensor(behaviour[gi][ci], dtype=torch.float32).double()
            A = torch.tensor(advantages[gi][ci], dtype=torch.float32).double()
            ratio = torch.exp(torch.clamp(logp - old, -20, 20))
            clipped_ratio = torch.clamp(ratio, 1 - s["clip_epsilon_low"], 1 + s["clip_epsilon_high"])
            pg = torch.maximum(-A * ratio, -A * clipped_ratio)
            x = torch.clamp(ref - logp, -20, 20)
            kl = torch.clamp(torch.exp(x) - x - 1, -10, 10)
            pg_sum = pg_sum + pg.sum()
            kl_sum = kl_sum + kl.sum()
    pg_loss = pg_sum / n_tokens
    kl_loss = kl_sum / n_tokens
    loss = pg_loss + s["kl_beta"] * kl_loss
    loss.backward()

    trainable = [(n, p) for n, p in policy.named_parameters() if p.requires_grad]
    assert all("lora_" in n for n, _ in trainable), [n for n, _ in trainable]
    out = {"logits": logits, "base_logits": base_logits}
    for n, p in trainable:
        out["grad." + peft_name(n)] = p.grad.detach().contiguous().clone()
    opt = torch.optim.AdamW([p for _, p in trainable], lr=s["learning_rate"], betas=(s["adam_beta1"], s["adam_beta2"]),
                            eps=s["adam_epsilon"], weight_decay=s["weight_decay"], foreach=False)
    opt.step()
    for n, p in trainable:
        out["after." + peft_name(n)] = p.detach().contiguous().clone()
    save_file(out, os.path.join(OUT, f"{name}.safetensors"), metadata={"name": name})

    meta = {
        "model": f"model/{name}", "adapter": f"lora/adapter-{name}", "settings": s, "lora": lc,
        "groups": [{"prompt": pr, "completions": comps, "behaviour_logprobs": beh, "rewards": r, "advantages": a}
                   for pr, comps, beh, r, a in zip(prompts, completions, behaviour, REWARDS, advantages)],
        "loss": loss.item(), "pg_loss": pg_loss.item(), "kl_loss": kl_loss.item(), "completion_tokens": n_tokens,
        "logits_tokens": logits_tokens,
        "note": "written by scripts/ref/lora_fixtures.py (peft + torch float32, loss terms in float64)",
    }
    with open(os.path.join(OUT, f"{name}.json"), "w") as f:
        json.dump(meta, f, indent=1)
        f.write("\n")
    print(f"{name}: loss {loss.item():.8f} (pg {pg_loss.item():.6f}, kl {kl_loss.item():.6f}), "
          f"{len(trainable)} adapter tensors, max |logits - base| {(logits - base_logits).abs().max().item():.4f}")


def main():
    os.makedirs(OUT, exist_ok=True)
    for idx, name in enumerate(CASES):
        build(name, idx)


if __name__ == "__main__":
    main()
