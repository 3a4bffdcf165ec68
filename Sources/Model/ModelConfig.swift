import Foundation
import Shared

/// The decoder-only architectures rlif implements (pre-norm RMSNorm, RoPE, GQA attention, SwiGLU MLP).
public enum ModelArchitecture: String, Codable, Sendable {
    /// `LlamaForCausalLM`: no biases unless `attention_bias` (then q/k/v/o all have biases).
    case llama
    /// `Qwen2ForCausalLM`: q/k/v projections always have biases, o_proj never.
    case qwen2

    /// The HF `architectures` entry.
    public var hfClassName: String { self == .llama ? "LlamaForCausalLM" : "Qwen2ForCausalLM" }
}

/// A Hugging Face `config.json` for Llama / Qwen2, with the HF key names. Decoding is strict about what rlif
/// cannot compute (rope scaling, sliding-window attention in use, MLP biases, non-SiLU activations): those give
/// `ModelError.config` naming the key. Keys that don't change the computation are ignored. Encoding writes a
/// config.json that `transformers.AutoConfig` reads back to the same model (both `rope_parameters` and the
/// legacy `rope_theta`, both `dtype` and `torch_dtype`).
public struct ModelConfig: Codable, Equatable, Sendable {
    public var architecture: ModelArchitecture
    public var hiddenSize: Int
    public var intermediateSize: Int
    public var numHiddenLayers: Int
    public var numAttentionHeads: Int
    public var numKeyValueHeads: Int
    public var headDim: Int
    public var rmsNormEps: Double
    public var ropeTheta: Double
    public var vocabSize: Int
    public var maxPositionEmbeddings: Int
    public var tieWordEmbeddings: Bool
    /// Llama `attention_bias` (q/k/v/o biases). Qwen2 ignores this: its q/k/v biases are implied.
    public var attentionBias: Bool
    public var bosTokenId: Int?
    /// `eos_token_id`, an int or a list in HF configs.
    public var eosTokenIds: [Int]
    /// `dtype` / `torch_dtype` as written ("float32", "bfloat16", …); informational.
    public var dtype: String?

    public init(architecture: ModelArchitecture, hiddenSize: Int, intermediateSize: Int, numHiddenLayers: Int,
                numAttentionHeads: Int, numKeyValueHeads: Int? = nil, headDim: Int? = nil, rmsNormEps: Double = 1e-6,
                ropeTheta: Double = 10000, vocabSize: Int, maxPositionEmbeddings: Int = 2048,
                tieWordEmbeddings: Bool = false, attentionBias: Bool = false, bosTokenId: Int? = nil,
                eosTokenIds: [Int] = [], dtype: String? = "float32") {
        self.architecture = architecture
        self.hiddenSize = hiddenSize
        self.intermediateSize = intermediateSize
        self.numHiddenLayers = numHiddenLayers
        self.numAttentionHeads = numAttentionHeads
        self.numKeyValueHeads = numKeyValueHeads ?? numAttentionHeads
        self.headDim = headDim ?? hiddenSize / max(1, numAttentionHeads)
        self.rmsNormEps = rmsNormEps
        self.ropeTheta = ropeTheta
        self.vocabSize = vocabSize
        self.maxPositionEmbeddings = maxPositionEmbeddings
        self.tieWordEmbeddings = tieWordEmbeddings
        self.attentionBias = attentionBias
        self.bosTokenId = bosTokenId
        self.eosTokenIds = eosTokenIds
        self.dtype = dtype
    }

    /// q/k/v projections carry a bias.
    public var hasQKVBias: Bool { architecture == .qwen2 || attentionBias }
    /// o_proj carries a bias (Llama with `attention_bias` only).
    public var hasOBias: Bool { architecture == .llama && attentionBias }
    public var qDim: Int { numAttentionHeads * headDim }
    public var kvDim: Int { numKeyValueHeads * headDim }

    /// Reads and validates `config.json`; errors name the file and key.
    public static func load(from url: URL) throws -> ModelConfig {
        let data: Data
        do { data = try Data(contentsOf: url) } catch {
            throw ModelError.config(file: url.path, key: "(file)", detail: "cannot read: \(error.localizedDescription)")
        }
        return try decode(json: data, file: url.path)
    }

