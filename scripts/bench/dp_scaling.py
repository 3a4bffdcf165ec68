#!/usr/bin/env python3
"""On-paper scaling of the data-parallel learner (docs/PERFORMANCE.md, "Data-parallel learner").

Per-step time on N learner nodes = compute / N + ring all-reduce of the trainable gradients:
    t(N) = T / (N * r) + 2 (N - 1) / N * 4 * P_trainable / (eta * B)
T tokens trained per step, r tokens/s one node trains (reference forward + policy forward/backward, measured),
P_trainable the reduced gradient's parameter count, B the link bandwidth, eta the fraction of it an all-reduce
reaches (measured over loopback TCP with 2 ranks: the --eta argument). Nothing here is measured on a cluster.

    python3 scripts/bench/dp_scaling.py [--eta 0.8] [--tokens 25600] [--node-cores 32]
"""
import argparse

# Parameter counts (Qwen2.5 shapes) and the LoRA r 16 adapters on all 7 linear layers: per layer r * sum(in + out).
MODELS = {
    # name: (total parameters, hidden, layers, kv dim, intermediate)
    "0.5B": (494e6, 896, 24, 128, 4864),
    "1.5B": (1.54e9, 1536, 28, 256, 8960),
    "7B": (7.62e9, 3584, 28, 512, 18944),
}


def lora_params(hidden, layers, kv, inter, r=16):
    per_layer = (2 * hidden) + (hidden + kv) * 2 + (2 * hidden) + 3 * (hidden + inter)
    return r * per_layer * layers


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--eta", type=float, default=0.8, help="all-reduce efficiency (fraction of link bandwidth)")
    ap.add_argument("--tokens", type=int, default=25600, help="tokens trained per step (8 prompts x G 8 x 400)")
    ap.add_argument("--rate-05b-2core", type=float, default=45.0,
                    help="measured tokens/s of the 0.5B learner on the 2-core host (reference + policy fwd/bwd)")
    ap.add_argument("--node-cores", type=int, default=32, help="cores per learner node (rate scales linearly)")
    a = ap.parse_args()
    ns = [1, 2, 4, 8, 16, 32]
    print(f"# {a.tokens} tokens/step, node = {a.node_cores} cores, all-reduce at {a.eta:.0%} of the link;")
    print("# cells: step time (parallel efficiency T1 / (N * TN)); 'pays up to' = largest N with efficiency >= 50%\n")
    print("| model | gradients | reduced | link | " + " | ".join(f"N={n}" for n in ns) + " | pays up to |")
    print("|---|---|---|---|" + "---|" * len(ns) + "---|")
    for name, (p, h, l, kv, inter) in MODELS.items():
        # Compute per token is ~proportional to the parameter count at these lengths.
        rate = a.rate_05b_2core * (a.node_cores / 2) * (494e6 / p)
        for kind, trainable in (("full", p), ("LoRA r16", lora_params(h, l, kv, inter))):
            for gbps in (10, 25, 100):
                bw = gbps / 8 * 1e9 * a.eta
                times = [a.tokens / (n * rate) + 2 * (n - 1) / n * 4 * trainable / bw for n in ns]
                eff = [times[0] / (n * t) for n, t in zip(ns, times)]
                pays = max(n for n, e in zip(ns, eff) if e >= 0.5)
                fmt = lambda t: f"{t:.0f} s" if t >= 10 else f"{t:.1f} s"
                cells = " | ".join(fmt(t) + ("" if n == 1 else f" ({e:.0%})") for n, t, e in zip(ns, times, eff))
                size = f"{4 * trainable / 1e9:.2f} GB" if trainable > 1e8 else f"{4 * trainable / 1e6:.0f} MB"
                print(f"| {name} | {kind} | {size} | {gbps} Gb/s | {cells} | {pays}{'+' if pays == ns[-1] else ''} |")

if __name__ == "__main__":
    main()
