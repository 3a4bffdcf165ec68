#!/usr/bin/env python3
"""Reference values for the GRPO module (Sources/GRPO), computed with PyTorch (float64 autograd) and transformers.

Writes Tests/Fixtures/grpo/{advantages,policy_loss,adamw,clip_grad_norm,schedules}.json. Seeded and
deterministic: re-running regenerates identical files.

The policy loss is written here from verl's formulas (verl/trainer/ppo/core_algos.py: compute_policy_loss_vanilla,
kl_penalty "low_var_kl", agg_loss; TIS as tis_imp_ratio / TRL importance_sampling_ratio) on padded (S, Tmax)
tensors, exactly as verl lays them out; the Swift code works on the flat layout. Inputs are float32 values
(stored exactly in JSON) promoted to float64 for the reference computation.

Usage: python3 scripts/ref/grpo_fixtures.py
"""
import json
import math
import os

import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "Tests", "Fixtures", "grpo")


def f32list(a):
    return [float(x) for x in np.asarray(a, dtype=np.float32).astype(np.float64)]


def f64list(a):
    return [float(x) for x in np.asarray(a, dtype=np.float64)]


def write(name, obj):
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, name), "w") as f:
        json.dump(obj, f, indent=None, separators=(",", ":"))
        f.write("\n")


# ---------------------------------------------------------------- advantages
def grpo_advantages(r, G, eps, unbiased, scale):
    """verl compute_grpo_outcome_advantage on a (numGroups, G) view (G == 1 → mean 0, std 1)."""
    x = r.view(-1, G)
    if G == 1:
        mean = torch.zeros_like(x)
        std = torch.ones_like(x)
    else:
        mean = x.mean(dim=1, keepdim=True)
        std = x.std(dim=1, keepdim=True, unbiased=unbiased)
    a = (x - mean) / (std + eps) if scale else x - mean
    return a.reshape(-1)


def make_advantages(rng):
    G = 4
    rewards = rng.normal(size=3 * G).astype(np.float32)
    rewards[4:8] = 0.75  # a constant group → exactly zero advantages
    rewards[8:12] = np.array([1, 0, 0, 1], dtype=np.float32)  # binary (accuracy-like) group
    r = torch.tensor(rewards.astype(np.float64))
    cases = []
    for unbiased in (True, False):
        for scale in (True, False):
            cases.append(dict(unbiased=unbiased, scale=scale, epsilon=1e-6,
                              advantages=f64list(grpo_advantages(r, G, 1e-6, unbiased, scale))))
    single = torch.tensor(rewards[:3].astype(np.float64))
    write("advantages.json", dict(groupSize=G, rewards=f32list(rewards), cases=cases,
                                  singletonRewards=f32list(rewards[:3]),
                                  singletonAdvantages=f64list(grpo_advantages(single, 1, 1e-6, True, True))))


# ---------------------------------------------------------------- policy loss
def agg_loss(loss_mat, mask, mode, constant=None):
    """verl agg_loss (+ a constant normaliser for Dr.GRPO as in TRL)."""
    if mode == "tokenMean":
        return (loss_mat * mask).sum() / mask.sum()
    if mode == "seqMeanTokenSum":
        return (loss_mat * mask).sum(dim=-1).mean()
    if mode == "seqMeanTokenMean":
        return ((loss_mat * mask).sum(dim=-1) / mask.sum(dim=-1)).mean()
    if mode == "constantNormalizer":
        return (loss_mat * mask).sum() / constant
    raise ValueError(mode)


