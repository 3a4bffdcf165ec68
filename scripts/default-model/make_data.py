#!/usr/bin/env python3
"""Generates the embedded default's data: arithmetic word problems with worked solutions ending in \\boxed{}.

Writes (seeded, re-runnable, byte-identical output):
  Sources/rlif/Resources/default/sft.jsonl       {"prompt", "response"}  worked solutions for `rlif sft`
                                                 (not committed: this script regenerates it byte for byte)
  Sources/rlif/Resources/default/train.jsonl     {"prompt", "answer"}    INTUITOR training prompts (answers only reported)
  Sources/rlif/Resources/default/heldout.jsonl   {"prompt", "answer"}    held-out evaluation prompts
and trains a small byte-level BPE tokenizer on the SFT text with HF `tokenizers`:
  Sources/rlif/Resources/default/model/tokenizer.json

Problem families (one or two steps, small numbers) are shared between splits but the held-out set uses
disjoint (template, numbers) combinations, so held-out accuracy measures generalisation, not recall.
"""
import json, os, random, sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "Sources", "rlif", "Resources", "default")
MODEL_DIR = os.path.join(OUT, "model")

NAMES = ["Tom", "Anna", "Ben", "Lily", "Sam", "Mia", "Leo", "Zoe", "Max", "Ella", "Jack", "Ruby"]
ITEMS = ["apples", "books", "coins", "marbles", "stickers", "pencils", "cookies", "cards", "shells", "stones"]


def problem(rng):
    n, item = rng.choice(NAMES), rng.choice(ITEMS)
    kind = rng.randrange(6)
    if kind == 0:
        a, b = rng.randint(2, 40), rng.randint(2, 40)
        q = f"{n} has {a} {item}. {n} gets {b} more {item}. How many {item} does {n} have now?"
        s = f"{n} starts with {a} {item} and gets {b} more. {a} + {b} = {a + b}."
        ans = a + b
    elif kind == 1:
        a = rng.randint(10, 60); b = rng.randint(1, a - 1)
        q = f"{n} has {a} {item} and gives away {b} of them. How many {item} are left?"
        s = f"{n} has {a} {item} and gives away {b}. {a} - {b} = {a - b}."
        ans = a - b
    elif kind == 2:
        a, b = rng.randint(2, 12), rng.randint(2, 12)
        q = f"There are {a} boxes with {b} {item} in each box. How many {item} are there in total?"
        s = f"Each of the {a} boxes has {b} {item}. {a} * {b} = {a * b}."
        ans = a * b
    elif kind == 3:
        b, c = rng.randint(2, 9), rng.randint(2, 12)
        a = b * c
        q = f"{n} shares {a} {item} equally among {b} friends. How many {item} does each friend get?"
        s = f"{a} {item} shared among {b} friends. {a} / {b} = {c}."
        ans = c
    elif kind == 4:
        a, b, c = rng.randint(2, 30), rng.randint(2, 30), rng.randint(1, 20)
        c = min(c, a + b - 1)
        q = f"{n} has {a} {item}, finds {b} more, then loses {c}. How many {item} does {n} have?"
        s = f"First {a} + {b} = {a + b}. Then {a + b} - {c} = {a + b - c}."
        ans = a + b - c
    else:
        a, b, c = rng.randint(2, 9), rng.randint(2, 9), rng.randint(1, 20)
        q = f"{n} buys {a} packs of {item} with {b} in each pack and already had {c}. How many {item} does {n} have?"
        s = f"The packs hold {a} * {b} = {a * b}. Then {a * b} + {c} = {a * b + c}."
        ans = a * b + c
    return kind, q, s, ans


def main():
    rng = random.Random(20261201)
    os.makedirs(OUT, exist_ok=True)
    seen, sft, train, held = set(), [], [], []
    while len(held) < 200 or len(sft) < 12000 or len(train) < 2000:
        kind, q, s, ans = problem(rng)
        if q in seen:
            continue
        seen.add(q)
        prompt = f"Question: {q}\nAnswer:"
        response = f" {s} The answer is \\boxed{{{ans}}}."
        # Route by a hash of the question so the splits are disjoint and stable.
        h = hash_str(q) % 100
        if h < 2 and len(held) < 200:
            held.append({"prompt": prompt, "answer": str(ans)})
        elif h < 12 and len(train) < 2000:
            train.append({"prompt": prompt, "answer": str(ans)})
        elif h >= 12 and len(sft) < 12000:
            sft.append({"prompt": prompt, "response": response})
    for name, rows in [("sft.jsonl", sft), ("train.jsonl", train), ("heldout.jsonl", held)]:
        with open(os.path.join(OUT, name), "w") as f:
            for r in rows:
                f.write(json.dumps(r, ensure_ascii=False) + "\n")
    train_tokenizer([r["prompt"] + r["response"] for r in sft])
    print(f"wrote {len(sft)} sft, {len(train)} train, {len(held)} held-out rows and tokenizer.json to {OUT}")


def hash_str(s):
    # FNV-1a 32-bit: stable across Python runs (unlike hash()).
    h = 0x811C9DC5
    for b in s.encode():
        h = ((h ^ b) * 0x01000193) & 0xFFFFFFFF
    return h


def train_tokenizer(texts):
    """A 512-token byte-level BPE with Qwen2's pre-tokenizer (its split regex isolates single digits, so the
    model learns digit-wise arithmetic instead of one token per number), trained by HF `tokenizers`."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
    qwen_split = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                  r"|\s*[\r\n]+|\s+(?!\S)|\s+")
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(qwen_split), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=512, min_frequency=2, special_tokens=["<|endoftext|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(texts, trainer=trainer)
    os.makedirs(MODEL_DIR, exist_ok=True)
    tok.save(os.path.join(MODEL_DIR, "tokenizer.json"))


if __name__ == "__main__":
    sys.exit(main())
