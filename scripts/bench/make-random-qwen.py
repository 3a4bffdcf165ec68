#!/usr/bin/env python3
"""Random-weight Qwen2 models for benchmarks, F32 safetensors + a tokenizer.json, in a Hugging Face directory.

  make-random-qwen.py LAYERS OUT_DIR [TOKENIZER_JSON]
      the Qwen2.5-0.5B shape (hidden 896, 14 / 2 heads, head_dim 64, intermediate 4864, vocabulary 151,936,
      untied head) for memory measurements (docs/PERFORMANCE.md "Memory"); 24 layers = the real shape,
      630.2M parameters, 2.5 GB; 4 layers = 331.9M. The Qwen tokenizer as is.
  make-random-qwen.py small OUT_DIR [TOKENIZER_JSON]
      `rlif bench --shape small` (hidden 512, 8 layers, 8 / 2 heads, head_dim 64, intermediate 1536, vocabulary
      16,384, tied; 32.5M parameters) for scripts/bench/step-bench. The Qwen tokenizer cut to its first 16,383
      ids (merges kept only when both parts and the result survive) plus <|endoftext|> = 16383 as EOS, so every
      id the model can sample decodes and the prompts encode inside the model's vocabulary.
"""
import json
import shutil
import sys

import torch
from transformers import Qwen2Config, Qwen2ForCausalLM

SMALL_VOCAB = 16384


def cut_tokenizer(src, dst, vocab):
    """Qwen's byte-level BPE restricted to ids < vocab - 1, EOS at vocab - 1."""
    t = json.load(open(src))
    keep = {tok: i for tok, i in t["model"]["vocab"].items() if i < vocab - 1}
    t["model"]["vocab"] = keep
    t["model"]["merges"] = [m for m in t["model"]["merges"]
                            if m[0] in keep and m[1] in keep and (m[0] + m[1]) in keep]
    eos = next(a for a in t["added_tokens"] if a["content"] == "<|endoftext|>")
    eos["id"] = vocab - 1
    t["added_tokens"] = [eos]
    json.dump(t, open(dst, "w"), ensure_ascii=False)


def main():
    shape, out = sys.argv[1], sys.argv[2]
    tokenizer = sys.argv[3] if len(sys.argv) > 3 else "../shared/data/qwen-tokenizer/tokenizer.json"
    torch.manual_seed(0)
    if shape == "small":
        cfg = Qwen2Config(hidden_size=512, intermediate_size=1536, num_hidden_layers=8, num_attention_heads=8,
                          num_key_value_heads=2, head_dim=64, vocab_size=SMALL_VOCAB, max_position_embeddings=2048,
                          tie_word_embeddings=True, rms_norm_eps=1e-6, rope_theta=1000000.0,
                          eos_token_id=SMALL_VOCAB - 1, bos_token_id=SMALL_VOCAB - 1)
    else:
        cfg = Qwen2Config(hidden_size=896, num_hidden_layers=int(shape), num_attention_heads=14, num_key_value_heads=2,
                          intermediate_size=4864, vocab_size=151936, tie_word_embeddings=False,
                          max_position_embeddings=32768, rope_theta=1000000.0, rms_norm_eps=1e-6,
                          eos_token_id=151645, bos_token_id=151643)
    model = Qwen2ForCausalLM(cfg).to(torch.float32)
    model.save_pretrained(out, safe_serialization=True)
    if shape == "small":
        cut_tokenizer(tokenizer, out + "/tokenizer.json", SMALL_VOCAB)
    else:
        shutil.copy(tokenizer, out + "/tokenizer.json")
    print("parameters", sum(p.numel() for p in model.parameters()))


if __name__ == "__main__":
    main()
