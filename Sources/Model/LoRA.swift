import Foundation
import Kernels
import Shared

/// The linear layers of a decoder layer LoRA can adapt, by their PEFT / Hugging Face module names.
public enum LoRATarget: String, Codable, Sendable, CaseIterable, Comparable {
    case q = "q_proj", k = "k_proj", v = "v_proj", o = "o_proj", gate = "gate_proj", up = "up_proj", down = "down_proj"

    /// The HF submodule path inside `model.layers.{i}`.
    public var module: String {
        switch self {
        case .q, .k, .v, .o: return "self_attn." + rawValue
        case .gate, .up, .down: return "mlp." + rawValue
        }
    }

    /// (out, in) features of the adapted Linear.
    public func shape(_ cfg: ModelConfig) -> (out: Int, in: Int) {
        switch self {
        case .q: return (cfg.qDim, cfg.hiddenSize)
        case .k, .v: return (cfg.kvDim, cfg.hiddenSize)
        case .o: return (cfg.hiddenSize, cfg.qDim)
        case .gate, .up: return (cfg.intermediateSize, cfg.hiddenSize)
        case .down: return (cfg.hiddenSize, cfg.intermediateSize)
        }
    }

    public static func < (a: LoRATarget, b: LoRATarget) -> Bool {
        allCases.firstIndex(of: a)! < allCases.firstIndex(of: b)!
    }
}

/// `lora:` in the training config. Defaults are PEFT's `LoraConfig` (r 8, lora_alpha 8, lora_dropout 0) except
/// the targets: every linear layer of the decoder (what TRL/PEFT users pass as `target_modules="all-linear"` for
/// a causal LM, the LM head excluded).
public struct LoRAConfig: Codable, Sendable, Equatable {
    public var rank: Int = 8
    public var alpha: Float = 8
    public var targetModules: [String] = LoRATarget.allCases.map(\.rawValue)
    /// Dropout on the adapters' input. Only 0 is implemented (PEFT's default); > 0 is refused by `validate`.
    public var dropout: Float = 0

    public init(rank: Int = 8, alpha: Float = 8, targetModules: [String] = LoRATarget.allCases.map(\.rawValue),
                dropout: Float = 0) {
        self.rank = rank; self.alpha = alpha; self.targetModules = targetModules; self.dropout = dropout
    }

    public enum CodingKeys: String, CodingKey, CaseIterable {
        case rank, alpha, targetModules = "target_modules", dropout
    }

    /// Missing keys keep their defaults.
    public init(from decoder: Decoder) throws {
        self.init()
        let c = try decoder.container(keyedBy: CodingKeys.self)
        if let x = try c.decodeIfPresent(Int.self, forKey: .rank) { rank = x }
        if let x = try c.decodeIfPresent(Float.self, forKey: .alpha) { alpha = x }
        if let x = try c.decodeIfPresent([String].self, forKey: .targetModules) { targetModules = x }
        if let x = try c.decodeIfPresent(Float.self, forKey: .dropout) { dropout = x }
    }

    /// PEFT's `scaling` (use_rslora off): alpha / r.
    public var scale: Float { alpha / Float(rank) }

    /// The targets in layer order (q, k, v, o, gate, up, down), each once.
    public func targets() throws -> [LoRATarget] {
        var out: Set<LoRATarget> = []
        for name in targetModules {
            guard let t = LoRATarget(rawValue: name) else {
                throw LoRAConfigError(key: "target_modules", message: "unknown module '\(name)' (known: \(LoRATarget.allCases.map(\.rawValue).joined(separator: ", ")))")
            }
            out.insert(t)
        }
        return out.sorted()
    }

    /// The same configuration with the targets in layer order, each once (what `LoRAAdapters.config` holds; two
    /// configs that adapt the same modules compare equal after this).
    public func normalized() throws -> LoRAConfig {
        var c = self
        c.targetModules = try targets().map(\.rawValue)
        return c
    }

    /// Range checks; the error names the key under `lora`.
    public func validate() throws {
        guard rank >= 1 else { throw LoRAConfigError(key: "rank", message: "must be >= 1, got \(rank)") }
        guard alpha.isFinite, alpha > 0 else { throw LoRAConfigError(key: "alpha", message: "must be a finite number > 0, got \(alpha)") }
        guard dropout.isFinite, dropout >= 0, dropout < 1 else {
            throw LoRAConfigError(key: "dropout", message: "must be in [0, 1), got \(dropout)")
        }
        guard dropout == 0 else {
            throw LoRAConfigError(key: "dropout", message: "\(dropout): LoRA dropout is not implemented; only 0 (PEFT's default) is supported")
        }
        guard !targetModules.isEmpty else { throw LoRAConfigError(key: "target_modules", message: "must name at least one module") }
        _ = try targets()
    }
}

/// A `lora.<key>` problem (the training config wraps it into its ConfigError).
public struct LoRAConfigError: Error, CustomStringConvertible, Equatable {
    public var key: String
    public var message: String
    public var description: String { "lora.\(key): \(message)" }
}

/// The adapters of one model: for every decoder layer and target, A (r, in) and B (out, r) in one flat buffer
/// (each tensor 64-byte aligned), their gradients in a second one with the same layout, and the per-layer
/// A·x rows the backward reads. Attached to a `Transformer` (`Transformer.lora`), which then adds s·B·A·x to the
/// targeted linear layers in every forward (training, scoring, prefill and decode) while `enabled`, and whose
/// backward then accumulates only these gradients: the base weights are frozen and get no gradient buffer.
public final class LoRAAdapters {
    public let config: LoRAConfig
    public let rank: Int
    public let scale: Float
    public let targets: [LoRATarget]
    /// Switches the low-rank term off (the base model alone, e.g. the KL reference) without touching the weights.
    public var enabled = true

