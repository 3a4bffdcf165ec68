#!/usr/bin/env python3
"""Reference fixtures for the SafeTensors and Model modules (dev tool, not run by CI).

Writes, deterministically (seeded), under Tests/Fixtures/model/:
  safetensors-python.safetensors  tensors of every dtype written by safetensors.torch (+ conversion sources)

Usage: python3 scripts/ref/model_fixtures.py [--only safetensors|models|stories]
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


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", choices=["safetensors", "models", "stories"])
    args = ap.parse_args()
    os.makedirs(OUT, exist_ok=True)
    torch.manual_seed(0)
    if args.only in (None, "safetensors"):
        safetensors_fixture()


if __name__ == "__main__":
    main()
