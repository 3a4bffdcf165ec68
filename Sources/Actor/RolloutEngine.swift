import Wire

/// The compute half of an actor: holds a model, swaps weights, samples groups. Runs on the actor's worker
/// thread only (never concurrently with itself), except `appliesAdapters`, which must be a constant.
public protocol RolloutEngine: AnyObject {
    /// Whether the engine can sample with a frozen base + LoRA adapters (said in Hello: in a LoRA run the learner
    /// then sends the base once and adapter-only versions).
    var appliesAdapters: Bool { get }
    /// (Re)builds the model for an HF `config.json` (from the learner's Welcome), with LoRA adapters attached and
    /// enabled when `adapters` is given (zero until an adapter snapshot arrives). Weights follow separately.
    func configure(modelConfigJSON: String, adapters: AdapterSpec?) throws
    /// Installs a complete, CRC-verified snapshot (manifest checked against the model's layout): full weights, the
    /// frozen base (the adapters untouched) or a version's adapters (the base untouched).
    func install(_ snapshot: AssembledSnapshot) throws
    /// Samples `item.groupSize` completions of `item.promptTokens`, with per-token behaviour log-probs and
    /// self-certainty, and each completion's reward (mean self-certainty).
    func sample(_ item: WorkItem) throws -> (completions: [Completion], timings: Timings)
}
