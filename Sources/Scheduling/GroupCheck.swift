import Foundation
import Wire

/// Checks a RolloutGroup against the task it answers and against what the model can produce, before the
/// learner trains on it: an actor is not trusted blindly (a listed key can still be a buggy or hostile actor).
///
/// What the wire decoder already refused (NaN/inf, unequal per-token array lengths) is checked again here, so
/// this type alone states what the trainer may assume. Pure: tested without sockets (`GroupCheckTests`).
public struct GroupCheck: Sendable, Equatable {
    /// The policy's vocabulary size V: every token id is < V, and entropy lies in [0, log V].
    ///
    /// Self-certainty is KL(U ‖ p) = logsumexp(z) − mean(z) − log V ≥ 0, and it has NO upper bound: a token whose
    /// probability is tiny makes it large (an honest tiny model gives 8.5 nats at V = 512 > log V = 6.2). The
    /// bound [0, log V] holds for KL(p ‖ U) = log V − entropy, not for INTUITOR's reward. So self-certainty is only
    /// checked to be finite and ≥ 0 here; values that are in range but made up are `verify_rewards`' job.
    public var vocabSize: Int
    /// Slack on the ranges for float rounding (per-token values are computed in Float).
    public var tolerance: Float = 1e-3

    public init(vocabSize: Int, tolerance: Float = 1e-3) {
        self.vocabSize = vocabSize
        self.tolerance = tolerance
    }

    /// The first problem of `group` as an answer to `task` (field path and values), or nil when it is sound.
    public func problem(_ group: RolloutGroup, task: WorkItem) -> String? {
        if group.promptId != task.promptId {
            return "prompt_id '\(group.promptId)' is not the task's '\(task.promptId)'"
        }
        if group.completions.count != Int(task.groupSize) {
            return "\(group.completions.count) completions, the task asked for group size \(task.groupSize)"
        }
        let logV = Float(log(Double(max(1, vocabSize))))
        let hi = logV + tolerance, lo = -tolerance
        let maxNew = Int(task.sampling.maxNewTokens)
        let stops = Set(task.sampling.stopTokenIds)
        for (i, c) in group.completions.enumerated() {
            let at = "completions[\(i)]"
            let n = c.tokens.count
            if n == 0 { return "\(at).tokens is empty (a completion has at least one token)" }
            if maxNew > 0 && n > maxNew { return "\(at): \(n) tokens, more than max_new_tokens \(maxNew)" }
            if c.logprobs.count != n { return "\(at).logprobs: \(c.logprobs.count) values for \(n) tokens" }
            if c.selfCertainty.count != n { return "\(at).self_certainty: \(c.selfCertainty.count) values for \(n) tokens" }
            if !c.entropy.isEmpty && c.entropy.count != n { return "\(at).entropy: \(c.entropy.count) values for \(n) tokens" }
            for (k, t) in c.tokens.enumerated() where Int(t) >= vocabSize {
                return "\(at).tokens[\(k)] = \(t) is not below the vocabulary size \(vocabSize)"
            }
            // A stop token ends a completion: one before the last position cannot have been sampled under this task.
            if !stops.isEmpty, let k = c.tokens.dropLast().firstIndex(where: { stops.contains($0) }) {
                return "\(at).tokens[\(k)] = \(c.tokens[k]) is a stop token before the end of the completion"
            }
            if c.finishReason == .stop || c.finishReason == .eos {
                let last = c.tokens[n - 1]
                let bySequence = task.sampling.stopSequences.contains { s in !s.isEmpty && c.tokens.count >= s.count && Array(c.tokens.suffix(s.count)) == s }
                if !stops.contains(last) && !bySequence {
                    return "\(at): finish reason \(c.finishReason) but the last token \(last) is not a stop token or the end of a stop sequence"
                }
            }
            for (k, x) in c.logprobs.enumerated() where !(x.isFinite && x <= tolerance) {
                return "\(at).logprobs[\(k)] = \(x): a log-probability is finite and at most 0"
            }
            for (k, x) in c.selfCertainty.enumerated() where !(x.isFinite && x >= lo) {
                return "\(at).self_certainty[\(k)] = \(x): self-certainty KL(U‖p) is finite and at least 0"
            }
            for (k, x) in c.entropy.enumerated() where !(x.isFinite && x >= lo && x <= hi) {
                return "\(at).entropy[\(k)] = \(x) is outside [0, log V = \(logV)]"
            }
            // The reported reward is the completion's mean self-certainty (what actors compute): anything else is
            // out of what the model can produce, and the learner derives its own rewards from the per-token values.
            var mean = 0.0
            for x in c.selfCertainty { mean += Double(x) }
            mean /= Double(n)
            if !(c.reward.isFinite && abs(Double(c.reward) - mean) <= Double(tolerance) * (1 + abs(mean))) {
                return "\(at).reward = \(c.reward) is not the mean self-certainty \(Float(mean)) of its tokens"
            }
        }
        return nil
    }
}
