import Foundation
import GGUF
import SafeTensors

/// A GGUF model file (llama.cpp's format) seen as a Hugging Face checkpoint: the `ModelConfig` from its metadata,
/// its tensors under HF names, dequantized to Float, with the q/k row permutation of llama.cpp's converter undone.
///
/// Mirrors what transformers does when it loads a GGUF (`load_gguf_checkpoint` in
/// transformers/modeling_gguf_pytorch_utils.py with the key table of transformers/integrations/ggml.py):
/// - config keys `<arch>.block_count`, `.embedding_length`, `.feed_forward_length`, `.attention.head_count`,
///   `.attention.head_count_kv`, `.attention.layer_norm_rms_epsilon`, `.rope.freq_base`, `.context_length`;
///   bos/eos from `tokenizer.ggml.bos_token_id` / `eos_token_id`; tied embeddings when `output.weight` is absent;
/// - for `llama` only, `attn_q` and `attn_k` (weights and biases) are un-permuted: convert_hf_to_gguf.py's
///   `LlamaModel.permute` stores, within each head of `head_dim` rows, HF row `half * head_dim/2 + i` at row
///   `2 * i + half` (interleaved rotary pairs for ggml's RoPE); `qwen2` is converted without permutation.
/// The vocabulary size is the embedding's row count (`<arch>.vocab_size`, when present, must agree).
public struct GGUFCheckpoint: @unchecked Sendable {
    public let file: GGUFFile
    public let config: ModelConfig
    /// `tokenizer.ggml.padding_token_id`, when present (for generation_config.json).
    public let padTokenId: Int?
    /// HF tensor name → GGUF tensor name, for every tensor of the file.
    public let hfToGGUF: [String: String]

    public static let supportedArchitectures: [ModelArchitecture] = [.llama, .qwen2]

    public init(contentsOf url: URL) throws {
        try self.init(file: GGUFFile(contentsOf: url))
    }

    public init(file: GGUFFile) throws {
        self.file = file
        var map: [String: String] = [:]
        for t in file.tensors {
            guard let hf = Self.hfName(forGGUF: t.name) else {
                throw ModelError.checkpoint(file: file.url.path, tensor: t.name,
                                            detail: "GGUF tensor name not supported for llama/qwen2 (rope frequency tables, vision or MoE tensors are not)")
            }
            map[hf] = t.name
        }
        hfToGGUF = map
        config = try ModelConfig(gguf: file)
        padTokenId = try file.int("tokenizer.ggml.padding_token_id")
    }

    // MARK: Names

    /// GGUF per-layer suffix → HF per-layer suffix (llama.cpp's `MODEL_TENSOR` names for llama/qwen2 in gguf-py
    /// constants.py / tensor_mapping.py).
    static let layerNames: [String: String] = [
        "attn_norm.weight": "input_layernorm.weight",
        "attn_q.weight": "self_attn.q_proj.weight", "attn_q.bias": "self_attn.q_proj.bias",
        "attn_k.weight": "self_attn.k_proj.weight", "attn_k.bias": "self_attn.k_proj.bias",
        "attn_v.weight": "self_attn.v_proj.weight", "attn_v.bias": "self_attn.v_proj.bias",
        "attn_output.weight": "self_attn.o_proj.weight", "attn_output.bias": "self_attn.o_proj.bias",
        "ffn_norm.weight": "post_attention_layernorm.weight",
        "ffn_gate.weight": "mlp.gate_proj.weight",
        "ffn_up.weight": "mlp.up_proj.weight",
        "ffn_down.weight": "mlp.down_proj.weight",
    ]
    static let globalNames: [String: String] = [
        "token_embd.weight": "model.embed_tokens.weight",
        "output_norm.weight": "model.norm.weight",
        "output.weight": "lm_head.weight",
    ]

    /// The HF name of a GGUF tensor (`blk.3.attn_q.weight` → `model.layers.3.self_attn.q_proj.weight`), or nil.
    public static func hfName(forGGUF name: String) -> String? {
        if let g = globalNames[name] { return g }
        let parts = name.split(separator: ".", maxSplits: 2)
        guard parts.count == 3, parts[0] == "blk", let i = Int(parts[1]), i >= 0, String(i) == parts[1],
              let rest = layerNames[String(parts[2])] else { return nil }
        return "model.layers.\(i).\(rest)"
    }

    // MARK: Tensors

    /// Heads whose rows llama.cpp permuted in this HF tensor (q: attention heads, k: KV heads), or nil.
    func permutedHeads(_ hfName: String) -> Int? {
        guard config.architecture == .llama else { return nil }
        if hfName.hasSuffix("self_attn.q_proj.weight") || hfName.hasSuffix("self_attn.q_proj.bias") { return config.numAttentionHeads }
        if hfName.hasSuffix("self_attn.k_proj.weight") || hfName.hasSuffix("self_attn.k_proj.bias") { return config.numKeyValueHeads }
        return nil
    }

