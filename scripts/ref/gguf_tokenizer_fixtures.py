#!/usr/bin/env python3
"""Tokenizer-from-GGUF fixtures: what transformers' GGUF tokenizer (`AutoTokenizer.from_pretrained(dir,
gguf_file=...)`, transformers 5.x) gives, for the Swift `Tokenizer(gguf:)` tests.

Writes Tests/Fixtures/gguf-tokenizer/:
  tiny-{qwen2,llama-bpe,smollm}.gguf  tiny byte-level BPE vocabularies (control, user-defined and mislabelled tokens,
                                      a non-alphabet token, the first merges of SmolLM2's vocabulary restricted to
                                      them) with each pre-tokenizer; llama-bpe also with add_bos/add_eos and a BOS
                                      that is an ordinary token
  tiny-bad-pre.gguf, tiny-spm.gguf    an unknown tokenizer.ggml.pre and a sentencepiece ("llama") model: errors
  tiny.json                           per tiny file: ids of the hand texts with add_special_tokens False / True, the
                                      decode strings, bos/eos ids, added tokens of transformers' backend tokenizer
  real.json                           per real GGUF in $RLIF_MODELS: for every GSM8K test question and answer the
                                      FNV-1a-64 of the ids (4 bytes LE each) and the count (full ids for the first 20
                                      and for the hand texts), tokenizer(text) with its default add_special_tokens

Run: python3 scripts/ref/gguf_tokenizer_fixtures.py [--models /work/models] [--shared ../shared/data] [--skip-real]
"""
import argparse, json, os, sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
OUT = os.path.join(REPO, "Tests", "Fixtures", "gguf-tokenizer")
sys.path.insert(0, HERE)
from tokenizer_fixtures import HAND, fnv, ids_bytes  # noqa: E402

EXTRA = ["<s>hello</s>", "<think>x</think> <think>", "<ctl x> and <|fake|>", "\u2581tab \u2581tab",
         "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n", "<|endoftext|><s>", "12345 678"]
TEMPLATE = ("{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + "
            "'<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")


def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("\xa1"), ord("\xac") + 1)) + list(range(ord("\xae"), ord("\xff") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs]))


def tiny_vocab(smollm_path):
    from gguf import GGUFReader
    r = GGUFReader(smollm_path)
    f = r.fields["tokenizer.ggml.merges"]
    smol_merges = [bytes(f.parts[i]).decode("utf-8") for i in f.data]
    # ids: 3 control tokens, the 256 byte characters, merge results, then odd tokens.
    tokens = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    types = [3, 3, 3]
    for b in range(256):
        tokens.append(bytes_to_unicode()[b]); types.append(1)
    have = set(tokens)
    merges = []
    for m in smol_merges:
        a, b = m.split(" ")
        if a in have and b in have and a + b not in have:
            merges.append(m); tokens.append(a + b); types.append(1); have.add(a + b)
            if len(merges) == 300:
                break
    for t, ty in [("<think>", 4), ("</think>", 4), ("<ctl x>", 3), ("\u2581tab", 1), ("<s>", 1), ("</s>", 3),
                  ("<|fake|>", 1)]:
        tokens.append(t); types.append(ty)
    return tokens, types, merges