    /// Decodes and validates the bytes of a `config.json` (`file` names it in errors).
    public static func decode(json data: Data, file: String) throws -> ModelConfig {
        do {
            let c = try JSONDecoder().decode(ModelConfig.self, from: data)
            try c.validate(file: file)
            return c
        } catch let ModelError.config(_, key, detail) {
            throw ModelError.config(file: file, key: key, detail: detail)
        } catch let e as DecodingError {
            throw ModelError.config(file: file, key: Self.keyPath(e), detail: "\(e)")
        }
    }

    /// Checks the sizes are consistent (positive, heads divide, head_dim even).
    public func validate(file: String = "config") throws {
        func need(_ ok: Bool, _ key: String, _ detail: String) throws {
            if !ok { throw ModelError.config(file: file, key: key, detail: detail) }
        }
        try need(hiddenSize > 0, "hidden_size", "must be > 0, got \(hiddenSize)")
        try need(intermediateSize > 0, "intermediate_size", "must be > 0, got \(intermediateSize)")
        try need(numHiddenLayers > 0, "num_hidden_layers", "must be > 0, got \(numHiddenLayers)")
        try need(numAttentionHeads > 0, "num_attention_heads", "must be > 0, got \(numAttentionHeads)")
        try need(numKeyValueHeads > 0 && numAttentionHeads % numKeyValueHeads == 0, "num_key_value_heads",
                 "\(numKeyValueHeads) must divide num_attention_heads \(numAttentionHeads)")
        try need(headDim > 0 && headDim % 2 == 0, "head_dim", "must be even and > 0, got \(headDim)")
        try need(vocabSize > 0, "vocab_size", "must be > 0, got \(vocabSize)")
        try need(maxPositionEmbeddings > 0, "max_position_embeddings", "must be > 0, got \(maxPositionEmbeddings)")
        try need(rmsNormEps > 0, "rms_norm_eps", "must be > 0, got \(rmsNormEps)")
        try need(ropeTheta > 0, "rope_theta", "must be > 0, got \(ropeTheta)")
        try need(numHiddenLayers <= Self.maxLayers, "num_hidden_layers", "\(numHiddenLayers) exceeds the limit of \(Self.maxLayers)")
        // Every size derived from the config (tensor element counts, the flat buffer, the RoPE tables) must be
        // computable without Int overflow and below `maxElements`: found by fuzzing (scripts/fuzz model-config),
        // num_attention_heads 2^62 trapped in `qDim` and num_hidden_layers 10^8 kept ParameterLayout busy for minutes.
        func product(_ key: String, _ factors: [(String, Int)]) throws -> Int {
            var n = 1
            for (_, f) in factors {
                let (p, o) = n.multipliedReportingOverflow(by: f)
                guard !o, p <= Self.maxElements else {
                    throw ModelError.config(file: file, key: key, detail: "\(factors.map { "\($0.0) \($0.1)" }.joined(separator: " × ")) exceeds the limit of \(Self.maxElements) elements")
                }
                n = p
            }
            return n
        }
        let c = try product("hidden_size", [("hidden_size", hiddenSize)])
        _ = try product("intermediate_size", [("intermediate_size", intermediateSize)])
        let qd = try product("num_attention_heads", [("num_attention_heads", numAttentionHeads), ("head_dim", headDim)])
        let kvd = try product("num_key_value_heads", [("num_key_value_heads", numKeyValueHeads), ("head_dim", headDim)])
        _ = try product("max_position_embeddings", [("max_position_embeddings", maxPositionEmbeddings), ("head_dim", headDim)])
        let embedding = try product("vocab_size", [("vocab_size", vocabSize), ("hidden_size", c)])
        let attention = try product("hidden_size", [("hidden_size", c), ("q + k + v + o widths", 2 * qd + 2 * kvd + 4)])
        let mlp = try product("intermediate_size", [("intermediate_size", intermediateSize), ("3 × hidden_size", 3 * c)])
        // Per layer: attention + MLP + norms and biases (each < maxElements, so the sums cannot overflow).
        let layer = attention + mlp + 2 * c + qd + 2 * kvd
        _ = try product("num_hidden_layers", [("num_hidden_layers", numHiddenLayers), ("elements per layer", layer + 16 * 13)])
        _ = try product("vocab_size", [("2 embeddings of", 2), ("vocab_size × hidden_size", embedding)])
    }

