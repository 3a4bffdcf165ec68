import Model

/// (context, completion) pairs packed into one forward: the completion token at sequence index P + k is
/// predicted by the logits row at P + k − 1, so only those rows need logits (`forward(_:logitRows:)`).
/// Shared by the GRPO and SFT trainers and `rlif score`.
public struct PackedCompletions {
    public let batch: PackedBatch
    /// Rows of `batch` whose logits predict `targets` (R).
    public let rows: [Int]
    /// The predicted tokens (R).
    public let targets: [Int32]
    /// Where sequence s's entries start in `rows`/`targets`, and how many it has (S each). A completion token
    /// with no context before it (empty prompt, k = 0) has no predicting row and is left out.
    public let offsets: [Int]
    public let lengths: [Int]

    public init(_ pairs: [(context: [Int32], completion: [Int32])]) {
        batch = PackedBatch(sequences: pairs.map { $0.context + $0.completion })
        var rows: [Int] = [], targets: [Int32] = [], offsets: [Int] = [], lengths: [Int] = []
        for (s, pair) in pairs.enumerated() {
            let start = batch.seqStarts[s], p = pair.context.count
            offsets.append(rows.count)
            for (k, t) in pair.completion.enumerated() where p + k >= 1 {
                rows.append(start + p + k - 1)
                targets.append(t)
            }
            lengths.append(rows.count - offsets[s])
        }
        self.rows = rows
        self.targets = targets
        self.offsets = offsets
        self.lengths = lengths
    }

    /// Splits items (with these token counts, in order) into consecutive micro-batches of at most `budget`
    /// tokens; an item larger than the budget gets a micro-batch of its own.
    public static func microBatches(tokenCounts: [Int], budget: Int) -> [Range<Int>] {
        var out: [Range<Int>] = []
        var i = 0
        while i < tokenCounts.count {
            var j = i, tokens = 0
            while j < tokenCounts.count && (j == i || tokens + tokenCounts[j] <= budget) {
                tokens += tokenCounts[j]
                j += 1
            }
            out.append(i..<j)
            i = j
        }
        return out
    }
}