def write_tiny(path, tokens, types, merges, pre, model="gpt2", bos=0, eos=2, add_bos=False, add_eos=False):
    import gguf
    w = gguf.GGUFWriter(path, "llama")
    w.add_context_length(64); w.add_embedding_length(8); w.add_block_count(1); w.add_feed_forward_length(16)
    w.add_head_count(2); w.add_head_count_kv(2); w.add_layer_norm_rms_eps(1e-5); w.add_vocab_size(len(tokens))
    w.add_tokenizer_model(model)
    if pre is not None:
        w.add_tokenizer_pre(pre)
    w.add_token_list(tokens); w.add_token_types(types); w.add_token_merges(merges)
    w.add_bos_token_id(bos); w.add_eos_token_id(eos); w.add_pad_token_id(0)
    w.add_add_bos_token(add_bos); w.add_add_eos_token(add_eos)
    w.add_chat_template(TEMPLATE)
    w.write_header_to_file(); w.write_kv_data_to_file(); w.write_tensors_to_file(); w.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default=os.environ.get("RLIF_MODELS", "/work/models"))
    ap.add_argument("--shared", default=os.environ.get("RLIF_SHARED_DATA", os.path.join(REPO, "..", "shared", "data")))
    ap.add_argument("--skip-real", action="store_true")
    args = ap.parse_args()
    import transformers
    from transformers import AutoTokenizer
    os.makedirs(OUT, exist_ok=True)

    tokens, types, merges = tiny_vocab(os.path.join(args.models, "smollm2-135m-instruct.gguf"))
    s_id = tokens.index("<s>")
    variants = [("tiny-qwen2", dict(pre="qwen2")),
                ("tiny-llama-bpe", dict(pre="llama-bpe", bos=s_id, eos=2, add_bos=True, add_eos=True)),
                ("tiny-smollm", dict(pre="smollm", bos=1))]
    texts = HAND + EXTRA
    tiny = {"transformers": transformers.__version__, "texts": texts, "files": {}}
    for name, kw in variants:
        write_tiny(os.path.join(OUT, name + ".gguf"), tokens, types, merges, **kw)
        tok = AutoTokenizer.from_pretrained(OUT, gguf_file=name + ".gguf")
        backend = json.loads(tok.backend_tokenizer.to_str())
        plain = [list(map(int, tok(t, add_special_tokens=False)["input_ids"])) for t in texts]
        special = [list(map(int, tok(t, add_special_tokens=True)["input_ids"])) for t in texts]
        tiny["files"][name] = {
            "ids": plain, "ids_special": special, "decode": [tok.decode(i, skip_special_tokens=False) for i in special],
            "bos_token_id": tok.bos_token_id, "eos_token_id": tok.eos_token_id,
            "added_tokens": [[a["id"], a["content"], a["special"]] for a in backend["added_tokens"]],
            "chat_template": tok.chat_template, "vocab_size": len(tok)}
        print(name, "added:", tiny["files"][name]["added_tokens"], "bos/eos", tok.bos_token_id, tok.eos_token_id,
              "first:", special[EXTRA and len(HAND)])
    write_tiny(os.path.join(OUT, "tiny-bad-pre.gguf"), tokens, types, merges, pre="tekken-unknown")
    write_tiny(os.path.join(OUT, "tiny-spm.gguf"), tokens, types, merges, pre=None, model="llama")
    with open(os.path.join(OUT, "tiny.json"), "w") as f:
        json.dump(tiny, f, indent=1, ensure_ascii=False)
        f.write("\n")
    if args.skip_real:
        return

    gsm = []
    with open(os.path.join(args.shared, "gsm8k", "test.jsonl")) as f:
        for line in f:
            o = json.loads(line)
            gsm += [o["question"], o["answer"]]
    real = {"transformers": transformers.__version__, "gsm8k_texts": len(gsm), "hand_texts": texts, "models": {}}
    for file in ["smollm2-135m-instruct.gguf", "qwen2.5-coder-0.5b-instruct.gguf", "qwen2.5-coder-1.5b-instruct.gguf"]:
        tok = AutoTokenizer.from_pretrained(args.models, gguf_file=file)
        ids = [tok(t)["input_ids"] for t in gsm]
        real["models"][file] = {
            "hashes": " ".join(fnv(ids_bytes(i)) for i in ids), "counts": [len(i) for i in ids],
            "first_ids": ids[:20], "hand_ids": [tok(t)["input_ids"] for t in texts],
            "bos_token_id": tok.bos_token_id, "eos_token_id": tok.eos_token_id, "vocab_size": len(tok)}
        print(file, sum(len(i) for i in ids), "tokens")
    with open(os.path.join(OUT, "real.json"), "w") as f:
        json.dump(real, f, separators=(",", ":"), ensure_ascii=False)
        f.write("\n")


if __name__ == "__main__":
    main()
