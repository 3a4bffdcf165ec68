import Sampling

/// One prompt's group of completions as the learner trains on it: what an actor sent (tokens, behaviour
/// log-probs, per-token self-certainty), plus the rewards computed for the group.
public struct TrainingGroup: Sendable {
    public var promptId: String
    public var promptTokens: [Int32]
    public var completions: [SampledCompletion]
    /// One reward per completion (from the configured `GroupReward`).
    public var rewards: [Float]
    /// Weight version the completions were sampled with.
    public var weightVersion: UInt64
    /// Whether each completion's answer matches the dataset's, when the prompt has one. Reported only
    /// (`RolloutStats.trainAccuracy`), never a training signal unless the reward itself is `accuracy`.
    public var correct: [Bool]? = nil

    public init(promptId: String, promptTokens: [Int32], completions: [SampledCompletion], rewards: [Float],
                weightVersion: UInt64) {
        self.promptId = promptId
        self.promptTokens = promptTokens
        self.completions = completions
        self.rewards = rewards
        self.weightVersion = weightVersion
    }
}