    /// The GGUF tensor behind an HF name, with its shape checked against `shape`.
    public func tensor(_ hfName: String, shape: [Int]) throws -> GGUFTensorInfo {
        guard let g = hfToGGUF[hfName], let t = file.tensor(g) else {
            throw ModelError.checkpoint(file: file.url.path, tensor: hfName, detail: "missing (expected shape \(shape); GGUF has no tensor for it)")
        }
        guard t.shape == shape else {
            throw ModelError.checkpoint(file: file.url.path, tensor: g, detail: "shape \(t.shape) (ggml dims \(t.dimensions)), expected \(shape) for \(hfName)")
        }
        return t
    }

    /// Dequantizes the tensor behind HF name `hfName` (of HF shape `shape`) into `dst` in HF layout (un-permuted
    /// for llama q/k), then releases its mapped pages.
    public func read(_ hfName: String, shape: [Int], into dst: UnsafeMutablePointer<Float>) throws {
        let t = try tensor(hfName, shape: shape)
        try file.dequantize(t.name, into: dst, count: t.elementCount)
        file.releasePages(of: t)
        if let heads = permutedHeads(hfName) {
            let rows = shape[0], cols = shape.count > 1 ? shape[1] : 1
            guard rows % (2 * heads) == 0 else {
                throw ModelError.checkpoint(file: file.url.path, tensor: t.name, detail: "\(rows) rows do not split into \(heads) heads of rotary pairs")
            }
            Self.unpermuteRows(dst, heads: heads, rows: rows, cols: cols)
        }
    }

    /// Undoes llama.cpp's `permute` on a (rows, cols) matrix of `heads` heads: within each head of d = rows/heads
    /// rows, GGUF row 2i + half becomes HF row half * d/2 + i.
    public static func unpermuteRows(_ p: UnsafeMutablePointer<Float>, heads: Int, rows: Int, cols: Int) {
        let d = rows / heads, half = d / 2
        let src = [Float](UnsafeBufferPointer(start: p, count: rows * cols))
        src.withUnsafeBufferPointer { s in
            for h in 0..<heads {
                for part in 0..<2 {
                    for i in 0..<half {
                        let to = h * d + part * half + i, from = h * d + 2 * i + part
                        (p + to * cols).update(from: s.baseAddress! + from * cols, count: cols)
                    }
                }
            }
        }
    }

    /// The content of an HF `generation_config.json` for this model (bos/eos/pad from the GGUF metadata).
    public func generationConfigJSON() throws -> Data {
        var obj: [String: Any] = ["_from_model_config": true]
        if let b = config.bosTokenId { obj["bos_token_id"] = b }
        if config.eosTokenIds.count == 1 { obj["eos_token_id"] = config.eosTokenIds[0] }
        else if !config.eosTokenIds.isEmpty { obj["eos_token_id"] = config.eosTokenIds }
        if let p = padTokenId { obj["pad_token_id"] = p }
        return try JSONSerialization.data(withJSONObject: obj, options: [.prettyPrinted, .sortedKeys])
    }
}

extension GGUFCheckpoint {
    /// Writes `directory` as an HF checkpoint of the GGUF at `url`: config.json + model.safetensors (`dtype`, via
    /// `Transformer.save`) and generation_config.json. The GGUF is streamed into the model's parameter buffer
    /// tensor by tensor. Returns the files written.
    @discardableResult
    public static func convert(gguf url: URL, to directory: URL, dtype: SafeTensorsDType = .f32) throws -> [URL] {
        let ckpt = try GGUFCheckpoint(contentsOf: url)
        let model = try Transformer(config: ckpt.config)
        try model.loadWeights(gguf: ckpt)
        try model.save(to: directory, dtype: dtype)
        let gen = directory.appendingPathComponent("generation_config.json")
        try SafeTensorsWriter.atomicWrite(ckpt.generationConfigJSON(), to: gen)
        return [directory.appendingPathComponent("config.json"),
                directory.appendingPathComponent(SafeTensorsCheckpoint.singleFileName), gen]
    }
}

