#!/usr/bin/env python3
"""A random-weight model of the Qwen2.5-0.5B shape (hidden 896, 14 / 2 heads, head_dim 64, intermediate 4864,
vocabulary 151,936, untied head), F32 safetensors + the Qwen tokenizer, for memory measurements
(docs/PERFORMANCE.md "Memory"). Usage: make-random-qwen.py LAYERS OUT_DIR [TOKENIZER_JSON]
(24 layers = the real shape, 630.2M parameters, 2.5 GB; 4 layers = 331.9M)."""
import shutil
import sys

import torch
from transformers import Qwen2Config, Qwen2ForCausalLM

layers, out = int(sys.argv[1]), sys.argv[2]
tokenizer = sys.argv[3] if len(sys.argv) > 3 else "../shared/data/qwen-tokenizer/tokenizer.json"
cfg = Qwen2Config(hidden_size=896, num_hidden_layers=layers, num_attention_heads=14, num_key_value_heads=2,
                  intermediate_size=4864, vocab_size=151936, tie_word_embeddings=False, max_position_embeddings=32768,
                  rope_theta=1000000.0, rms_norm_eps=1e-6, eos_token_id=151645, bos_token_id=151643)
torch.manual_seed(0)
model = Qwen2ForCausalLM(cfg).to(torch.float32)
model.save_pretrained(out, safe_serialization=True)
shutil.copy(tokenizer, out + "/tokenizer.json")
print("parameters", sum(p.numel() for p in model.parameters()))
