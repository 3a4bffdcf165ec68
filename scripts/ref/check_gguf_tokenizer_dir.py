#!/usr/bin/env python3
"""Checks the tokenizer files `rlif convert` wrote (tokenizer.json, tokenizer_config.json) against the GGUF they came
from, both loaded by transformers: same ids on every GSM8K test question and answer (and a few edge cases), same
special tokens, same chat-template rendering. Exits 1 on any difference.

Run: python3 scripts/ref/check_gguf_tokenizer_dir.py OUT_DIR MODEL.gguf [--shared ../shared/data]
"""
import argparse, json, os, sys

ap = argparse.ArgumentParser()
ap.add_argument("dir")
ap.add_argument("gguf")
ap.add_argument("--shared", default=os.environ.get("RLIF_SHARED_DATA", os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "data")))
args = ap.parse_args()
from transformers import AutoTokenizer

converted = AutoTokenizer.from_pretrained(args.dir)
reference = AutoTokenizer.from_pretrained(os.path.dirname(os.path.abspath(args.gguf)), gguf_file=os.path.basename(args.gguf))
texts = []
with open(os.path.join(args.shared, "gsm8k", "test.jsonl")) as f:
    for line in f:
        o = json.loads(line)
        texts += [o["question"], o["answer"]]
texts += ["<|im_start|>user\nhi<|im_end|>\n", "caf\u00e9 cafe\u0301  \n\n 12345 \U0001F600", "<think>x</think>", ""]
bad = [t for t in texts if converted(t)["input_ids"] != reference(t)["input_ids"]]
specials = [(getattr(converted, k), getattr(reference, k)) for k in ("bos_token", "eos_token", "pad_token", "unk_token")]
msgs = [[{"role": "user", "content": "What is 2+2?"}],
        [{"role": "system", "content": "S"}, {"role": "user", "content": "What is 2+2?"}]]
render = [converted.apply_chat_template(m, tokenize=False, add_generation_prompt=True)
          == reference.apply_chat_template(m, tokenize=False, add_generation_prompt=True) for m in msgs]
print(f"{len(texts) - len(bad)}/{len(texts)} texts tokenize identically; special tokens {specials}; templates equal {render}")
sys.exit(0 if not bad and all(a == b for a, b in specials) and all(render) else 1)