def policy_loss_ref(logp, old, ref, roll, adv, mask, cfg, mode, constant):
    """verl compute_policy_loss_vanilla + low_var_kl KL loss; returns (loss, pg, kl, metrics)."""
    neg_approx_kl = torch.clamp(logp - old, min=-20.0, max=20.0)
    ratio = torch.exp(neg_approx_kl)
    pg1 = -adv * ratio
    pg2 = -adv * torch.clamp(ratio, 1 - cfg["clipLow"], 1 + cfg["clipHigh"])
    clip1 = torch.maximum(pg1, pg2)
    pg = clip1
    if cfg["dualClip"] is not None:
        pg3 = -adv * cfg["dualClip"]
        clip2 = torch.min(pg3, clip1)
        pg = torch.where(adv < 0, clip2, clip1)
    if roll is not None:
        tis = torch.clamp(torch.exp(old - roll), max=cfg["tisCap"])
        pg = pg * tis.detach()
    pg_loss = agg_loss(pg, mask, mode, constant)
    kl = torch.clamp(ref - logp, min=-20, max=20)
    kld = torch.clamp(torch.exp(kl) - kl - 1, min=-10, max=10)
    kl_loss = agg_loss(kld, mask, mode, constant)
    loss = pg_loss + cfg["klCoef"] * kl_loss
    mm = lambda x: float(((x * mask).sum() / mask.sum()).item())
    metrics = dict(clipFraction=mm(torch.gt(pg2, pg1).double()),
                   approxKL=mm(-(logp - old)), meanKL=mm(kld), meanRatio=mm(ratio))
    return loss, pg_loss, kl_loss, metrics


def make_policy_loss(rng):
    S, G = 8, 4
    lengths = rng.integers(3, 15, size=S)
    offsets, cursor = [], 0
    for s in range(S):
        if s == 4:
            cursor += 2  # two unused tokens between sequences (the flat layout allows gaps)
        offsets.append(cursor)
        cursor += int(lengths[s])
    N = cursor
    logp = -rng.uniform(0.05, 4.0, size=N)
    old = logp + rng.normal(0, 0.25, size=N)
    ref = logp + rng.normal(0, 0.3, size=N)
    roll = old + rng.normal(0, 0.5, size=N)
    mask = np.ones(N)
    mask[[offsets[1] + 1, offsets[5], offsets[6] + 2]] = 0
    rewards = rng.normal(size=S).astype(np.float32)
    adv = grpo_advantages(torch.tensor(rewards.astype(np.float64)), G, 1e-6, True, True).numpy().astype(np.float32)
    # Tokens that exercise the extra clamps: a large ratio in negative-advantage sequences (dual clip at c = 3),
    # and a reference far above logp (k3 value clamp at 10).
    neg = [s for s in range(S) if adv[s] < 0]
    for s in neg[:2]:
        old[offsets[s]] = logp[offsets[s]] - 1.5
    ref[offsets[2] + 1] = logp[offsets[2] + 1] + 3.0
    logp, old, ref, roll = (np.asarray(x, dtype=np.float32) for x in (logp, old, ref, roll))

    # Stay away from the kinks so the piecewise gradients are unambiguous: nudge the few tokens that land
    # within 2e-3 of a clip boundary (ratio, TIS cap) by 0.01 in log space.
    for b in (0.8, 1.2, 1.28, 3.0):
        near = np.abs(np.exp(logp.astype(np.float64) - old) - b) < 2e-3
        old[near] -= np.float32(0.01)
    near = np.abs(np.exp(old.astype(np.float64) - roll) - 2.0) < 2e-3
    roll[near] -= np.float32(0.01)
    r = np.exp(logp.astype(np.float64) - old)
    for b in (0.8, 1.2, 1.28, 3.0):
        assert np.min(np.abs(r - b)) > 1e-3, f"ratio too close to {b}"
    w = np.exp(old.astype(np.float64) - roll)
    assert np.min(np.abs(w - 2.0)) > 1e-3
    x = ref.astype(np.float64) - logp
    assert np.min(np.abs(np.exp(x) - x - 1 - 10)) > 1e-3

    Tmax = int(lengths.max())
    def pad(flat):
        out = np.zeros((S, Tmax))
        for s in range(S):
            out[s, :lengths[s]] = np.asarray(flat, dtype=np.float64)[offsets[s]:offsets[s] + lengths[s]]
        return torch.tensor(out)
    padded_mask = pad(mask)
    adv_tok = torch.tensor(adv.astype(np.float64)).unsqueeze(1).expand(S, Tmax)

    variants = {
        "pg": dict(clipLow=0.2, clipHigh=0.2, dualClip=None, klCoef=0.0, tisCap=2.0, tis=False, onPolicy=False),
        "kl": dict(clipLow=0.2, clipHigh=0.2, dualClip=None, klCoef=0.04, tisCap=2.0, tis=False, onPolicy=False),
        "kl_tis": dict(clipLow=0.2, clipHigh=0.2, dualClip=None, klCoef=0.04, tisCap=2.0, tis=True, onPolicy=False),
        "dual_tis": dict(clipLow=0.2, clipHigh=0.28, dualClip=3.0, klCoef=0.04, tisCap=2.0, tis=True, onPolicy=False),
        "onpolicy_kl": dict(clipLow=0.2, clipHigh=0.2, dualClip=None, klCoef=0.04, tisCap=2.0, tis=False, onPolicy=True),
    }
    constant = float(S * Tmax)  # Dr.GRPO (TRL): numSeqs · max completion length
    cases = []
    for mode in ("tokenMean", "seqMeanTokenMean", "seqMeanTokenSum", "constantNormalizer"):
        for vname, cfg in variants.items():
            lp = pad(logp).requires_grad_(True)
            o = lp.detach() if cfg["onPolicy"] else pad(old)
            loss, pg_loss, kl_loss, metrics = policy_loss_ref(
                lp, o, pad(ref), pad(roll) if cfg["tis"] else None, adv_tok, padded_mask, cfg, mode, constant)
            loss.backward()
            grad = np.zeros(N)
            for s in range(S):
                grad[offsets[s]:offsets[s] + lengths[s]] = lp.grad[s, :lengths[s]].numpy()
            cases.append(dict(aggregation=mode, variant=vname, config=cfg, loss=float(loss.item()),
                              pgLoss=float(pg_loss.item()), klLoss=float(kl_loss.item()),
                              dLogp=f64list(grad), **metrics))
    write("policy_loss.json", dict(
        tokenCount=N, offsets=[int(x) for x in offsets], lengths=[int(x) for x in lengths],
        maxLength=Tmax, constantNormalizer=constant,
        logp=f32list(logp), oldLogp=f32list(old), refLogp=f32list(ref), rolloutLogp=f32list(roll),
        mask=f32list(mask), rewards=f32list(rewards), advantages=f32list(adv), cases=cases))


