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

    /// `answerFormat` decides how answers are extracted and compared for the answer-based rewards.
    public init(name: String, tokenizer: Tokenizer?, answerFormat: AnswerFormat = .math) throws {
        self.name = name
        self.tokenizer = tokenizer
        reward = try RewardRegistry.make(
            name: name,
            answerChecker: { text, reference in
                guard let got = extractAnswer(from: text, format: answerFormat) else { return false }
                let want = referenceAnswer(from: reference, format: answerFormat) ?? reference
                return answersMatch(got, want)
            },
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
}
