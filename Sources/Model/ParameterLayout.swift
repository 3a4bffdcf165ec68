/// Where every parameter lives in the one flat Float buffer, keyed by Hugging Face tensor names.
///
/// Order (= checkpoint order): `model.embed_tokens.weight`, then per layer i
/// `model.layers.{i}.input_layernorm.weight`, `self_attn.{q,k,v}_proj.weight` (+ `.bias` when the config has
/// q/k/v biases), `self_attn.o_proj.weight` (+ `.bias` for Llama `attention_bias`),
/// `post_attention_layernorm.weight`, `mlp.{gate,up,down}_proj.weight`; then `model.norm.weight` and
/// `lm_head.weight` unless embeddings are tied. Every tensor starts on a 64-byte boundary (16 floats), so with a
/// 64-byte aligned base (`FloatBuffer`) every tensor pointer is aligned. The same layout indexes gradients and
/// optimizer state.
public struct ParameterLayout: Sendable, Equatable {
    public struct Entry: Sendable, Equatable {
        public let name: String
        /// Offset in floats from the buffer start.
        public let offset: Int
        /// PyTorch shape, e.g. [out, in] for a Linear weight.
        public let shape: [Int]
        public var count: Int { shape.reduce(1, *) }
    }

    /// Offsets of one decoder layer's tensors (-1 for absent biases).
    public struct LayerOffsets: Sendable, Equatable {
        public var inputNorm = 0, wq = 0, bq = -1, wk = 0, bk = -1, wv = 0, bv = -1, wo = 0, bo = -1
        public var postNorm = 0, wGate = 0, wUp = 0, wDown = 0
        /// q, k and v weights are contiguous: one (QD + 2·KVD, C) matrix at `wq`.
        public var fusedQKV = false
        /// gate and up weights are contiguous: one (2·F, C) matrix at `wGate`.
        public var fusedGateUp = false
    }

    public let entries: [Entry]
    /// Total floats including alignment padding.
    public let totalCount: Int
    /// Floats that are parameters (padding excluded).
    public let parameterCount: Int
    public let embedding: Int
    public let layers: [LayerOffsets]
    public let finalNorm: Int
    /// Offset of the lm_head weight: the embedding when tied.
    public let lmHead: Int
    public let tied: Bool
    private let index: [String: Int]

    public static let alignmentFloats = 16

    /// FNV-1a (64-bit, hex) of every entry's name, offset and shape and the total size: two layouts with the same
    /// fingerprint put every tensor at the same place in the flat buffer. Checkpoints store it next to the flat
    /// optimizer moments, which only mean something in the layout that wrote them.
    public var fingerprint: String {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        func mix(_ text: String) { for b in text.utf8 { h ^= UInt64(b); h = h &* 0x100_0000_01b3 } }
        for e in entries { mix("\(e.name)@\(e.offset):\(e.shape.map(String.init).joined(separator: "x"));") }
        mix("total=\(totalCount)")
        return String(h, radix: 16)
    }

    public init(config: ModelConfig) {
        var entries: [Entry] = []
        var offset = 0
        func add(_ name: String, _ shape: [Int]) -> Int {
            let o = offset
            entries.append(Entry(name: name, offset: o, shape: shape))
            let n = shape.reduce(1, *)
            offset += (n + Self.alignmentFloats - 1) / Self.alignmentFloats * Self.alignmentFloats
            return o
        }
        let c = config.hiddenSize, f = config.intermediateSize, qd = config.qDim, kvd = config.kvDim
        embedding = add("model.embed_tokens.weight", [config.vocabSize, c])
        var layers: [LayerOffsets] = []
        for i in 0..<config.numHiddenLayers {
            let p = "model.layers.\(i)."
            var l = LayerOffsets()
            l.inputNorm = add(p + "input_layernorm.weight", [c])
            // q, k, v weights back to back (then their biases): when the sizes keep the alignment, they form one
            // (QD + 2·KVD, C) matrix and decode runs them as one product (see `fusedQKV`).
            l.wq = add(p + "self_attn.q_proj.weight", [qd, c])
            l.wk = add(p + "self_attn.k_proj.weight", [kvd, c])
            l.wv = add(p + "self_attn.v_proj.weight", [kvd, c])
            if config.hasQKVBias {
                l.bq = add(p + "self_attn.q_proj.bias", [qd])
                l.bk = add(p + "self_attn.k_proj.bias", [kvd])
                l.bv = add(p + "self_attn.v_proj.bias", [kvd])
            }
            l.wo = add(p + "self_attn.o_proj.weight", [c, qd])
            if config.hasOBias { l.bo = add(p + "self_attn.o_proj.bias", [c]) }
            l.postNorm = add(p + "post_attention_layernorm.weight", [c])
            l.wGate = add(p + "mlp.gate_proj.weight", [f, c])
            l.wUp = add(p + "mlp.up_proj.weight", [f, c])
            l.wDown = add(p + "mlp.down_proj.weight", [c, f])
            l.fusedQKV = l.wk == l.wq + qd * c && l.wv == l.wk + kvd * c
            l.fusedGateUp = l.wUp == l.wGate + f * c
            layers.append(l)
        }
        self.layers = layers
        finalNorm = add("model.norm.weight", [c])
        tied = config.tieWordEmbeddings
        lmHead = tied ? embedding : add("lm_head.weight", [config.vocabSize, c])
        self.entries = entries
        totalCount = offset
        parameterCount = entries.reduce(0) { $0 + $1.count }
        index = Dictionary(uniqueKeysWithValues: entries.enumerated().map { ($1.name, $0) })
    }

    /// The entry for an HF tensor name, or nil.
    public func entry(_ name: String) -> Entry? { index[name].map { entries[$0] } }

    public var names: [String] { entries.map(\.name) }

    public static func == (a: ParameterLayout, b: ParameterLayout) -> Bool { a.entries == b.entries }
}