# ---------------------------------------------------------------- AdamW
def make_adamw(rng):
    n = 37
    no_decay = (10, 20)  # a "norm weights" range in its own param group with weight_decay = 0
    p0 = rng.normal(size=n).astype(np.float32)
    grads = [rng.normal(scale=s, size=n).astype(np.float32) for s in (1.0, 0.1, 3.0)]
    lrs = [1e-3, 5e-4, 2e-4]
    cfg = dict(beta1=0.9, beta2=0.999, eps=1e-8, weightDecay=0.01)
    chunks = [(0, no_decay[0]), no_decay, (no_decay[1], n)]
    params = [torch.nn.Parameter(torch.tensor(p0[a:b])) for a, b in chunks]
    opt = torch.optim.AdamW(
        [dict(params=[params[0], params[2]], weight_decay=cfg["weightDecay"]),
         dict(params=[params[1]], weight_decay=0.0)],
        lr=lrs[0], betas=(cfg["beta1"], cfg["beta2"]), eps=cfg["eps"], foreach=False)
    # Same update with everything decayed (torch's default single group).
    q = torch.nn.Parameter(torch.tensor(p0))
    opt_all = torch.optim.AdamW([q], lr=lrs[0], betas=(cfg["beta1"], cfg["beta2"]), eps=cfg["eps"],
                                weight_decay=cfg["weightDecay"], foreach=False)
    after = []
    after_all = []
    for k, g in enumerate(grads):
        for grp in opt.param_groups + opt_all.param_groups:
            grp["lr"] = lrs[k]
        for (a, b), p in zip(chunks, params):
            p.grad = torch.tensor(g[a:b])
        q.grad = torch.tensor(g)
        opt.step()
        opt_all.step()
        after.append(f32list(torch.cat([p.detach() for p in params]).numpy()))
        after_all.append(f32list(q.detach().numpy()))
    st = opt_all.state[q]
    write("adamw.json", dict(
        parameterCount=n, noDecayRange=list(no_decay), config=cfg, lrs=lrs, params0=f32list(p0),
        grads=[f32list(g) for g in grads], paramsAfterStep=after, paramsAfterStepAllDecay=after_all,
        expAvg=f32list(st["exp_avg"].numpy()), expAvgSq=f32list(st["exp_avg_sq"].numpy()),
        step=int(st["step"].item())))


