import Wire

/// One accepted rollout group with the task it answered.
public struct AcceptedGroup: Sendable {
    public var taskId: UInt64
    public var step: Int
    public var promptIndex: Int
    public var promptTokens: [Int32]
    public var group: RolloutGroup
}

/// The compute half of the learner: owns the policy and the optimizer. Called on the learner's training
/// thread, never concurrently with itself.
public protocol LearnerCompute: AnyObject {
    /// The policy's HF `config.json`, sent to actors in Welcome.
    var modelConfigJSON: String { get }
    /// The policy's vocabulary size: every token id an actor returns is below it (`GroupCheck`).
    var vocabSize: Int { get }
    /// Serialises the current parameters as version `version` (immutable: training may continue meanwhile).
    func snapshot(version: UInt64, dtype: DType, chunkBytes: Int) throws -> WeightSnapshot
    /// One GRPO step on the groups of `step`; returns the metrics record for metrics.jsonl.
    func train(step: Int, groups: [AcceptedGroup]) throws -> [String: Any]
    /// Writes a resumable checkpoint after `completedSteps` steps; `state` is the learner's own resumable
    /// state (data cursor, task counter) to store beside the model and optimizer.
    func checkpoint(completedSteps: Int, state: [String: Any]) throws
    /// Groups the last `train` call dropped because the learner's own forward contradicted them
    /// (`verify_rewards`), taken once by the network thread after the step.
    func takeFlaggedGroups() -> [FlaggedGroup]
}

/// An actor whose reported values the learner's own forward contradicted (`verify_rewards`).
public struct FlaggedGroup: Sendable, Equatable {
    public var actorId: String
    public var taskId: UInt64
    public var promptIndex: Int
    /// What disagreed and by how much.
    public var detail: String
    public init(actorId: String, taskId: UInt64, promptIndex: Int, detail: String) {
        self.actorId = actorId; self.taskId = taskId; self.promptIndex = promptIndex; self.detail = detail
    }
}

extension LearnerCompute {
    /// No verification: nothing is ever flagged.
    public func takeFlaggedGroups() -> [FlaggedGroup] { [] }
}
