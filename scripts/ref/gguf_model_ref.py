#!/usr/bin/env python3
"""Reference fixtures for GGUF → model (dev tool, not run by CI).

Writes under Tests/Fixtures/gguf/:
  tiny-llama.gguf, tiny-qwen2.gguf   tiny random models written the way llama.cpp's convert_hf_to_gguf.py does:
                                     llama.cpp tensor names, metadata keys, the llama q/k row permutation
                                     (`LlamaModel.permute`; none for qwen2), a mix of tensor types
                                     (Q8_0/Q5_0/Q4_1/Q5_1/Q4_0/F16/BF16/F32). tiny-llama is tied (no output.weight).
  tiny-llama.json, tiny-qwen2.json   {"sequences": [[id...]...], "logprobs": [[log p(t_i | t_<i), i >= 1]...]}
                                     from transformers loading the GGUF (`from_pretrained(dir, gguf_file=...)`,
                                     float64).
  real-<name>.json                   the same for the real models in $RLIF_MODELS (default ~/.cache/rlif/models),
                                     ids from transformers' tokenizer of the GGUF (--real; weights not committed).
  real-<name>-greedy.json            (--greedy) the first 3 GSM8K test questions as a user turn through the GGUF's
                                     chat template (transformers' apply_chat_template, add_generation_prompt=True):
                                     prompt ids, transformers' greedy 64-token continuation (float64, stops at
                                     eos), and per step the margin between the two largest logits.

Usage: python3 scripts/ref/gguf_model_ref.py [--tiny] [--real NAME ...] [--greedy NAME ...]
       python3 scripts/ref/gguf_model_ref.py --check-converted DIR --like FIXTURE.json
           loads an HF directory written by `rlif convert` with transformers (float64) and checks its per-token
           log-probs against the fixture (max |Δ| printed; exit 1 above 1e-3).
"""
import argparse
import json
import os
import sys

import numpy as np
import torch
import gguf
from gguf import GGMLQuantizationType as T

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "Tests", "Fixtures", "gguf")
MODELS = os.environ.get("RLIF_MODELS") or os.path.expanduser("~/.cache/rlif/models")

TEXTS = [
    "Janet's ducks lay 16 eggs per day. She eats three for breakfast every morning and bakes muffins for her friends every day with four.",
    "<|im_start|>user\nWhat is 12 * 7?<|im_end|>\n<|im_start|>assistant\n12 * 7 = 84.",
    "def fib(n):\n    return n if n < 2 else fib(n - 1) + fib(n - 2)\n",
]


def permute(w, n_head, n_head_kv):
    """llama.cpp convert_hf_to_gguf.py LlamaModel.permute (HF rotary halves → interleaved pairs)."""
    if n_head_kv is not None and n_head != n_head_kv:
        n_head = n_head_kv
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def per_token_logprobs(model, seqs):
    out = []
    with torch.no_grad():
        for s in seqs:
            ids = torch.tensor([s])
            logits = model(ids).logits[0].to(torch.float64)
            lp = torch.log_softmax(logits, dim=-1)
            out.append([lp[i, s[i + 1]].item() for i in range(len(s) - 1)])
    return out


