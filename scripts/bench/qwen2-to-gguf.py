#!/usr/bin/env python3
"""A Qwen2 Hugging Face directory (config.json, model.safetensors, tokenizer.json) as an F32 GGUF for llama.cpp.

  qwen2-to-gguf.py HF_DIR OUT.gguf GGUF_PY_DIR

For scripts/bench/llamacpp-bench: llama.cpp decodes the same model (same shape, same weights) that rlif does.
llama.cpp's own convert_hf_to_gguf.py refuses the benchmark's `small` tokenizer (the Qwen tokenizer cut to 16,384
ids, scripts/bench/make-random-qwen.py): it recognises a pre-tokenizer by hashing the ids of a fixed text, and the
cut vocabulary changes them. This writer knows only Qwen2 (no q/k row permutation, biases on q/k/v) and writes
the tensors unchanged as F32 with the GGUF writer vendored beside llama.cpp (GGUF_PY_DIR = llama.cpp's gguf-py),
so it needs numpy and safetensors, not torch.

Tensor names follow llama.cpp's qwen2 mapping (gguf-py's tensor_mapping.py): embed_tokens → token_embd,
layers.N.{input_layernorm, self_attn.{q,k,v,o}_proj, post_attention_layernorm, mlp.{gate,up,down}_proj} →
blk.N.{attn_norm, attn_{q,k,v,output}, ffn_norm, ffn_{gate,up,down}}, norm → output_norm, lm_head → output
(absent when the embedding is tied).
"""
import json
import sys

import numpy as np
from safetensors.numpy import load_file

LAYER_NAMES = {
    "input_layernorm.weight": "attn_norm.weight",
    "self_attn.q_proj.weight": "attn_q.weight", "self_attn.q_proj.bias": "attn_q.bias",
    "self_attn.k_proj.weight": "attn_k.weight", "self_attn.k_proj.bias": "attn_k.bias",
    "self_attn.v_proj.weight": "attn_v.weight", "self_attn.v_proj.bias": "attn_v.bias",
    "self_attn.o_proj.weight": "attn_output.weight",
    "post_attention_layernorm.weight": "ffn_norm.weight",
    "mlp.gate_proj.weight": "ffn_gate.weight", "mlp.up_proj.weight": "ffn_up.weight",
    "mlp.down_proj.weight": "ffn_down.weight",
}


def gguf_name(hf):
    if hf == "model.embed_tokens.weight":
        return "token_embd.weight"
    if hf == "model.norm.weight":
        return "output_norm.weight"
    if hf == "lm_head.weight":
        return "output.weight"
    parts = hf.split(".")
    if parts[:2] == ["model", "layers"] and ".".join(parts[3:]) in LAYER_NAMES:
        return f"blk.{parts[2]}.{LAYER_NAMES['.'.join(parts[3:])]}"
    raise SystemExit(f"qwen2-to-gguf: tensor {hf!r} has no qwen2 GGUF name")


def main():
    if len(sys.argv) != 4:
        raise SystemExit(__doc__)
    src, out, gguf_py = sys.argv[1:]
    sys.path.insert(0, gguf_py)
    import gguf

    cfg = json.load(open(f"{src}/config.json"))
    if cfg.get("model_type") != "qwen2":
        raise SystemExit(f"qwen2-to-gguf: {src}/config.json: model_type {cfg.get('model_type')!r}, expected 'qwen2'")
    tok = json.load(open(f"{src}/tokenizer.json"))
    vocab = cfg["vocab_size"]

    # The token list must have exactly `vocab` entries (the embedding's rows): ids the tokenizer does not use are
    # padding, as llama.cpp's converter writes them.
    tokens = [f"[PAD{i}]" for i in range(vocab)]
    types = [gguf.TokenType.UNUSED] * vocab
    for t, i in tok["model"]["vocab"].items():
        if i < vocab:
            tokens[i], types[i] = t, gguf.TokenType.NORMAL
    for a in tok.get("added_tokens", []):
        if a["id"] < vocab:
            tokens[a["id"]] = a["content"]
            types[a["id"]] = gguf.TokenType.CONTROL if a.get("special") else gguf.TokenType.USER_DEFINED
    merges = [m if isinstance(m, str) else " ".join(m) for m in tok["model"]["merges"]]

    w = gguf.GGUFWriter(out, "qwen2")
    w.add_name(src.rstrip("/").split("/")[-1])
    w.add_context_length(cfg.get("max_position_embeddings", 32768))
    w.add_embedding_length(cfg["hidden_size"])
    w.add_block_count(cfg["num_hidden_layers"])
    w.add_feed_forward_length(cfg["intermediate_size"])
    w.add_head_count(cfg["num_attention_heads"])
    w.add_head_count_kv(cfg["num_key_value_heads"])
    w.add_rope_freq_base(cfg.get("rope_theta", 10000.0))
    w.add_layer_norm_rms_eps(cfg["rms_norm_eps"])
    w.add_file_type(gguf.LlamaFileType.ALL_F32)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("qwen2")
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges(merges)
    w.add_eos_token_id(cfg["eos_token_id"])
    w.add_bos_token_id(cfg.get("bos_token_id", cfg["eos_token_id"]))
    w.add_add_bos_token(False)

    weights = load_file(f"{src}/model.safetensors")
    for name in sorted(weights):
        a = weights[name]
        if a.dtype != np.float32:
            raise SystemExit(f"qwen2-to-gguf: {src}/model.safetensors: {name} is {a.dtype}, expected float32")
        w.add_tensor(gguf_name(name), a)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    print(f"qwen2-to-gguf: {len(weights)} tensors, {vocab} tokens → {out}")


if __name__ == "__main__":
    main()
