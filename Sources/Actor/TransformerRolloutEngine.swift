import Foundation
import Model
import Sampling
import Wire

/// The actor's engine: a `Transformer` built from the learner's config, weights from snapshots, and a
/// `GroupedSampler` for each work item.
public final class TransformerRolloutEngine: RolloutEngine {
    public private(set) var model: Transformer?
    public let batchSequences: Int
    private var sampler: GroupedSampler?
    private var reservedLength = 0
    /// Sequences decoded together: `batchSequences` unless the memory plan lowered it.
    public private(set) var batchLimit: Int
    /// Called before the KV cache is (re)reserved with (model, tokens per sequence, max new tokens, group size,
    /// decode batch); returns the decode batch to use (the memory plan: `rlif actor` prints it and may lower the
    /// batch to fit, or ends the process when nothing fits).
    public var planDecoding: ((ModelConfig, Int, Int, Int, Int) throws -> Int)?

    /// How the sampling model holds its matrices (BF16: each snapshot's weights rounded when installed).
    public let baseWeights: BaseWeights

    /// Whether Hello says this actor applies adapters (`rlif actor --merged-weights` turns it off: the learner then
    /// sends merged full versions, as to actors from before adapter-only versions).
    public let appliesAdapters: Bool

    public init(batchSequences: Int, baseWeights: BaseWeights = .f32, appliesAdapters: Bool = true) {
        self.batchSequences = max(1, batchSequences)
        self.baseWeights = baseWeights
        self.appliesAdapters = appliesAdapters
        batchLimit = self.batchSequences
    }

    public func configure(modelConfigJSON: String, adapters: AdapterSpec?) throws {
        let config = try ModelConfig.decode(json: Data(modelConfigJSON.utf8), file: "the learner's model config (welcome)")
        let m = try Transformer(config: config, baseWeights: baseWeights)
        if let a = adapters {
            // Zero adapters (s·B·A = 0) until the first adapter snapshot; enabled, so decoding adds them.
            m.lora = try LoRAAdapters(config: LoRAConfig(rank: Int(a.rank), alpha: a.alpha, targetModules: a.targetModules),
                                      model: config)
        }
        model = m
        sampler = nil
        reservedLength = 0
    }

    /// Copies a snapshot into the model after checking that its manifest is exactly the model's layout (same
    /// names, shapes and offsets; for adapters the layout of the model's `LoRAAdapters`): a learner running a
    /// different architecture or adapter config is refused, not garbled.
    public func install(_ snapshot: AssembledSnapshot) throws {
        guard let model else { throw ActorError(message: "weights arrived before the model config") }
        let what = snapshot.kind == .frozenBase ? "frozen base" : "\(snapshot.kind == .adapter ? "adapter " : "")snapshot v\(snapshot.version)"
        switch snapshot.kind {
        case .full, .frozenBase:
            guard (snapshot.kind == .frozenBase) == (model.lora != nil) else {
                throw ActorError(message: "\(what) arrived, but the model is configured \(model.lora == nil ? "without" : "with") LoRA adapters")
            }
            try Self.check(snapshot, what, layout: model.layout.entries.map { ($0.name, $0.shape, $0.offset) },
                           floats: model.parameters.count)
            snapshot.parameters.withUnsafeBufferPointer { model.setParameters(from: $0.baseAddress!) }   // BF16 base: rounded
        case .adapter:
            guard let ad = model.lora else { throw ActorError(message: "\(what) arrived, but the model has no LoRA adapters") }
            try Self.check(snapshot, what, layout: ad.tensors.map { ($0.name, $0.shape, $0.offset) }, floats: ad.parameters.count)
            snapshot.parameters.withUnsafeBufferPointer { ad.parameters.pointer.update(from: $0.baseAddress!, count: ad.parameters.count) }
        }
    }

    /// The manifest is exactly `layout` (name, shape, offset in floats) and the buffer has `floats` values.
    private static func check(_ snapshot: AssembledSnapshot, _ what: String, layout: [(name: String, shape: [Int], offset: Int)],
                              floats: Int) throws {
        guard snapshot.manifest.count == layout.count else {
            throw ActorError(message: "\(what) has \(snapshot.manifest.count) tensors, the model \(layout.count)")
        }
        for (t, e) in zip(snapshot.manifest, layout) {
            guard t.name == e.name, t.shape.map(Int.init) == e.shape, Int(t.offsetElements) == e.offset else {
                throw ActorError(message: "\(what) tensor \(t.name) \(t.shape) at \(t.offsetElements) does not match the model's \(e.name) \(e.shape) at \(e.offset)")
            }
        }
        guard snapshot.parameters.count == floats else {
            throw ActorError(message: "\(what) has \(snapshot.parameters.count) floats, the model \(floats)")
        }
    }


    public func sample(_ item: WorkItem) throws -> (completions: [Completion], timings: Timings) {
        guard let model else { throw ActorError(message: "no model configured") }
        let p = item.sampling
        let params = SamplingParameters(temperature: p.temperature, topP: p.topP, topK: Int(p.topK),
                                        maxNewTokens: Int(p.maxNewTokens),
                                        stopTokenIds: Set(p.stopTokenIds.map { Int32(bitPattern: $0) }),
                                        stopSequences: p.stopSequences.map { $0.map { Int32(bitPattern: $0) } })
        let need = item.promptTokens.count + Int(p.maxNewTokens)
        var batch = max(batchLimit, Int(item.groupSize))
        if sampler == nil || need > reservedLength || batch > sampler!.maxBatchSequences {
            reservedLength = min(max(need, reservedLength), model.config.maxPositionEmbeddings)
            if let plan = planDecoding {
                batchLimit = try plan(model.config, reservedLength, Int(p.maxNewTokens), Int(item.groupSize), batch)
                batch = max(batchLimit, Int(item.groupSize))
            }
            model.reserveDecoding(slots: decoderSlotsNeeded(maxBatchSequences: batch), maxSequenceLength: reservedLength)
            sampler = GroupedSampler(decoder: model, maxBatchSequences: batch)
        }
        let request = GroupRequest(promptTokens: item.promptTokens.map { Int32(bitPattern: $0) },
                                   groupSize: Int(item.groupSize), parameters: params, seed: item.seed)
        let g = try sampler!.sample([request])[0]
        let completions = g.completions.map { c in
            Completion(tokens: c.tokens.map { UInt32(bitPattern: $0) }, logprobs: c.logprobs,
                       selfCertainty: c.selfCertainty, reward: c.meanSelfCertainty,
                       finishReason: c.finishReason == .stop ? .stop : .length, entropy: c.entropy)
        }
        return (completions, Timings(prefillMs: Float(g.prefillSeconds * 1000), decodeMs: Float(g.decodeSeconds * 1000),
                                     generatedTokens: UInt32(g.generatedTokens)))
    }
}
