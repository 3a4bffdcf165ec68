import Wire

/// The compute half of an actor: holds a model, swaps weights, samples groups. Runs on the actor's worker
/// thread only (never concurrently with itself).
public protocol RolloutEngine: AnyObject {
    /// (Re)builds the model for an HF `config.json` (from the learner's Welcome). Weights follow separately.
    func configure(modelConfigJSON: String) throws
    /// Installs a complete, CRC-verified snapshot (manifest checked against the model's layout).
    func install(_ snapshot: AssembledSnapshot) throws
    /// Samples `item.groupSize` completions of `item.promptTokens`, with per-token behaviour log-probs and
    /// self-certainty, and each completion's reward (mean self-certainty).
    func sample(_ item: WorkItem) throws -> (completions: [Completion], timings: Timings)
}
