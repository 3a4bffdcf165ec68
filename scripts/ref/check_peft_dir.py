#!/usr/bin/env python3
"""Checks an rlif LoRA checkpoint against PEFT (dev tool, not run by CI).

Loads BASE with transformers, puts the adapter directory ADAPTER (an rlif LoRA run's checkpoint) on it with
`peft.PeftModel.from_pretrained`, and compares its logits on a fixed token sequence with those of MERGED (what
`rlif merge --base BASE --adapter ADAPTER --out MERGED` wrote), loaded with plain transformers. Prints the max
|difference| and exits non-zero above 1e-4. Also prints how far the adapter moves the logits from the base (so a
zero adapter, which would pass trivially, is visible).

Usage: python3 scripts/ref/check_peft_dir.py BASE ADAPTER MERGED
"""
import sys

import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM


def load(path):
    return AutoModelForCausalLM.from_pretrained(path, attn_implementation="eager", dtype=torch.float32).eval()


def main():
    base, adapter, merged = sys.argv[1:4]
    ids = torch.tensor([[151644, 872, 198, 3838, 374, 220, 17, 10, 17, 30, 151645, 198, 151644, 77091, 198]])
    ids = ids % load(merged).config.vocab_size
    with torch.no_grad():
        peft_model = PeftModel.from_pretrained(load(base), adapter)
        a = peft_model(input_ids=ids).logits[0]
        with peft_model.disable_adapter():
            b = peft_model(input_ids=ids).logits[0]
        m = load(merged)(input_ids=ids).logits[0]
    d = (a - m).abs().max().item()
    print(f"max |PEFT(base, adapter) - rlif merged| = {d:.3e}; adapter moves logits by up to {(a - b).abs().max().item():.3e}")
    sys.exit(0 if d <= 1e-4 else 1)


if __name__ == "__main__":
    main()