# ---------------------------------------------------------------- clip_grad_norm_
def make_clip(rng):
    cases = []
    for n, scale, max_norm in ((50, 3.0, 1.0), (50, 0.01, 100.0), (50, 0.2, 1.0)):  # coef ≪ 1, none, ≈ 0.7
        g = rng.normal(scale=scale, size=n).astype(np.float32)
        p = torch.nn.Parameter(torch.zeros(n))
        p.grad = torch.tensor(g)
        norm = torch.nn.utils.clip_grad_norm_([p], max_norm)
        # float64 norm as well: the Swift code accumulates in Double.
        cases.append(dict(grads=f32list(g), maxNorm=max_norm, torchNorm=float(norm.item()),
                          norm64=float(np.sqrt(np.sum(g.astype(np.float64) ** 2))),
                          clipped=f32list(p.grad.numpy())))
    write("clip_grad_norm.json", dict(cases=cases))


# ---------------------------------------------------------------- schedules
def warmup_steps(total, ratio):
    """transformers' own TrainingArguments.get_warmup_steps (warmup_steps < 1 is a ratio: ceil(total * ratio)),
    called unbound: constructing TrainingArguments would need accelerate."""
    from types import SimpleNamespace
    from transformers import TrainingArguments
    return TrainingArguments.get_warmup_steps(SimpleNamespace(warmup_steps=ratio), total)


def make_schedules():
    from transformers import (get_constant_schedule_with_warmup, get_cosine_schedule_with_warmup,
                              get_cosine_with_min_lr_schedule_with_warmup, get_linear_schedule_with_warmup)
    base = 3e-6
    cases = []
    for total, ratio in ((30, 0.1), (10, 0.1), (57, 0.0), (25, 0.15)):
        W = warmup_steps(total, ratio)
        makers = {
            "cosine": lambda o: get_cosine_schedule_with_warmup(o, W, total),
            "cosine_min0.1": lambda o: get_cosine_with_min_lr_schedule_with_warmup(o, W, total, min_lr_rate=0.1),
            "linear": lambda o: get_linear_schedule_with_warmup(o, W, total),
            "constant": lambda o: get_constant_schedule_with_warmup(o, W),
        }
        for kind, make in makers.items():
            p = torch.nn.Parameter(torch.zeros(1))
            opt = torch.optim.SGD([p], lr=base)
            sched = make(opt)
            lrs = []
            for _ in range(total + 1):  # lr used by optimizer step k = 0 … total
                lrs.append(float(opt.param_groups[0]["lr"]))
                opt.step()
                sched.step()
            cases.append(dict(kind=kind, totalSteps=total, warmupRatio=ratio, warmupSteps=W, baseLR=base, lrs=lrs))
    write("schedules.json", dict(cases=cases))


def main():
    torch.manual_seed(0)
    rng = np.random.default_rng(20260201)
    make_advantages(rng)
    make_policy_loss(rng)
    make_adamw(rng)
    make_clip(rng)
    make_schedules()
    print("wrote", sorted(os.listdir(OUT)))


if __name__ == "__main__":
    main()
