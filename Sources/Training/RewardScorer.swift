import Answers
import GRPO
import Sampling
import Tokenizer

/// Computes one group's rewards with the configured `GroupReward` (the registry name in `TrainConfig.reward`),
/// detokenising completions only when the reward needs text (accuracy, majority vote).
public struct RewardScorer: Sendable {
    public let reward: any GroupReward
    public let name: String
    let tokenizer: Tokenizer?
    let needsText: Bool
    let checker: @Sendable (String, String) -> Bool

    /// `answerFormat` decides how answers are extracted and compared for the answer-based rewards.
    public init(name: String, tokenizer: Tokenizer?, answerFormat: AnswerFormat = .math) throws {
        self.name = name
        self.tokenizer = tokenizer
        let checker: @Sendable (String, String) -> Bool = { text, reference in
            guard let got = extractAnswer(from: text, format: answerFormat) else { return false }
            let want = referenceAnswer(from: reference, format: answerFormat) ?? reference
            return answersMatch(got, want)
        }
        self.checker = checker
        reward = try RewardRegistry.make(
            name: name,
            answerChecker: checker,
            answerExtractor: { text in extractAnswer(from: text, format: answerFormat).map(normalizeAnswer) })
        needsText = name.contains("accuracy") || name.contains("majority_vote")
        if needsText && tokenizer == nil {
            throw ConfigError(source: "config", key: "reward", message: "\(name) needs a tokenizer to read answers")
        }
    }

    /// One reward per completion. `reference` is the prompt's gold answer (used only by the accuracy reward).
    public func score(_ completions: [SampledCompletion], reference: String?) throws -> [Float] {
        let features = completions.map { c in
            CompletionFeatures(tokens: c.tokens, selfCertainty: c.selfCertainty,
                               entropy: c.entropy.count == c.tokens.count ? c.entropy : nil,
                               text: needsText ? tokenizer?.decode(c.tokens, skipSpecialTokens: true) : nil)
        }
        return try reward.rewards(group: features, context: RewardContext(reference: reference))
    }

    /// Whether each completion's answer matches `reference` (same extraction as the accuracy reward), for
    /// reporting; nil without a reference or a tokenizer.
    public func correctness(_ completions: [SampledCompletion], reference: String?) -> [Bool]? {
        guard let reference, let tokenizer else { return nil }
        return completions.map { checker(tokenizer.decode($0.tokens, skipSpecialTokens: true), reference) }
    }
}
