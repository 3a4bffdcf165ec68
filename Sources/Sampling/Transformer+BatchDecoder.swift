import Model

/// The transformer's KV-cache API is the sampler's decoder as it stands (prefill, fork, batched decode,
/// release). Call `reserveDecoding(slots:maxSequenceLength:)` first, with `decoderSlotsNeeded(maxBatchSequences:)`.
extension Transformer: BatchDecoder {}

extension GroupedSampler {
    /// Reserves `model`'s KV cache for `requests` — `decoderSlotsNeeded` slots, room for the longest prompt plus
    /// the largest `maxNewTokens` — and samples them.
    public static func sample(_ requests: [GroupRequest], on model: Transformer, maxBatchSequences: Int,
                              progress: ((Int) -> Void)? = nil) throws -> [SampledGroup] {
        let batch = max(maxBatchSequences, requests.map(\.groupSize).max() ?? 1)
        let longest = requests.map { $0.promptTokens.count + $0.parameters.maxNewTokens }.max() ?? 1
        model.reserveDecoding(slots: decoderSlotsNeeded(maxBatchSequences: batch), maxSequenceLength: longest)
        return try GroupedSampler(decoder: model, maxBatchSequences: batch).sample(requests, progress: progress)
    }
}