extension ModelConfig {
    /// The config of a GGUF model from its metadata (see `GGUFCheckpoint`); errors name the file and key.
    public init(gguf f: GGUFFile) throws {
        let path = f.url.path
        func fail(_ key: String, _ detail: String) -> ModelError { .config(file: path, key: key, detail: detail) }
        let archName = try f.requireString("general.architecture")
        guard let arch = ModelArchitecture(rawValue: archName), GGUFCheckpoint.supportedArchitectures.contains(arch) else {
            throw fail("general.architecture", "'\(archName)' is not supported (llama, qwen2)")
        }
        func req(_ k: String) throws -> Int {
            guard let v = try f.int("\(archName).\(k)") else { throw fail("\(archName).\(k)", "required key is missing") }
            return v
        }
        func opt(_ k: String) throws -> Int? { try f.int("\(archName).\(k)") }

        let hidden = try req("embedding_length")
        let heads = try req("attention.head_count")
        let kvHeads = try opt("attention.head_count_kv") ?? heads
        let headDim = try opt("attention.key_length") ?? hidden / max(1, heads)
        if let vl = try opt("attention.value_length"), vl != headDim {
            throw fail("\(archName).attention.value_length", "\(vl) differs from the key length \(headDim) (not supported)")
        }
        if let rd = try opt("rope.dimension_count"), rd != headDim {
            throw fail("\(archName).rope.dimension_count", "\(rd) differs from head_dim \(headDim): partial rotary embeddings are not supported")
        }
        if let st = try f.string("\(archName).rope.scaling.type"), st != "none" {
            throw fail("\(archName).rope.scaling.type", "'\(st)' is not supported (only unscaled RoPE)")
        }
        guard let eps = try f.double("\(archName).attention.layer_norm_rms_epsilon") else {
            throw fail("\(archName).attention.layer_norm_rms_epsilon", "required key is missing")
        }
        guard let embd = f.tensor("token_embd.weight"), embd.dimensions.count == 2 else {
            throw ModelError.checkpoint(file: path, tensor: "token_embd.weight", detail: "missing or not 2-D (the vocabulary size is its row count)")
        }
        let vocab = embd.shape[0]
        if let v = try opt("vocab_size"), v != vocab {
            throw fail("\(archName).vocab_size", "\(v) but token_embd.weight has \(vocab) rows")
        }
        // Llama with attention biases (q/k/v/o); Qwen2's q/k/v biases are implied by the architecture.
        let attnBias = arch == .llama && f.tensor("blk.0.attn_q.bias") != nil
        self.init(architecture: arch, hiddenSize: hidden, intermediateSize: try req("feed_forward_length"),
                  numHiddenLayers: try req("block_count"), numAttentionHeads: heads, numKeyValueHeads: kvHeads,
                  headDim: headDim, rmsNormEps: eps, ropeTheta: try f.double("\(archName).rope.freq_base") ?? 10000,
                  vocabSize: vocab, maxPositionEmbeddings: try req("context_length"),
                  tieWordEmbeddings: f.tensor("output.weight") == nil, attentionBias: attnBias,
                  bosTokenId: try f.int("tokenizer.ggml.bos_token_id"),
                  eosTokenIds: try f.int("tokenizer.ggml.eos_token_id").map { [$0] } ?? [], dtype: "float32")
        do { try validate(file: path) } catch let ModelError.config(_, key, detail) {
            throw fail(key, detail + " (from the GGUF metadata)")
        }
    }
}

extension Transformer {
    /// A model from a GGUF file: config from its metadata, each tensor dequantized straight into its slot of
    /// `parameters` (the file is memory-mapped; no second copy of the model is made).
    public static func load(gguf url: URL, baseWeights: BaseWeights = .f32) throws -> Transformer {
        let ckpt = try GGUFCheckpoint(contentsOf: url)
        let model = try Transformer(config: ckpt.config, baseWeights: baseWeights)
        try model.loadWeights(gguf: ckpt)
        return model
    }

    /// Loads a model from an HF directory (config.json + safetensors) or a `.gguf` file: the one entry point the
    /// commands use for `--model` / `model:`.
    /// `baseWeights: .bf16` keeps the matrices as BF16 (rounded once, tensor by tensor while loading).
    public static func load(model url: URL, baseWeights: BaseWeights = .f32) throws -> Transformer {
        if url.pathExtension.lowercased() == "gguf" { return try load(gguf: url, baseWeights: baseWeights) }
        var isDir: ObjCBool = false
        if FileManager.default.fileExists(atPath: url.path, isDirectory: &isDir), !isDir.boolValue {
            throw ModelError.config(file: url.path, key: "(model)",
                                    detail: "a model is a Hugging Face directory (config.json + model.safetensors) or a .gguf file")
        }
        return try load(directory: url, baseWeights: baseWeights)
    }

    /// Reads a GGUF checkpoint's weights into `parameters` (its config must match this model's). Strict like
    /// `loadWeights(directory:)`: every expected tensor present with its shape, no tensor left over.
    public func loadWeights(gguf ckpt: GGUFCheckpoint) throws {
        guard ckpt.config.architecture == config.architecture, ParameterLayout(config: ckpt.config) == layout else {
            throw ModelError.checkpoint(file: ckpt.file.url.path, tensor: "(all)", detail: "the GGUF's config does not match this model's")
        }
        let expected = Set(layout.names)
        for (hf, g) in ckpt.hfToGGUF where !expected.contains(hf) {
            throw ModelError.checkpoint(file: ckpt.file.url.path, tensor: g,
                                        detail: "unexpected tensor (\(hf)) for a \(config.architecture.hfClassName) with this config")
        }
        for e in layout.entries {
            try loadTensor(e) { try ckpt.read(e.name, shape: e.shape, into: $0) }
        }
    }
}
