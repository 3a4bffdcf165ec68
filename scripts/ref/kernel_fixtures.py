#!/usr/bin/env python3
"""Reference fixtures for Sources/Kernels (dev tool; not run by CI).

For every op: seeded float32 inputs, reference outputs computed in float64 from exactly those float32 values,
and gradients of a random upstream gradient via float64 autograd. Written with safetensors (F32 floats, I64
ints) to Tests/Fixtures/kernels/<op>.safetensors.  Re-running regenerates byte-identical files.

    python3 scripts/ref/kernel_fixtures.py
"""
import math
import os

import torch
from safetensors.torch import save_file

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "Tests", "Fixtures", "kernels")


def f32(t):
    return t.detach().to(torch.float32).contiguous()


def leaf(*shape, scale=1.0, gen):
    """float32 random values promoted to a float64 leaf (so the reference sees exactly the stored inputs)."""
    x = (torch.randn(*shape, generator=gen) * scale).to(torch.float32)
    return x.to(torch.float64).requires_grad_(True)


def save(name, tensors):
    out = {}
    for k, v in tensors.items():
        if v.dtype in (torch.int64, torch.int32):
            out[k] = v.to(torch.int64).contiguous()
        else:
            out[k] = f32(v)
    save_file(out, os.path.join(OUT, name + ".safetensors"), metadata={"generator": "scripts/ref/kernel_fixtures.py"})


def backward(y, gen):
    dy = torch.randn(*y.shape, generator=gen).to(torch.float32).to(torch.float64)
    y.backward(dy)
    return dy


def embedding(gen):
    n, c, v = 7, 13, 11
    table = leaf(v, c, gen=gen)
    tokens = torch.tensor([3, 0, 10, 3, 7, 3, 1], dtype=torch.int64)
    out = table[tokens]
    dout = backward(out, gen)
    save("embedding", dict(table=table, tokens=tokens, out=out, dOut=dout, dTable=table.grad))


def linear(gen):
    n, c, oc = 7, 13, 9
    x, w, b = leaf(n, c, gen=gen), leaf(oc, c, scale=0.3, gen=gen), leaf(oc, gen=gen)
    out = x @ w.T + b
    dout = backward(out, gen)
    save("linear", dict(inp=x, weight=w, bias=b, out=out, dOut=dout, dInp=x.grad, dWeight=w.grad, dBias=b.grad))


def rmsnorm(gen):
    n, c, eps = 7, 13, 1e-5
    x = leaf(n, c, gen=gen)
    w = (1 + 0.1 * torch.randn(c, generator=gen)).to(torch.float32).to(torch.float64).requires_grad_(True)
    rstd = torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)
    out = x * rstd * w
    dout = backward(out, gen)
    save("rmsnorm", dict(inp=x, weight=w, eps=torch.tensor([eps]), out=out, rstd=rstd.squeeze(-1),
                         dOut=dout, dInp=x.grad, dWeight=w.grad))


