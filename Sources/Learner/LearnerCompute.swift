import Training
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
    /// The policy's vocabulary size: every token id an actor returns is below it (`GroupCheck`).
    var vocabSize: Int { get }
    /// Serialises the current parameters as version `version` (immutable: training may continue meanwhile).
    func snapshot(version: UInt64, dtype: DType, chunkBytes: Int) throws -> WeightSnapshot
    /// One GRPO step on the groups of `step` (0-based); returns its record for metrics.jsonl (step + 1 steps
    /// done) and the evaluation run after it, if one was due.
    func train(step: Int, groups: [AcceptedGroup]) throws -> StepResult
    /// Writes a resumable checkpoint after `completedSteps` steps, with the data cursor the run continues from.
    func checkpoint(completedSteps: Int, cursor: DataCursor) throws
    /// Groups the last `train` call dropped because the learner's own forward contradicted them
    /// (`verify_rewards`), taken once by the network thread after the step. No default: a wrapper (the
    /// data-parallel learner) must forward it, or flagged actors would silently go unpunished.
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

/// What one learner step produced: its record and the held-out evaluation after it (when due).
public struct StepResult: Sendable {
    public var record: StepRecord
    public var eval: EvalRecord?

    public init(record: StepRecord, eval: EvalRecord? = nil) {
        self.record = record
        self.eval = eval
    }

    /// The records in the order they happened.
    public var events: [RunEvent] { [.train(record)] + (eval.map { [.eval($0)] } ?? []) }
}
