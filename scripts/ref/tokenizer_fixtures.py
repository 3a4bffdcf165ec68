#!/usr/bin/env python3
"""Expected token ids / decode strings from Hugging Face `tokenizers` (0.23) for the Swift Tokenizer tests.

Writes Tests/Fixtures/tokenizer/{qwen,stories260K}.json. Deterministic (seeded), re-run to regenerate:
    python3 scripts/ref/tokenizer_fixtures.py [--shared ../shared/data]

Per tokenizer file:
  hand:    hand-written edge cases (Unicode, NFC, whitespace, contractions, special tokens) with full ids for
           add_special_tokens False/True, decode strings (skip_special_tokens False/True), and the pieces of
           normalizer + pre_tokenizer alone (pre_tokenize_str; no added-token splitting), to check the split
           scanner directly (BPE can hide split differences).
  decode:  seeded random id sequences (partial UTF-8, specials in the middle) and their decode strings.
  scanners.json: pieces of `Split(Regex(p), "isolated")` for the Qwen2, Llama-3 and GPT-2 pre-tokenizer
           regexes on the hand texts and the first 100 GSM8K test texts (checks the Swift hand-written scanners).
  gsm8k:   for test.jsonl (all questions and answers) and every 15th line of train.jsonl: per text the FNV-1a-64
           of the text's UTF-8, of the ids (each id as 4 little-endian bytes), and of the decode string's UTF-8,
           plus the token count; full ids for the first 50 texts. The texts themselves are re-read from
           ../shared by the tests (not copied into the repository).
"""
import argparse, json, os, random, sys
from tokenizers import Tokenizer

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
OUT = os.path.join(REPO, "Tests", "Fixtures", "tokenizer")

FNV_OFFSET, FNV_PRIME, MASK = 0xcbf29ce484222325, 0x100000001b3, (1 << 64) - 1


def fnv(data: bytes) -> str:
    h = FNV_OFFSET
    for b in data:
        h = ((h ^ b) * FNV_PRIME) & MASK
    return f"{h:016x}"


def ids_bytes(ids):
    return b"".join(int(i).to_bytes(4, "little") for i in ids)


HAND = [
    "", " ", "  ", "\t", "\n", "\r\n", "\n\n\n", " \n ", "\t\t\n", "a  \n  b", "x \r\n\r\n y", "trailing   ",
    "   leading", "a\tb\t\tc", "line1\nline2\r\nline3\rline4",
    "Hello world", "Hello, World! How are you?", "Once upon a time", "Once upon a time, there was a little girl.",
    "I'm you're he's they've we'll she'd it's DON'T I'M YOU'RE HE'S THEY'VE WE'LL SHE'D 'Sup 'x",
    "'s's's ''s '", "l'ſ l'S", "it'ſup x'ſx", "WE'LLx THEY'REx I'Dx",
    "0", "12", "123", "1234567", "3.14159", "$1,234.56", "1/2 + 3/4 = 5/4", "x^2+y^2=z^2", "10%",
    "2024-01-01T12:00:00Z", "٣٤٥ ४५६ ①②③ ½",
    "\\boxed{\\frac{1}{2}}", "The answer is $\\boxed{42}$.", "#### 18", "<<16-3-4=9>>9",
    "def f(x):\n    return x * 2\n\n\nprint(f(3))\n", "if (a && b) { c++; }",
    "café", "cafe\u0301", "e\u0301\u0302", "\u212b", "A\u030a", "\u1100\u1161\u11a8", "한국어 텍스트", "ﬁ ﬂ",
    "日本語のテキスト", "中文文本，标点。", "Ελληνικά", "Русский текст", "עברית", "العربية", "हिन्दी",
    "ไทย", "Tiếng Việt", "𝕏𝕐ℤ", "𝟘𝟙",
    "😀", "👍🏽", "👨‍👩‍👧‍👦", "🇺🇸🇫🇷", "❤️", "a😀b", " 😀 😀😀",
    "\u00a0", "a\u00a0b", "\u3000x", "a\u2028b", "a\u0085b", "zero\u200bwidth", "\u200d", "\ufeffbom",
    "\u000b\u000c", "\x00\x01\x7f",
    "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n",
    "<|im_start|>system\nYou are helpful.<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n",
    "<|endoftext|>", "a<|endoftext|>b", "<|im_end|><|im_end|>", "<|im_start", "<|im_end|x", "< |im_end|>",
    "<s>", "</s>", "<unk>", "<s>Once upon", "Once <s> upon a</s>", "<s> <s>",
    "▁", "▁▁x", "<0x41>",
    "Mixed: café 日本 😀 123 it's\n\tdone.",
]


