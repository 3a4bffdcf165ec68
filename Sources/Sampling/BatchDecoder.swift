/// What the grouped sampler needs from a model: prefill a prompt into a KV-cache slot, fork that slot for the
/// G completions of its group, and advance many slots by one token at once. `Model.Transformer` conforms (see
/// `Transformer+BatchDecoder.swift`); the protocol keeps sampling logic independent of the engine's internals.
public protocol BatchDecoder: AnyObject {
    /// Width of a logits row.
    var vocabularySize: Int { get }
    /// Most tokens (prompt + completion) one slot can hold.
    var maxSequenceLength: Int { get }
    /// Runs the prompt through the model into a fresh slot; writes the last position's logits (V).
    func prefill(_ tokens: [Int32], lastLogits: UnsafeMutablePointer<Float>) throws -> Int
    /// Makes `count` new slots that continue from `slot`'s state (the slot itself stays valid).
    func fork(_ slot: Int, count: Int) throws -> [Int]
    /// Appends `tokens[b]` to `slots[b]` for every b and writes the next-token logits (B, V).
    func decode(tokens: [Int32], slots: [Int], logits: UnsafeMutablePointer<Float>) throws
    /// Frees slots for reuse (a forked prompt's slot stays pinned while its children read it).
    func release(_ slots: [Int])
    /// Slots that `prefill` / `fork` can take now.
    var freeSlotCount: Int { get }
}

/// KV-cache slots a `GroupedSampler` with `maxBatchSequences` needs: one per live sequence, one per live group's
/// prompt (a group of ≥ 2 reads its prompt's slot by reference, so the slot is pinned while the group decodes;
/// at most half the live sequences are such groups), and one for the prompt being prefilled.
public func decoderSlotsNeeded(maxBatchSequences batch: Int) -> Int { batch + batch / 2 + 1 }
