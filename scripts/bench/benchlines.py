"""The `BENCH key=value ...` lines `rlif bench` and the reference scripts print, and the median/range summary the
alternating benchmark scripts report (run-model-bench.sh, compare-builds). One copy, imported by both."""
import statistics


def parse(path):
    """{name: {key: value}} for every BENCH line of one output file (the last line of a name wins)."""
    r = {}
    for line in open(path):
        if line.startswith("BENCH "):
            kv = dict(x.split("=", 1) for x in line.split()[1:] if "=" in x)
            r[kv["name"]] = kv
    return r


def span(xs, f="{:.2f}"):
    """'median M (range lo–hi)' of a list of numbers."""
    return f"median {f.format(statistics.median(xs))} (range {f.format(min(xs))}–{f.format(max(xs))})"


# The figure that measures each part: throughput for the model workloads, GFLOP/s for products, GB/s for AdamW.
FIGURE = {"forward": "tokens_per_s", "fwd+bwd": "tokens_per_s", "decode": "tokens_per_s", "generate": "tokens_per_s",
          "sgemm_roof": "gflops", "adamw": "gbs"}


def figure(name):
    """The key whose value measures part `name` (higher is better), or None for parts with no single figure."""
    if name in FIGURE:
        return FIGURE[name]
    if name.startswith("gemm_"):
        return "gflops"
    return None
