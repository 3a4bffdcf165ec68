import Foundation

/// Group rewards: every reward is a documented function of the G completions sampled for one prompt (some —
/// majority vote, z-scored mixes — genuinely need the whole group). The learner turns the returned rewards into
/// advantages with `groupAdvantages`.

/// What the learner knows about one completion.
public struct CompletionFeatures: Sendable, Equatable {
    /// Response token ids (T,).
    public var tokens: [Int32]
    /// Per-token self-certainty (T,): KL(U ‖ p(·|prefix)) = logsumexp(z) − mean(z) − log V from raw logits z.
    public var selfCertainty: [Float]
    /// Per-token entropy of p(·|prefix) in nats (T,), when the actor computed it.
    public var entropy: [Float]?
    /// Detokenised response, when available (answer-based rewards need it).
    public var text: String?

    public init(tokens: [Int32], selfCertainty: [Float], entropy: [Float]? = nil, text: String? = nil) {
        self.tokens = tokens; self.selfCertainty = selfCertainty; self.entropy = entropy; self.text = text
    }
}

/// Per-prompt information shared by the group.
public struct RewardContext: Sendable, Equatable {
    /// The gold answer (GSM8K's "#### 42" part), for `AccuracyReward`.
    public var reference: String?
    /// The prompt text, for rewards that want it.
    public var prompt: String?
    public init(reference: String? = nil, prompt: String? = nil) { self.reference = reference; self.prompt = prompt }
}

/// A reward over a group of completions: returns one Float per completion, same order.
public protocol GroupReward: Sendable {
    /// The registry name ("self_certainty", "mix:…").
    var name: String { get }
    func rewards(group: [CompletionFeatures], context: RewardContext) throws -> [Float]
}

/// Why a reward could not be computed; names the reward and the completion index.
public enum RewardError: Error, CustomStringConvertible, Equatable {
    case emptyCompletion(reward: String, index: Int)
    case featureCountMismatch(reward: String, index: Int, feature: String, count: Int, tokens: Int)
    case missingFeature(reward: String, index: Int, feature: String)
    case nonFiniteFeature(reward: String, index: Int, feature: String, position: Int)
    case missingReference(reward: String)
    case unknownReward(name: String, known: [String])
    case invalidSpec(spec: String, why: String)
    case missingClosure(reward: String, closure: String)

    public var description: String {
        switch self {
        case let .emptyCompletion(r, i):
            return "reward \(r): completion \(i) has no tokens (a mean over 0 tokens is undefined)"
        case let .featureCountMismatch(r, i, f, c, t):
            return "reward \(r): completion \(i) has \(c) `\(f)` values for \(t) tokens"
        case let .missingFeature(r, i, f):
            return "reward \(r): completion \(i) has no `\(f)` (the actor must send it for this reward)"
        case let .nonFiniteFeature(r, i, f, p):
            return "reward \(r): completion \(i) has a non-finite `\(f)` at token \(p)"
        case let .missingReference(r):
            return "reward \(r): RewardContext.reference (the gold answer) is required"
        case let .unknownReward(n, known):
            return "unknown reward \"\(n)\"; known: \(known.joined(separator: ", ")), or mix:name=weight,…"
        case let .invalidSpec(s, why):
            return "reward spec \"\(s)\": \(why)"
        case let .missingClosure(r, c):
            return "reward \(r) needs the `\(c)` closure (from the Answers module) to be passed to RewardRegistry.make"
        }
    }
}

/// Mean of a per-token feature, in Double; validates count and finiteness.
func tokenMean(_ values: [Float], tokens: Int, reward: String, index: Int, feature: String) throws -> Double {
    guard tokens > 0 else { throw RewardError.emptyCompletion(reward: reward, index: index) }
    guard values.count == tokens else {
        throw RewardError.featureCountMismatch(reward: reward, index: index, feature: feature, count: values.count, tokens: tokens)
    }
    var s = 0.0
    for (p, v) in values.enumerated() {
        guard v.isFinite else { throw RewardError.nonFiniteFeature(reward: reward, index: index, feature: feature, position: p) }
        s += Double(v)
    }
    return s / Double(tokens)
}

/// INTUITOR (arXiv 2505.19590, eq. 4) default reward: r = (1/T) Σ_t selfCertainty_t, the mean over response tokens
/// of KL(U ‖ p_θ(·|q, o_<t)). Empty completions are an error.
public struct SelfCertaintyReward: GroupReward {
    public let name = "self_certainty"
    public init() {}
    public func rewards(group: [CompletionFeatures], context: RewardContext) throws -> [Float] {
        try group.enumerated().map { i, c in
            Float(try tokenMean(c.selfCertainty, tokens: c.tokens.count, reward: name, index: i, feature: "selfCertainty"))
        }
    }
}