    /// Largest `num_hidden_layers` accepted (the deepest open models have well under 200).
    public static let maxLayers = 4096
    /// Largest element count of any derived size (a tensor, all layers, the RoPE tables): 2^40 floats (4 TiB),
    /// far above any model this machine class can hold, and small enough that sums of a few cannot overflow Int.
    public static let maxElements = 1 << 40

    private static func keyPath(_ e: DecodingError) -> String {
        switch e {
        case let .keyNotFound(k, ctx): return (ctx.codingPath + [k]).map(\.stringValue).joined(separator: ".")
        case let .typeMismatch(_, ctx), let .valueNotFound(_, ctx), let .dataCorrupted(ctx):
            return ctx.codingPath.map(\.stringValue).joined(separator: ".")
        @unknown default: return "?"
        }
    }

    // MARK: Codable with HF keys

    typealias Key = AnyCodingKey

    private static func unsupported(_ key: String, _ detail: String) -> ModelError {
        .config(file: "config", key: key, detail: detail)
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: Key.self)
        func req(_ k: String) throws -> Int {
            guard c.contains(Key(k)) else { throw Self.unsupported(k, "required key is missing") }
            do { return try c.decode(Int.self, forKey: Key(k)) } catch { throw Self.unsupported(k, "must be an integer") }
        }
        func opt<T: Decodable>(_ k: String, _ t: T.Type) throws -> T? {
            do { return try c.decodeIfPresent(T.self, forKey: Key(k)) } catch {
                throw Self.unsupported(k, "has the wrong type (expected \(T.self))")
            }
        }
        // Architecture: model_type, cross-checked with architectures[0].
        let modelType = try opt("model_type", String.self)
        let archs = try opt("architectures", [String].self) ?? []
        var arch: ModelArchitecture?
        if let mt = modelType {
            guard let a = ModelArchitecture(rawValue: mt) else {
                throw Self.unsupported("model_type", "'\(mt)' is not supported (llama, qwen2)")
            }
            arch = a
        }
        if let first = archs.first {
            let fromClass: ModelArchitecture? = first == "LlamaForCausalLM" ? .llama : first == "Qwen2ForCausalLM" ? .qwen2 : nil
            guard let fc = fromClass else {
                throw Self.unsupported("architectures", "'\(first)' is not supported (LlamaForCausalLM, Qwen2ForCausalLM)")
            }
            if let a = arch, a != fc { throw Self.unsupported("architectures", "'\(first)' contradicts model_type '\(a.rawValue)'") }
            arch = fc
        }
        guard let architecture = arch else { throw Self.unsupported("model_type", "neither model_type nor architectures given") }
        self.architecture = architecture

        hiddenSize = try req("hidden_size")
        intermediateSize = try req("intermediate_size")
        numHiddenLayers = try req("num_hidden_layers")
        numAttentionHeads = try req("num_attention_heads")
        vocabSize = try req("vocab_size")
        numKeyValueHeads = try opt("num_key_value_heads", Int.self) ?? numAttentionHeads
        headDim = try opt("head_dim", Int.self) ?? hiddenSize / max(1, numAttentionHeads)
        rmsNormEps = try opt("rms_norm_eps", Double.self) ?? 1e-6
        maxPositionEmbeddings = try opt("max_position_embeddings", Int.self) ?? (architecture == .qwen2 ? 32768 : 2048)
        tieWordEmbeddings = try opt("tie_word_embeddings", Bool.self) ?? false
        attentionBias = try opt("attention_bias", Bool.self) ?? false
        dtype = try opt("dtype", String.self) ?? opt("torch_dtype", String.self)

        // bos/eos: int, list of ints, or null.
        bosTokenId = try opt("bos_token_id", Int.self)
        if let one = try? c.decodeIfPresent(Int.self, forKey: Key("eos_token_id")) {
            eosTokenIds = [one]
        } else {
            eosTokenIds = try opt("eos_token_id", [Int].self) ?? []
        }

