import Foundation
import Sampling
import Tokenizer

/// What a step's rollouts looked like, as the official INTUITOR logs report it: the spread of self-certainty
/// within groups (the signal GRPO learns from: a group whose completions are equally certain teaches nothing),
/// entropy, truncation, completion lengths, and — with weight 0, never as a training signal — how often the
/// training completions match the dataset's answer. Pure function of the groups; tests in `RolloutStatsTests`.
public struct RolloutStats: Codable, Sendable, Equatable {
    /// Mean over groups of the (population) std of the completions' mean self-certainty within the group.
    public var selfCertaintyGroupStd: Double = 0
    /// Smallest and largest completion mean self-certainty in the step.
    public var selfCertaintyMin: Double = 0
    public var selfCertaintyMax: Double = 0
    /// Mean per-token entropy (nats) over every completion token; nil when the actors sent no entropy.
    public var entropyMean: Double? = nil
    /// Fraction of completions that hit max_new_tokens.
    public var truncatedFraction: Double = 0
    public var lengthMin: Int = 0
    public var lengthMax: Int = 0
    /// Fraction of completions whose answer matches the dataset's (over groups that have an answer); nil when
    /// no group has one. Reported only.
    public var trainAccuracy: Double? = nil

    enum CodingKeys: String, CodingKey {
        case selfCertaintyGroupStd = "self_certainty_group_std", selfCertaintyMin = "self_certainty_min"
        case selfCertaintyMax = "self_certainty_max", entropyMean = "entropy", truncatedFraction = "truncated_fraction"
        case lengthMin = "response_length_min", lengthMax = "response_length_max", trainAccuracy = "train_accuracy"
    }

    public init() {}

    public init(groups: [TrainingGroup]) {
        var stdSum = 0.0, stdCount = 0
        var scMin = Double.infinity, scMax = -Double.infinity
        var entSum = 0.0, entTokens = 0
        var truncated = 0, total = 0
        var lMin = Int.max, lMax = 0
        var right = 0, judged = 0
        for g in groups {
            let sc = g.completions.map { Double($0.meanSelfCertainty) }
            if !sc.isEmpty {
                let mean = sc.reduce(0, +) / Double(sc.count)
                stdSum += (sc.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(sc.count)).squareRoot()
                stdCount += 1
                scMin = min(scMin, sc.min()!)
                scMax = max(scMax, sc.max()!)
            }
            for c in g.completions {
                total += 1
                if c.finishReason == .length { truncated += 1 }
                lMin = min(lMin, c.tokens.count)
                lMax = max(lMax, c.tokens.count)
                if c.entropy.count == c.tokens.count {
                    for e in c.entropy { entSum += Double(e) }
                    entTokens += c.entropy.count
                }
            }
            if let ok = g.correct {
                right += ok.filter { $0 }.count
                judged += ok.count
            }
        }
        selfCertaintyGroupStd = stdCount > 0 ? stdSum / Double(stdCount) : 0
        selfCertaintyMin = scMin.isFinite ? scMin : 0
        selfCertaintyMax = scMax.isFinite ? scMax : 0
        entropyMean = entTokens > 0 ? entSum / Double(entTokens) : nil
        truncatedFraction = total > 0 ? Double(truncated) / Double(total) : 0
        lengthMin = total > 0 ? lMin : 0
        lengthMax = lMax
        trainAccuracy = judged > 0 ? Double(right) / Double(judged) : nil
    }
}

/// A few completions of the run as text, every `every` steps, into `samples.jsonl` (one JSON object per
/// completion: step, prompt id, prompt and completion text, reward, mean self-certainty, length, finish reason,
/// and whether it matched the dataset's answer): what the official trainer prints to its logs, kept in a file.
public struct SampleLog {
    public let url: URL
    public let every: Int
    public let perStep: Int
    let tokenizer: Tokenizer

    public init(output: URL, every: Int, perStep: Int = 4, tokenizer: Tokenizer) {
        url = output.appendingPathComponent("samples.jsonl")
        self.every = every
        self.perStep = perStep
        self.tokenizer = tokenizer
    }

    /// The records training step `step` (1-based: optimizer steps done after it) logs: the first completion of
    /// each of the first `perStep` groups, when `step` is a multiple of `every`; none otherwise or when `every` is 0.
    public func records(step: Int, groups: [TrainingGroup]) -> [SampleRecord] {
        guard every > 0, step % every == 0 else { return [] }
        return groups.prefix(perStep).compactMap { g in
            guard let c = g.completions.first else { return nil }
            return SampleRecord(step: step, promptId: g.promptId,
                                prompt: tokenizer.decode(g.promptTokens, skipSpecialTokens: false),
                                completion: tokenizer.decode(c.tokens, skipSpecialTokens: false),
                                reward: Double(g.rewards.first ?? 0), selfCertainty: Double(c.meanSelfCertainty),
                                length: c.tokens.count, finishReason: c.finishReason.rawValue, correct: g.correct?.first)
        }
    }

    /// Appends `records(step:groups:)` (step 1-based) to samples.jsonl.
    public func append(step: Int, groups: [TrainingGroup]) throws {
        let recs = records(step: step, groups: groups)
        guard !recs.isEmpty else { return }
        let log = try MetricsLog(url: url, truncate: false)
        for r in recs { try log.append(r) }
    }
}
