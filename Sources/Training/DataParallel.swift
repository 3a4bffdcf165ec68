import GRPO
import Model
import Sampling

/// Data parallelism for the GRPO step: the ranks of one learner each run the forward + backward of a share of every
/// minibatch's sequences and sum their gradients, so together they compute the one-process step.
///
/// Why the result equals the one-process step (up to the order of float additions): every rank holds all of the
/// step's groups, so group advantages, reward statistics and the loss normaliser (completion tokens or sequences of
/// the whole minibatch) are computed identically everywhere; each rank's gradient is Σ over its sequences of
/// dL_s/dθ with that global normaliser; the sum over ranks is the whole minibatch's gradient. The grad norm, the
/// update guard and AdamW then run on identical numbers on every rank, so the weights stay identical
/// (`WeightHash` checks it every N steps in the learner).
public protocol DataParallelGroup: AnyObject {
    /// This process's rank in 0..<size; rank 0 is the one that talks to actors and writes files.
    var rank: Int { get }
    var size: Int { get }
    /// In-place sum over ranks of `count` (≤ Int32.max) floats: every rank ends with the total.
    /// `allreduceGradients` splits larger buffers.
    func allreduceSum(_ buffer: UnsafeMutablePointer<Float>, count: Int) throws
    /// In-place sum over ranks of a few doubles (losses, statistics, counts).
    func allreduceSum(_ values: inout [Double]) throws
}

/// Which rank trains which sequence: balanced by tokens, the same answer on every rank (pure integer logic).
public enum TokenBalancedSplit {
    /// Owner rank of each item given its token count: longest-processing-time-first — items by decreasing tokens
    /// (ties: lower index first) each to the rank with the fewest tokens so far (ties: lower rank). The largest
    /// rank load is at most 4/3 − 1/(3·ranks) of the optimum (Graham's bound) and never more than the mean plus one
    /// item.
    /// Every rank may get nothing when there are fewer items than ranks; it then contributes zero gradients.
    public static func owners(tokenCounts: [Int], ranks: Int) -> [Int] {
        precondition(ranks >= 1, "ranks must be >= 1")
        var owner = [Int](repeating: 0, count: tokenCounts.count)
        guard ranks > 1 else { return owner }
        let order = tokenCounts.indices.sorted { tokenCounts[$0] != tokenCounts[$1] ? tokenCounts[$0] > tokenCounts[$1] : $0 < $1 }
        var load = [Int](repeating: 0, count: ranks)
        for i in order {
            var best = 0
            for r in 1..<ranks where load[r] < load[best] { best = r }
            owner[i] = best
            load[best] += tokenCounts[i]
        }
        return owner
    }

    /// Tokens each rank gets under `owners` (for logs and tests).
    public static func loads(tokenCounts: [Int], owners: [Int], ranks: Int) -> [Int] {
        var load = [Int](repeating: 0, count: ranks)
        for (t, r) in zip(tokenCounts, owners) { load[r] += t }
        return load
    }
}

extension DataParallelGroup {
    /// Gradients are reduced in buckets of this many floats (16 MiB): MPI counts are Int32, and the library's
    /// scratch for an in-place reduction stays bounded whatever the model size.
    public static var gradientBucket: Int { 4 << 20 }

    /// Sums a gradient buffer over ranks bucket by bucket.
    public func allreduceGradients(_ buffer: UnsafeMutablePointer<Float>, count: Int) throws {
        var start = 0
        while start < count {
            let n = min(Self.gradientBucket, count - start)
            try allreduceSum(buffer + start, count: n)
            start += n
        }
    }
}

/// The scalars of one minibatch summed over ranks in one reduction (they are sums already: the normaliser is global).
enum DataParallelSums {
    static func reduce(loss: inout Double, pg: inout Double, kl: inout Double, tokens: inout Int,
                       stats: inout PolicyLossStats, over dp: DataParallelGroup) throws {
        var v = [loss, pg, kl, Double(tokens), stats.tokenWeight, Double(stats.sequenceCount), stats.clippedLowSum,
                 stats.clippedHighSum, stats.dualClippedSum, stats.ratioSum, stats.approxKLSum, stats.klSum,
                 stats.tisWeightSum, stats.tisCappedSum]
        try dp.allreduceSum(&v)
        loss = v[0]; pg = v[1]; kl = v[2]; tokens = Int(v[3].rounded())
        stats.tokenWeight = v[4]; stats.sequenceCount = Int(v[5].rounded()); stats.clippedLowSum = v[6]
        stats.clippedHighSum = v[7]; stats.dualClippedSum = v[8]; stats.ratioSum = v[9]; stats.approxKLSum = v[10]
        stats.klSum = v[11]; stats.tisWeightSum = v[12]; stats.tisCappedSum = v[13]
    }
}

extension GRPOTrainer {
    /// `rescore` of several groups; with data-parallel ranks each rank re-scores a token-balanced share of the
    /// groups and the results are shared with one sum-reduction (every value is written by exactly one rank and is
    /// zero elsewhere, so the sum is that value, bit for bit). Without ranks, plain `rescore` group by group.
    public func rescore(groups: [(prompt: [Int32], completions: [SampledCompletion])]) throws -> [[SampledCompletion]] {
        guard let dp = dataParallel, dp.size > 1, groups.contains(where: { !$0.completions.isEmpty }) else {
            return try groups.map { try rescore(prompt: $0.prompt, completions: $0.completions) }
        }
        let tokens = groups.map { g in g.completions.reduce(0) { $0 + g.prompt.count + $1.tokens.count } }
        let owner = TokenBalancedSplit.owners(tokenCounts: tokens, ranks: dp.size)
        // Per completion: log-probs, self-certainty, entropy, one value per completion token each.
        var offset: [Int] = [], total = 0
        for g in groups { offset.append(total); total += 3 * g.completions.reduce(0) { $0 + $1.tokens.count } }
        var flat = [Float](repeating: 0, count: total)
        for (i, g) in groups.enumerated() where owner[i] == dp.rank {
            var at = offset[i]
            for c in try rescore(prompt: g.prompt, completions: g.completions) {
                for a in [c.logprobs, c.selfCertainty, c.entropy] {
                    guard a.count == c.tokens.count else {
                        throw ModelError.invalidInput("rescore: \(a.count) values for \(c.tokens.count) tokens")
                    }
                    flat.replaceSubrange(at..<at + a.count, with: a)
                    at += a.count
                }
            }
        }
        if total > 0 { try flat.withUnsafeMutableBufferPointer { try dp.allreduceGradients($0.baseAddress!, count: total) } }
        return groups.enumerated().map { i, g in
            var at = offset[i]
            return g.completions.map { c in
                var c = c
                let n = c.tokens.count
                c.logprobs = Array(flat[at..<at + n]); c.selfCertainty = Array(flat[at + n..<at + 2 * n])
                c.entropy = Array(flat[at + 2 * n..<at + 3 * n])
                at += 3 * n
                return c
            }
        }
    }
}
