import Model

/// The transformer's KV-cache API is the sampler's decoder as it stands (prefill, fork, batched decode,
/// release). Call `reserveDecoding(slots:maxSequenceLength:)` first: the sampler needs one slot per live
/// sequence plus one for the prompt being prefilled.
extension Transformer: BatchDecoder {}