        // RoPE: transformers-5 rope_parameters, else legacy rope_theta (+ rope_scaling which must be absent/default).
        struct RopeParams: Decodable { var rope_theta: Double?; var rope_type: String?; var type: String? }
        var theta = try opt("rope_theta", Double.self)
        if let rp = try opt("rope_parameters", RopeParams.self) {
            let t = rp.rope_type ?? rp.type ?? "default"
            guard t == "default" else {
                throw Self.unsupported("rope_parameters.rope_type", "'\(t)' is not supported (only 'default' RoPE)")
            }
            if let th = rp.rope_theta { theta = th }
        }
        if c.contains(Key("rope_scaling")), (try? c.decodeNil(forKey: Key("rope_scaling"))) != true {
            let rs = try opt("rope_scaling", RopeParams.self)
            let t = rs?.rope_type ?? rs?.type ?? "default"
            guard t == "default" else {
                throw Self.unsupported("rope_scaling", "rope type '\(t)' is not supported (only 'default' RoPE)")
            }
        }
        ropeTheta = theta ?? 10000

        // Things rlif does not compute.
        if let act = try opt("hidden_act", String.self), act != "silu" {
            throw Self.unsupported("hidden_act", "'\(act)' is not supported (only silu)")
        }
        if try opt("mlp_bias", Bool.self) == true {
            throw Self.unsupported("mlp_bias", "MLP biases are not supported")
        }
        if try opt("use_sliding_window", Bool.self) == true {
            throw Self.unsupported("use_sliding_window", "sliding-window attention is not supported")
        }
        if let lt = try opt("layer_types", [String].self), let bad = lt.firstIndex(where: { $0 != "full_attention" }) {
            throw Self.unsupported("layer_types", "layer \(bad) is '\(lt[bad])'; only full_attention is supported")
        }
        if let tp = try opt("pretraining_tp", Int.self), tp != 1 {
            throw Self.unsupported("pretraining_tp", "\(tp) is not supported (only 1)")
        }
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: Key.self)
        try c.encode([architecture.hfClassName], forKey: Key("architectures"))
        try c.encode(architecture.rawValue, forKey: Key("model_type"))
        try c.encode(hiddenSize, forKey: Key("hidden_size"))
        try c.encode(intermediateSize, forKey: Key("intermediate_size"))
        try c.encode(numHiddenLayers, forKey: Key("num_hidden_layers"))
        try c.encode(numAttentionHeads, forKey: Key("num_attention_heads"))
        try c.encode(numKeyValueHeads, forKey: Key("num_key_value_heads"))
        try c.encode(headDim, forKey: Key("head_dim"))
        try c.encode(rmsNormEps, forKey: Key("rms_norm_eps"))
        try c.encode(ropeTheta, forKey: Key("rope_theta"))
        var rp = c.nestedContainer(keyedBy: Key.self, forKey: Key("rope_parameters"))
        try rp.encode("default", forKey: Key("rope_type"))
        try rp.encode(ropeTheta, forKey: Key("rope_theta"))
        try c.encode(vocabSize, forKey: Key("vocab_size"))
        try c.encode(maxPositionEmbeddings, forKey: Key("max_position_embeddings"))
        try c.encode(tieWordEmbeddings, forKey: Key("tie_word_embeddings"))
        try c.encode("silu", forKey: Key("hidden_act"))
        if architecture == .llama {
            try c.encode(attentionBias, forKey: Key("attention_bias"))
            try c.encode(false, forKey: Key("mlp_bias"))
        } else {
            try c.encode(false, forKey: Key("use_sliding_window"))
        }
        if let b = bosTokenId { try c.encode(b, forKey: Key("bos_token_id")) }
        if eosTokenIds.count == 1 { try c.encode(eosTokenIds[0], forKey: Key("eos_token_id")) }
        else if !eosTokenIds.isEmpty { try c.encode(eosTokenIds, forKey: Key("eos_token_id")) }
        if let d = dtype {
            try c.encode(d, forKey: Key("dtype"))
            try c.encode(d, forKey: Key("torch_dtype"))
        }
    }

    /// The config as HF `config.json` bytes (sorted keys, pretty-printed).
    public func jsonData() throws -> Data {
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys]
        return try enc.encode(self)
    }
}