def rope_case(prefix, n, h, d, positions, theta, gen, res):
    x = leaf(n, h, d, gen=gen)
    pos = torch.tensor(positions, dtype=torch.int64)
    inv_freq = 1.0 / (theta ** (torch.arange(0, d, 2, dtype=torch.float64) / d))
    ang = pos.to(torch.float64)[:, None] * inv_freq[None, :]          # (N, D/2)
    cos = torch.cat([ang.cos(), ang.cos()], -1)[:, None, :]          # HF: emb = cat(freqs, freqs)
    sin = torch.cat([ang.sin(), ang.sin()], -1)[:, None, :]
    x1, x2 = x[..., : d // 2], x[..., d // 2:]
    rot = torch.cat([-x2, x1], -1)                                    # rotate_half
    out = x * cos + rot * sin
    dout = backward(out, gen)
    res.update({prefix + "x": x, prefix + "positions": pos, prefix + "out": out, prefix + "dOut": dout,
                prefix + "dx": x.grad, prefix + "theta": torch.tensor([theta])})


def rope(gen):
    res = {}
    rope_case("a.", 7, 3, 16, [0, 1, 2, 5, 3, 40, 100], 10000.0, gen, res)   # D/2 = 8: SIMD lanes
    rope_case("b.", 5, 2, 12, [0, 7, 1, 63, 2], 1_000_000.0, gen, res)     # D/2 = 6: scalar tail
    save("rope", res)


def swiglu(gen):
    n, f = 7, 13
    g = leaf(n, f, scale=3.0, gen=gen)
    with torch.no_grad():
        g.view(-1)[:4] = torch.tensor([-100.0, -30.0, 30.0, 95.0], dtype=torch.float64)  # saturated sigmoid
    u = leaf(n, f, gen=gen)
    out = torch.nn.functional.silu(g) * u
    dout = backward(out, gen)
    save("swiglu", dict(gate=g, up=u, out=out, dOut=dout, dGate=g.grad, dUp=u.grad))


def attention_ref(q, k, v, starts, nh, nkv, hd):
    """Causal GQA over packed sequences, float64, plain masked softmax."""
    group = nh // nkv
    outs, lses = [], []
    for b in range(len(starts) - 1):
        s0, s1 = starts[b], starts[b + 1]
        t = s1 - s0
        qb = q[s0:s1].permute(1, 0, 2)                                 # (NH, T, HD)
        kb = k[s0:s1].permute(1, 0, 2).repeat_interleave(group, 0)     # (NH, T, HD)
        vb = v[s0:s1].permute(1, 0, 2).repeat_interleave(group, 0)
        s = qb @ kb.transpose(1, 2) / math.sqrt(hd)
        mask = torch.ones(t, t, dtype=torch.bool).tril()
        s = s.masked_fill(~mask, float("-inf"))
        lse = torch.logsumexp(s, -1)                                   # (NH, T)
        p = torch.exp(s - lse[..., None])
        outs.append((p @ vb).permute(1, 0, 2))
        lses.append(lse.T)
    return torch.cat(outs, 0), torch.cat(lses, 0)


def attention_case(prefix, lengths, nh, nkv, hd, gen, res):
    starts = [0]
    for L in lengths:
        starts.append(starts[-1] + L)
    n = starts[-1]
    q, k, v = leaf(n, nh, hd, gen=gen), leaf(n, nkv, hd, gen=gen), leaf(n, nkv, hd, gen=gen)
    out, lse = attention_ref(q, k, v, starts, nh, nkv, hd)
    dout = torch.randn(*out.shape, generator=gen).to(torch.float32).to(torch.float64)
    out.backward(dout)
    res.update({prefix + "q": q, prefix + "k": k, prefix + "v": v, prefix + "out": out, prefix + "lse": lse,
                prefix + "dOut": dout, prefix + "dQ": q.grad, prefix + "dK": k.grad, prefix + "dV": v.grad,
                prefix + "seqStarts": torch.tensor(starts, dtype=torch.int64),
                prefix + "dims": torch.tensor([nh, nkv, hd], dtype=torch.int64)})


def attention(gen):
    res = {}
    attention_case("a.", [1, 5, 9], 4, 2, 8, gen, res)     # the brief's small case
    attention_case("b.", [33, 2, 70], 4, 2, 12, gen, res)  # long enough for the BLAS path, HD % 8 != 0
    attention_case("c.", [4, 20], 2, 2, 16, gen, res)      # multi-head (no sharing)
    attention_case("d.", [17, 3], 3, 1, 8, gen, res)       # multi-query (one kv head for 3 heads)
    save("attention", res)


def logits(gen):
    n, v, temp = 7, 13, 0.7
    z = leaf(n, v, scale=3.0, gen=gen)
    targets = torch.tensor([0, 12, 5, 5, 7, 1, 11], dtype=torch.int64)
    zt = z / temp
    lse = torch.logsumexp(zt, -1)
    logp = zt.gather(1, targets[:, None]).squeeze(1) - lse
    dlogp = backward(logp, gen)
    with torch.no_grad():
        z0 = z.detach()
        sc = torch.logsumexp(z0, -1) - z0.mean(-1) - math.log(v)
        p = torch.softmax(z0, -1)
        ent = -(p * torch.log_softmax(z0, -1)).sum(-1)
    save("logits", dict(logits=z, targets=targets, temperature=torch.tensor([temp]), logp=logp, lse=lse,
                        dLogp=dlogp, dLogits=z.grad, selfCertainty=sc, entropy=ent))


def cross_entropy(gen):
    n, v = 7, 13
    z = leaf(n, v, scale=2.0, gen=gen)
    targets = torch.tensor([4, -1, 0, 12, -1, 4, 9], dtype=torch.int64)
    lse = torch.logsumexp(z, -1)
    safe = targets.clamp(min=0)
    losses = torch.where(targets >= 0, lse - z.gather(1, safe[:, None]).squeeze(1), torch.zeros((), dtype=torch.float64))
    dl = backward(losses, gen)
    save("cross_entropy", dict(logits=z, targets=targets, losses=losses, lse=lse, dLosses=dl, dLogits=z.grad))


def lm_head(gen):
    """The fused LM head (lmHeadForward/Backward): logits z = h·Wᵀ never leave this function in rlif. V = 37 so
    the Swift test's chunks (5, 8, 16) do not divide it; rows with target −1 have logp 0 and no gradient."""
    n, c, v, temp = 6, 16, 37, 0.7
    h = leaf(n, c, gen=gen)
    w = leaf(v, c, scale=0.6, gen=gen)
    targets = torch.tensor([3, 36, -1, 0, 17, 17], dtype=torch.int64)
    z = h @ w.T
    lse = torch.logsumexp(z / temp, -1)
    safe = targets.clamp(min=0)
    logp = torch.where(targets >= 0, (z / temp).gather(1, safe[:, None]).squeeze(1) - lse,
                       torch.zeros((), dtype=torch.float64))
    dlogp = backward(logp, gen)
    with torch.no_grad():
        z0 = z.detach()
        sc = torch.logsumexp(z0, -1) - z0.mean(-1) - math.log(v)
        ent = -(torch.softmax(z0, -1) * torch.log_softmax(z0, -1)).sum(-1)
        # Cross-entropy of the same rows (T = 1): loss = −logp at T = 1.
        ce = torch.where(targets >= 0, torch.logsumexp(z0, -1) - z0.gather(1, safe[:, None]).squeeze(1),
                         torch.zeros((), dtype=torch.float64))
    save("lm_head", dict(inp=h, weight=w, targets=targets, temperature=torch.tensor([temp]), logp=logp, lse=lse,
                         dLogp=dlogp, dInp=h.grad, dWeight=w.grad, selfCertainty=sc, entropy=ent, crossEntropy=ce))


def main():
    os.makedirs(OUT, exist_ok=True)
    torch.manual_seed(0)
    for i, fn in enumerate([embedding, linear, rmsnorm, rope, swiglu, attention, logits, cross_entropy, lm_head]):
        gen = torch.Generator().manual_seed(1234 + i)   # one stream per op: adding an op does not shift others
        fn(gen)
    print("wrote", sorted(os.listdir(OUT)))


if __name__ == "__main__":
    main()