    public struct Entry: Sendable, Equatable {
        public let layer: Int
        public let target: LoRATarget
        /// Offsets of A (r, in) and B (out, r) in `parameters` / `gradients`.
        public let a: Int, b: Int
        public let outFeatures: Int, inFeatures: Int
        /// PEFT tensor names in adapter_model.safetensors.
        public var nameA: String { "base_model.model.model.layers.\(layer).\(target.module).lora_A.weight" }
        public var nameB: String { "base_model.model.model.layers.\(layer).\(target.module).lora_B.weight" }
    }
    public let entries: [Entry]
    /// entries[index[layer][target]]
    private let index: [[LoRATarget: Int]]
    public let parameters: FloatBuffer
    /// Adapter gradients (same layout as `parameters`).
    public let gradients: FloatBuffer
    /// Floats that are adapter parameters (padding excluded).
    public let parameterCount: Int

    /// (slots × targets, N, r) saved A·x rows, grown on demand; `slots` is the layer count when the arena keeps
    /// every layer (a backward reads them all) and 1 otherwise (recompute / inference rewrite them per layer).
    private var saved: FloatBuffer?
    private var savedTokens = 0, savedSlots = 0
    /// (N, r) scratch of the backward and the decode step.
    private var scratch: FloatBuffer?

    /// Zero adapters (A and B 0: the model is the base); `initialize(seed:)` gives PEFT's start.
    public init(config: LoRAConfig, model cfg: ModelConfig) throws {
        try config.validate()
        self.config = try config.normalized()
        rank = config.rank
        scale = config.scale
        targets = try config.targets()
        var entries: [Entry] = []
        var index: [[LoRATarget: Int]] = []
        var offset = 0, count = 0
        func take(_ n: Int) -> Int {
            let o = offset
            offset += (n + ParameterLayout.alignmentFloats - 1) / ParameterLayout.alignmentFloats * ParameterLayout.alignmentFloats
            count += n
            return o
        }
        for li in 0..<cfg.numHiddenLayers {
            var row: [LoRATarget: Int] = [:]
            for t in targets {
                let (o, i) = t.shape(cfg)
                let a = take(rank * i), b = take(o * rank)
                row[t] = entries.count
                entries.append(Entry(layer: li, target: t, a: a, b: b, outFeatures: o, inFeatures: i))
            }
            index.append(row)
        }
        self.entries = entries
        self.index = index
        parameterCount = count
        parameters = FloatBuffer(count: offset)
        gradients = FloatBuffer(count: offset)
    }

    /// PEFT's `reset_lora_parameters("gaussian"=False)`: A ~ kaiming_uniform(a = √5) = U(−1/√in, 1/√in)
    /// (gain √(2/(1+5)) · √(3/in)), B = 0 — so the adapted model starts as the base. Seeded (SplitMix64), so a run
    /// is reproducible; the draws are not torch's.
    public func initialize(seed: UInt64) {
        var rng = SplitMix64(seed: seed)
        parameters.zero()
        for e in entries {
            let bound = 1 / Double(e.inFeatures).squareRoot()
            let a = parameters.pointer + e.a
            for i in 0..<(rank * e.inFeatures) { a[i] = Float((2 * rng.nextUniform() - 1) * bound) }
        }
    }

    public func entry(layer: Int, target: LoRATarget) -> Entry? { index[layer][target].map { entries[$0] } }

    /// Every adapter tensor: (PEFT name, offset, shape [rows, cols]) in file order.
    public var tensors: [(name: String, offset: Int, shape: [Int])] {
        entries.flatMap { e in [(e.nameA, e.a, [rank, e.inFeatures]), (e.nameB, e.b, [e.outFeatures, rank])] }
    }

    /// FNV-1a of the adapter layout (like `ParameterLayout.fingerprint`), stored with the flat AdamW moments.
    public var fingerprint: String {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for t in tensors {
            for b in "\(t.name)@\(t.offset):\(t.shape[0])x\(t.shape[1]);".utf8 { h ^= UInt64(b); h = h &* 0x100_0000_01b3 }
        }
        return "lora-" + String(h, radix: 16)
    }

    /// The (N, r) A·x rows of `entry` for a forward of N ≤ `tokens` rows (layer slot 0 unless every layer is kept).
    func savedRows(_ e: Entry, tokens: Int, keepAllLayers: Bool) -> UnsafeMutablePointer<Float> {
        let slots = keepAllLayers ? index.count : 1
        if tokens > savedTokens || slots > savedSlots {
            savedTokens = max(tokens, savedTokens)
            savedSlots = max(slots, savedSlots)
            saved = nil
            saved = FloatBuffer(count: savedSlots * targets.count * savedTokens * rank)
        }
        let slot = keepAllLayers ? e.layer : 0
        let t = targets.firstIndex(of: e.target)!
        return saved!.pointer + ((slot * targets.count + t) * savedTokens * rank)
    }

    func scratchRows(_ tokens: Int) -> UnsafeMutablePointer<Float> {
        if (scratch?.count ?? 0) < tokens * rank { scratch = nil; scratch = FloatBuffer(count: tokens * rank) }
        return scratch!.pointer
    }

    /// Floats the adapters hold for a forward of `tokens` rows: parameters, gradients, AdamW's two moments (the
    /// optimizer's, counted here for the memory estimate) and the saved A·x rows.
    public func memoryFloats(tokens: Int, layers: Int, keepAllLayers: Bool) -> Int {
        parameters.count * 4 + (keepAllLayers ? layers : 1) * targets.count * tokens * rank + tokens * rank
    }
}