/// RENT (Prabhudesai et al., arXiv 2505.22660): r = −(1/T) Σ_t H_t, the negative mean token entropy.
/// Needs `CompletionFeatures.entropy`.
public struct NegativeEntropyReward: GroupReward {
    public let name = "rent"
    public init() {}
    public func rewards(group: [CompletionFeatures], context: RewardContext) throws -> [Float] {
        try group.enumerated().map { i, c in
            guard let e = c.entropy else { throw RewardError.missingFeature(reward: name, index: i, feature: "entropy") }
            return Float(-(try tokenMean(e, tokens: c.tokens.count, reward: name, index: i, feature: "entropy")))
        }
    }
}

/// Verifiable accuracy: r = 1 if `checker(text, context.reference)` else 0. The checker (answer extraction and
/// equivalence) is injected, so this module does not depend on the Answers module.
public struct AccuracyReward: GroupReward {
    public let name = "accuracy"
    public let checker: @Sendable (_ completionText: String, _ reference: String) -> Bool
    public init(checker: @escaping @Sendable (_ completionText: String, _ reference: String) -> Bool) {
        self.checker = checker
    }
    public func rewards(group: [CompletionFeatures], context: RewardContext) throws -> [Float] {
        guard let ref = context.reference else { throw RewardError.missingReference(reward: name) }
        return try group.enumerated().map { i, c in
            guard let text = c.text else { throw RewardError.missingFeature(reward: name, index: i, feature: "text") }
            return checker(text, ref) ? 1 : 0
        }
    }
}

/// TTRL (Zuo et al., arXiv 2504.16084) majority-vote pseudo-label: each completion's answer is `extractor(text)`;
/// the majority answer is the most frequent non-nil answer in the group; r = 1 for completions whose answer
/// equals it, 0 otherwise (including completions with no extractable answer). Ties between equally frequent
/// answers go to the one that occurs first in group order (deterministic). No answers at all → all 0.
public struct MajorityVoteReward: GroupReward {
    public let name = "majority_vote"
    public let extractor: @Sendable (_ completionText: String) -> String?
    public init(extractor: @escaping @Sendable (_ completionText: String) -> String?) { self.extractor = extractor }

    /// The group's majority answer (nil when no completion has an answer), with the tie rule above.
    public func majorityAnswer(_ answers: [String?]) -> String? {
        var counts: [String: Int] = [:]
        var firstSeen: [String] = []
        for a in answers.compactMap({ $0 }) {
            if counts[a] == nil { firstSeen.append(a) }
            counts[a, default: 0] += 1
        }
        var best: String?
        var bestCount = 0
        for a in firstSeen where counts[a]! > bestCount { best = a; bestCount = counts[a]! }  // strict: first wins ties
        return best
    }

    public func rewards(group: [CompletionFeatures], context: RewardContext) throws -> [Float] {
        let answers: [String?] = try group.enumerated().map { i, c in
            guard let text = c.text else { throw RewardError.missingFeature(reward: name, index: i, feature: "text") }
            return extractor(text)
        }
        guard let major = majorityAnswer(answers) else { return [Float](repeating: 0, count: group.count) }
        return answers.map { $0 == major ? 1 : 0 }
    }
}

/// Weighted mix of self-certainty with other rewards, combined as the official INTUITOR code combines them
/// (sunblaze-ucb/Intuitor: the external rewards are summed with their weights into one reward that gets its own
/// group normalisation, and the self-certainty advantage is normalised separately and added):
///     r_i = w_sc · z(sc)_i + z(Σ_{k ≠ sc} w_k · r_{k,i}),   z(x)_i = (x_i − mean) / (std + ε) within the group.
/// With no self-certainty component it is z(Σ w_k r_k); with only self-certainty, w_sc · z(sc). std is the
/// unbiased (n−1) one by default, like torch.std; a group of one, or a term constant over the group, contributes 0.
/// (rlif then normalises the returned rewards into advantages once more, `groupAdvantages`: a positive rescaling
/// of this sum, which changes the step size, not the direction.)
public struct WeightedMixReward: GroupReward {
    public let name: String
    public let components: [(reward: any GroupReward, weight: Double)]
    public let epsilon: Double
    public let unbiasedStd: Bool

    public init(components: [(reward: any GroupReward, weight: Double)], epsilon: Double = 1e-6, unbiasedStd: Bool = true) {
        self.components = components; self.epsilon = epsilon; self.unbiasedStd = unbiasedStd
        self.name = "mix:" + components.map { "\($0.reward.name)=\($0.weight)" }.joined(separator: ",")
    }

