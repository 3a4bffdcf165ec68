/// Why a completion stopped.
public enum FinishReason: String, Sendable, Codable, Hashable {
    /// Emitted one of the stop tokens (EOS, `<|im_end|>`, ...); that token is part of the completion.
    case stop
    /// Reached `maxNewTokens`.
    case length
}

/// One sampled completion with everything the learner needs.
public struct SampledCompletion: Sendable, Hashable, Codable {
    /// Generated token ids (stop token included).
    public var tokens: [Int32]
    /// Behaviour log-probability of each token, at the sampling temperature (see `SamplingParameters`).
    public var logprobs: [Float]
    /// Per-token self-certainty from raw logits: logsumexp(z) − mean(z) − log V = KL(Uniform ‖ p).
    public var selfCertainty: [Float]
    /// Per-token entropy −Σ p log p of the raw-logit distribution, in nats (for the RENT reward).
    public var entropy: [Float]
    public var finishReason: FinishReason

    public init(tokens: [Int32], logprobs: [Float], selfCertainty: [Float], entropy: [Float] = [],
                finishReason: FinishReason) {
        self.tokens = tokens
        self.logprobs = logprobs
        self.selfCertainty = selfCertainty
        self.entropy = entropy
        self.finishReason = finishReason
    }

    /// The INTUITOR reward: mean self-certainty over the completion's tokens (stop token included), summed in
    /// Double. An empty completion (impossible: at least one token is always generated) would give 0.
    public var meanSelfCertainty: Float {
        guard !selfCertainty.isEmpty else { return 0 }
        var s = 0.0
        for x in selfCertainty { s += Double(x) }
        return Float(s / Double(selfCertainty.count))
    }
}

/// A request for one group: a prompt and how many completions to draw from it.
public struct GroupRequest: Sendable, Hashable {
    public var promptTokens: [Int32]
    public var groupSize: Int
    public var parameters: SamplingParameters
    /// Completion i of the group draws from `RandomSource(seed: seed, stream: i)`.
    public var seed: UInt64

    public init(promptTokens: [Int32], groupSize: Int, parameters: SamplingParameters, seed: UInt64) {
        self.promptTokens = promptTokens
        self.groupSize = groupSize
        self.parameters = parameters
        self.seed = seed
    }
}

/// The answer to a `GroupRequest`.
public struct SampledGroup: Sendable, Hashable {
    public var completions: [SampledCompletion]
    public var prefillSeconds: Double
    public var decodeSeconds: Double
    public var generatedTokens: Int { completions.reduce(0) { $0 + $1.tokens.count } }
}
