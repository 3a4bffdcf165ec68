import Wire

/// One accepted rollout group with the task it answered.
public struct AcceptedGroup: Sendable, Equatable {
    public var taskId: UInt64
    public var step: Int
    public var promptIndex: Int
    public var promptTokens: [Int32]
    public var group: RolloutGroup

    public init(taskId: UInt64, step: Int, promptIndex: Int, promptTokens: [Int32], group: RolloutGroup) {
        self.taskId = taskId; self.step = step; self.promptIndex = promptIndex
        self.promptTokens = promptTokens; self.group = group
    }
}

/// The compute half of the learner: owns the policy and the optimizer. Each step (`train`, its snapshot and
/// checkpoint) runs on the learner's training thread; the first snapshot and the checkpoint of a stopped run are
/// called from its network thread while no step is running, so the methods never run concurrently with each other.
/// `modelConfigJSON` is read by the network thread at any time (for each Welcome): it must not change.
public protocol LearnerCompute: AnyObject {
    /// The policy's HF `config.json`, sent to actors in Welcome.
    var modelConfigJSON: String { get }
    /// Serialises the current parameters as version `version` (immutable: training may continue meanwhile).
    func snapshot(version: UInt64, dtype: DType, chunkBytes: Int) throws -> WeightSnapshot
    /// One GRPO step on the groups of `step`; returns the metrics record for metrics.jsonl.
    func train(step: Int, groups: [AcceptedGroup]) throws -> [String: Any]
    /// Writes a resumable checkpoint after `completedSteps` steps; `state` is the learner's own resumable
    /// state (data cursor, task counter) to store beside the model and optimizer.
    func checkpoint(completedSteps: Int, state: [String: Any]) throws
}