    public func rewards(group: [CompletionFeatures], context: RewardContext) throws -> [Float] {
        var total = [Double](repeating: 0, count: group.count)
        var external = [Double](repeating: 0, count: group.count)
        var hasExternal = false
        for (reward, weight) in components {
            let r = try reward.rewards(group: group, context: context).map(Double.init)
            if reward is SelfCertaintyReward {
                let z = Self.zScore(r, epsilon: epsilon, unbiasedStd: unbiasedStd)
                for i in 0..<total.count { total[i] += weight * z[i] }
            } else {
                hasExternal = true
                for i in 0..<external.count { external[i] += weight * r[i] }
            }
        }
        if hasExternal {
            let z = Self.zScore(external, epsilon: epsilon, unbiasedStd: unbiasedStd)
            for i in 0..<total.count { total[i] += z[i] }
        }
        return total.map { Float($0) }
    }

    static func zScore(_ r: [Double], epsilon: Double, unbiasedStd: Bool) -> [Double] {
        let n = r.count
        guard n > 1, !r.allSatisfy({ $0 == r[0] }) else { return [Double](repeating: 0, count: n) }
        let mean = r.reduce(0, +) / Double(n)
        let ss = r.reduce(0) { $0 + ($1 - mean) * ($1 - mean) }
        let std = (ss / Double(unbiasedStd ? n - 1 : n)).squareRoot()
        return r.map { ($0 - mean) / (std + epsilon) }
    }
}

/// Builds rewards by name (the `reward:` key of the run config).
///
/// - "self_certainty" → `SelfCertaintyReward`, "rent" → `NegativeEntropyReward`,
///   "accuracy" → `AccuracyReward(checker: answerChecker)`, "majority_vote" → `MajorityVoteReward(extractor:)`.
/// - "mix:a=w1,b=w2" → `WeightedMixReward` of the named (non-mix) components with those weights.
///
/// Throws `RewardError.unknownReward`, `.invalidSpec` (bad mix syntax/weight, duplicates, nesting) or
/// `.missingClosure` (accuracy / majority_vote without their closure).
public enum RewardRegistry {
    public static let names = ["self_certainty", "rent", "accuracy", "majority_vote"]

    public static func make(
        name spec: String,
        answerChecker: (@Sendable (_ completionText: String, _ reference: String) -> Bool)? = nil,
        answerExtractor: (@Sendable (_ completionText: String) -> String?)? = nil
    ) throws -> any GroupReward {
        let trimmed = spec.trimmingCharacters(in: .whitespaces)
        if trimmed.hasPrefix("mix:") {
            let body = trimmed.dropFirst(4)
            var parts: [(reward: any GroupReward, weight: Double)] = []
            var seen: Set<String> = []
            for item in body.split(separator: ",", omittingEmptySubsequences: false) {
                let kv = item.split(separator: "=", omittingEmptySubsequences: false)
                guard kv.count == 2 else {
                    throw RewardError.invalidSpec(spec: spec, why: "component \"\(item)\" is not name=weight")
                }
                let cname = kv[0].trimmingCharacters(in: .whitespaces)
                let wtext = kv[1].trimmingCharacters(in: .whitespaces)
                guard let w = Double(wtext), w.isFinite else {
                    throw RewardError.invalidSpec(spec: spec, why: "weight \"\(wtext)\" of \(cname) is not a finite number")
                }
                if cname.hasPrefix("mix:") { throw RewardError.invalidSpec(spec: spec, why: "mixes cannot be nested") }
                guard seen.insert(cname).inserted else {
                    throw RewardError.invalidSpec(spec: spec, why: "\(cname) appears twice")
                }
                parts.append((try single(cname, answerChecker, answerExtractor), w))
            }
            guard !parts.isEmpty else { throw RewardError.invalidSpec(spec: spec, why: "no components") }
            return WeightedMixReward(components: parts)
        }
        return try single(trimmed, answerChecker, answerExtractor)
    }

    static func single(_ name: String, _ checker: (@Sendable (String, String) -> Bool)?,
                       _ extractor: (@Sendable (String) -> String?)?) throws -> any GroupReward {
        switch name {
        case "self_certainty": return SelfCertaintyReward()
        case "rent": return NegativeEntropyReward()
        case "accuracy":
            guard let c = checker else { throw RewardError.missingClosure(reward: name, closure: "answerChecker") }
            return AccuracyReward(checker: c)
        case "majority_vote":
            guard let e = extractor else { throw RewardError.missingClosure(reward: name, closure: "answerExtractor") }
            return MajorityVoteReward(extractor: e)
        default:
            throw RewardError.unknownReward(name: name, known: names)
        }
    }
}