SCANNER_PATTERNS = {
    "qwen2": r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+",
    "llama3": r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+",
    "gpt2": r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+",
}

SCANNER_EXTRA = ["1234567 89 0", " 12 345", "x  1", "word's WORD'S it'S", "a\t\tb", "!!!\n\n", " !!! x", "\u00a0\u00a0a"]


def scanner_fixture(texts):
    from tokenizers import Regex, pre_tokenizers
    out = {"texts": texts, "patterns": {}}
    for name, pat in SCANNER_PATTERNS.items():
        split = pre_tokenizers.Split(Regex(pat), "isolated")
        out["patterns"][name] = {"pattern": pat, "pieces": [[p for p, _ in split.pre_tokenize_str(t)] for t in texts]}
    return out


def gsm8k_texts(path, stride):
    texts = []
    with open(path, encoding="utf-8") as f:
        for i, line in enumerate(f):
            if i % stride:
                continue
            row = json.loads(line)
            texts.append(row["question"])
            texts.append(row["answer"])
    return texts


def summarise(tok, texts, full):
    encs = tok.encode_batch(texts, add_special_tokens=False)
    out = {"count": len(texts), "text_fnv": [], "ids_fnv": [], "decoded_fnv": [], "n_tokens": [], "full": []}
    for i, (t, e) in enumerate(zip(texts, encs)):
        out["text_fnv"].append(fnv(t.encode("utf-8")))
        out["ids_fnv"].append(fnv(ids_bytes(e.ids)))
        out["decoded_fnv"].append(fnv(tok.decode(e.ids, skip_special_tokens=False).encode("utf-8")))
        out["n_tokens"].append(len(e.ids))
        if i < full:
            out["full"].append(e.ids)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shared", default=os.path.join(os.path.dirname(REPO), "shared", "data"))
    args = ap.parse_args()
    os.makedirs(OUT, exist_ok=True)
    test = gsm8k_texts(os.path.join(args.shared, "gsm8k", "test.jsonl"), 1)
    train = gsm8k_texts(os.path.join(args.shared, "gsm8k", "train.jsonl"), 15)
    path = os.path.join(OUT, "scanners.json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump(scanner_fixture(HAND + SCANNER_EXTRA + test[:100]), f, ensure_ascii=True, separators=(",", ":"))
        f.write("\n")
    print(f"wrote {path} ({os.path.getsize(path)} bytes)", file=sys.stderr)
    for name, rel in [("qwen", "qwen-tokenizer/tokenizer.json"), ("stories260K", "stories260K/tokenizer.json")]:
        tok = Tokenizer.from_file(os.path.join(args.shared, rel))
        hand = []
        for t in HAND:
            ids = tok.encode(t, add_special_tokens=False).ids
            ids_sp = tok.encode(t, add_special_tokens=True).ids
            norm = tok.normalizer.normalize_str(t) if tok.normalizer is not None else t
            pieces = [p for p, _ in tok.pre_tokenizer.pre_tokenize_str(norm)]
            hand.append({"text": t, "ids": ids, "ids_special": ids_sp,
                         "decoded": tok.decode(ids, skip_special_tokens=False),
                         "decoded_skip": tok.decode(ids_sp, skip_special_tokens=True),
                         "pieces": pieces})
        rng = random.Random(1234)
        n = tok.get_vocab_size(with_added_tokens=True)
        specials = [tok.token_to_id(s) for s in ["<|im_start|>", "<|im_end|>", "<|endoftext|>", "<s>", "</s>", "<unk>"]]
        specials = [s for s in specials if s is not None]
        decode = []
        for k in range(40):
            ids = [rng.randrange(n) for _ in range(rng.randint(1, 12))]
            if k % 4 == 0:
                ids.insert(rng.randrange(len(ids) + 1), rng.choice(specials))
            decode.append({"ids": ids, "decoded": tok.decode(ids, skip_special_tokens=False),
                           "decoded_skip": tok.decode(ids, skip_special_tokens=True)})
        fixture = {
            "generator": "scripts/ref/tokenizer_fixtures.py",
            "tokenizers_version": __import__("tokenizers").__version__,
            "tokenizer": rel,
            "vocab_size": n,
            "hand": hand,
            "decode": decode,
            "gsm8k_test": summarise(tok, test, 50),
            "gsm8k_train_every15": summarise(tok, train, 0),
        }
        path = os.path.join(OUT, f"{name}.json")
        with open(path, "w", encoding="utf-8") as f:
            json.dump(fixture, f, ensure_ascii=True, separators=(",", ":"))
            f.write("\n")
        print(f"wrote {path} ({os.path.getsize(path)} bytes)", file=sys.stderr)


if __name__ == "__main__":
    main()