def write_tiny(arch):
    from transformers import AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM
    torch.manual_seed(7 if arch == "llama" else 8)
    V, C, F, L, H, KV = 96, 64, 128, 2, 4, 2
    common = dict(vocab_size=V, hidden_size=C, intermediate_size=F, num_hidden_layers=L, num_attention_heads=H,
                  num_key_value_heads=KV, max_position_embeddings=64, rms_norm_eps=1e-5, bos_token_id=1, eos_token_id=2)
    if arch == "llama":
        hf = LlamaForCausalLM(LlamaConfig(**common, rope_theta=10000.0, tie_word_embeddings=True))
    else:
        hf = Qwen2ForCausalLM(Qwen2Config(**common, rope_theta=1000000.0, tie_word_embeddings=False))
    hf = hf.to(torch.float32).eval()
    sd = {k: v.detach().numpy().astype(np.float32) for k, v in hf.state_dict().items()}
    for k, v in sd.items():  # random norms and biases so that mistakes in them show
        if k.endswith("norm.weight"):
            sd[k] = (1 + 0.2 * np.random.default_rng(len(k)).standard_normal(v.shape)).astype(np.float32)
        elif k.endswith(".bias"):
            sd[k] = (0.1 * np.random.default_rng(len(k) + 1).standard_normal(v.shape)).astype(np.float32)
        elif v.ndim == 2:
            sd[k] = v * 20  # larger weights (std 0.4): peaked predictions, so a wrong weight shows
    name = f"tiny-{arch}"
    path = os.path.join(OUT, name + ".gguf")
    w = gguf.GGUFWriter(path, arch=arch)
    w.add_name(name)
    w.add_block_count(L)
    w.add_context_length(64)
    w.add_embedding_length(C)
    w.add_feed_forward_length(F)
    w.add_head_count(H)
    w.add_head_count_kv(KV)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_rope_freq_base(10000.0 if arch == "llama" else 1000000.0)
    w.add_file_type(gguf.LlamaFileType.MOSTLY_Q8_0)
    if arch == "llama":
        w.add_rope_dimension_count(C // H)
        w.add_vocab_size(V)
    w.add_tokenizer_model("gpt2")
    w.add_token_list([f"t{i}" for i in range(V)])
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_pad_token_id(0)

    types = {"attn_q.weight": T.Q5_0, "attn_k.weight": T.Q4_1, "attn_v.weight": T.Q5_1, "attn_output.weight": T.Q4_0,
             "ffn_gate.weight": T.F16, "ffn_up.weight": T.BF16, "ffn_down.weight": T.Q8_0}
    hf_names = {"self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
                "self_attn.o_proj": "attn_output", "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up",
                "mlp.down_proj": "ffn_down", "input_layernorm": "attn_norm", "post_attention_layernorm": "ffn_norm"}

    def add(gname, data, qt):
        q = gguf.quants.quantize(data, qt)
        w.add_tensor(gname, q, raw_shape=q.shape, raw_dtype=qt)

    add("token_embd.weight", sd["model.embed_tokens.weight"], T.Q8_0)
    for i in range(L):
        for hk, gk in hf_names.items():
            for kind in ("weight", "bias"):
                key = f"model.layers.{i}.{hk}.{kind}"
                if key not in sd:
                    continue
                data = sd[key]
                if arch == "llama" and hk == "self_attn.q_proj":
                    data = permute(data, H, H)
                elif arch == "llama" and hk == "self_attn.k_proj":
                    data = permute(data, H, KV)
                qt = types.get(f"{gk}.{kind}", T.F32) if data.ndim == 2 else T.F32
                add(f"blk.{i}.{gk}.{kind}", np.ascontiguousarray(data), qt)
    add("output_norm.weight", sd["model.norm.weight"], T.F32)
    if arch != "llama":
        add("output.weight", sd["lm_head.weight"], T.Q8_0)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()

    m = AutoModelForCausalLM.from_pretrained(OUT, gguf_file=name + ".gguf", torch_dtype=torch.float64).eval()
    # transformers' reverse permutation must give back the (dequantized) HF q/k rows exactly.
    got = m.state_dict()["model.layers.1.self_attn.k_proj.weight"].numpy()
    want = gguf.quants.dequantize(gguf.quants.quantize(sd["model.layers.1.self_attn.k_proj.weight"], T.Q4_1), T.Q4_1)
    assert np.array_equal(got, want.astype(np.float64)), "k_proj round trip through the permutation differs"
    rng = np.random.default_rng(11)
    seqs = [rng.integers(0, V, size=n).tolist() for n in (5, 17, 33)]
    lps = per_token_logprobs(m, seqs)
    if arch == "llama":
        # The check can fail: the same model with q/k left permuted predicts measurably differently.
        sd2 = {k: v.clone() for k, v in m.state_dict().items()}
        for i in range(L):
            for hk, nkv in (("q_proj", H), ("k_proj", KV)):
                k = f"model.layers.{i}.self_attn.{hk}.weight"
                sd2[k] = torch.from_numpy(permute(sd2[k].numpy(), H, nkv))
        m2 = type(m)(m.config).to(torch.float64).eval()
        m2.load_state_dict(sd2)
        wrong = per_token_logprobs(m2, seqs)
        d = max(abs(a - b) for s1, s2 in zip(lps, wrong) for a, b in zip(s1, s2))
        print(f"{name}: max |Δ log p| with q/k left permuted = {d:.3g}")
        assert d > 0.05, d
    with open(os.path.join(OUT, name + ".json"), "w") as f:
        json.dump({"model": name + ".gguf", "sequences": seqs, "logprobs": lps}, f)
    print(name, os.path.getsize(path), "bytes;", "mean logprob", np.mean([x for s in lps for x in s]))


def write_real(name):
    from transformers import AutoModelForCausalLM, AutoTokenizer
    file = name + ".gguf"
    if not os.path.exists(os.path.join(MODELS, file)):
        print(f"skip {name}: {os.path.join(MODELS, file)} absent", file=sys.stderr)
        return
    tok = AutoTokenizer.from_pretrained(MODELS, gguf_file=file)
    seqs = [tok(t)["input_ids"] for t in TEXTS]
    m = AutoModelForCausalLM.from_pretrained(MODELS, gguf_file=file, torch_dtype=torch.float64).eval()
    lps = per_token_logprobs(m, seqs)
    with open(os.path.join(OUT, f"real-{name}.json"), "w") as f:
        json.dump({"model": file, "texts": TEXTS, "sequences": seqs, "logprobs": lps}, f)
    print(name, [len(s) for s in seqs], "mean logprob", np.mean([x for s in lps for x in s]))


def write_greedy(name):
    from transformers import AutoModelForCausalLM, AutoTokenizer
    file = name + ".gguf"
    if not os.path.exists(os.path.join(MODELS, file)):
        print(f"skip {name}: {os.path.join(MODELS, file)} absent", file=sys.stderr)
        return
    gsm = os.environ.get("RLIF_SHARED_DATA", os.path.join(ROOT, "..", "shared", "data"))
    with open(os.path.join(gsm, "gsm8k", "test.jsonl")) as f:
        questions = [json.loads(next(f))["question"] for _ in range(3)]
    tok = AutoTokenizer.from_pretrained(MODELS, gguf_file=file)
    m = AutoModelForCausalLM.from_pretrained(MODELS, gguf_file=file, torch_dtype=torch.float64).eval()
    eos = m.config.eos_token_id
    prompts, conts, margins = [], [], []
    for q in questions:
        ids = tok.apply_chat_template([{"role": "user", "content": q}], add_generation_prompt=True, tokenize=True)
        if not isinstance(ids, list):
            ids = ids["input_ids"]
        with torch.no_grad():
            out = m.generate(torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                             do_sample=False, max_new_tokens=64, eos_token_id=eos, pad_token_id=eos,
                             output_scores=True, return_dict_in_generate=True)
        cont = out.sequences[0, len(ids):].tolist()
        top2 = [torch.topk(sc[0].to(torch.float64), 2).values.tolist() for sc in out.scores]
        prompts.append(ids)
        conts.append(cont)
        margins.append([a - b for a, b in top2])
        print(name, len(ids), len(cont), repr(tok.decode(cont)[:80]))
    with open(os.path.join(OUT, f"real-{name}-greedy.json"), "w") as f:
        json.dump({"model": file, "eos_token_id": eos, "prompts": prompts, "continuations": conts, "margins": margins}, f)


def check_converted(d, like):
    from transformers import AutoModelForCausalLM
    with open(like) as f:
        fx = json.load(f)
    m = AutoModelForCausalLM.from_pretrained(d, torch_dtype=torch.float64).eval()
    lps = per_token_logprobs(m, fx["sequences"])
    diff = max(abs(a - b) for s1, s2 in zip(lps, fx["logprobs"]) for a, b in zip(s1, s2))
    print(f"{d}: max |Δ log p| vs {os.path.basename(like)} = {diff:.3g}")
    sys.exit(0 if diff <= 1e-3 else 1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tiny", action="store_true")
    ap.add_argument("--real", nargs="*")
    ap.add_argument("--greedy", nargs="*")
    ap.add_argument("--check-converted")
    ap.add_argument("--like")
    a = ap.parse_args()
    os.makedirs(OUT, exist_ok=True)
    if a.check_converted:
        return check_converted(a.check_converted, a.like)
    if a.tiny or (a.real is None and a.greedy is None):
        write_tiny("llama")
        write_tiny("qwen2")
    for n in a.real or []:
        write_real(n)
    for n in a.greedy or []:
        write_greedy(n)


if __name__ == "__main__":
    main()
