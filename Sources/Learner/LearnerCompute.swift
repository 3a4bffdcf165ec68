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
    /// Serialises the current parameters as version `version` (immutable: training may continue meanwhile). With
    /// LoRA: the merged W + s·B·A, for actors that do not apply adapters.
    func snapshot(version: UInt64, dtype: DType, chunkBytes: Int) throws -> WeightSnapshot
    /// With LoRA: the adapters as actors that apply them attach them (Welcome.lora, the adapter snapshots' manifest);
    /// nil for full fine-tuning. Read by the network thread at any time: it must not change.
    var adapterLayout: AdapterLayout? { get }
    /// With LoRA: a copy of the adapters now (training thread, like `snapshot`).
    func adapterWeights(version: UInt64) -> AdapterWeights
    /// With LoRA: the frozen base + s·B·A of `adapters` as a full snapshot — what `snapshot` gives for that version.
    /// Reads only the frozen base (never written during a LoRA run), so the network thread may call it while a
    /// step trains (for an actor that does not apply adapters and joined after its version was published).
    func mergedSnapshot(_ adapters: AdapterWeights, dtype: DType, chunkBytes: Int) throws -> WeightSnapshot
    /// With LoRA: the frozen base (version 0, `.frozenBase`), the same for the whole run; any thread, as above.
    func frozenBaseSnapshot(dtype: DType, chunkBytes: Int) throws -> WeightSnapshot
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

/// A LoRA run's adapters as an actor that applies them needs to know them: the spec it builds them from and where
/// each tensor lives in their flat buffer (PEFT names; A (r, in) and B (out, r), 64-byte aligned offsets).
public struct AdapterLayout: Sendable, Equatable {
    public var spec: AdapterSpec
    public var manifest: [TensorEntry]
    /// Floats in the flat buffer, alignment padding included (what an adapter snapshot carries).
    public var elementCount: Int

    public init(spec: AdapterSpec, manifest: [TensorEntry], elementCount: Int) {
        self.spec = spec; self.manifest = manifest; self.elementCount = elementCount
    }

    /// The wire snapshot of one version's adapters (`.adapter`; `weights.values` in this layout).
    public func snapshot(_ weights: AdapterWeights, dtype: DType, chunkBytes: Int) throws -> WeightSnapshot {
        try WeightSnapshot(version: weights.version, parameters: weights.values, manifest: manifest, dtype: dtype,
                           chunkBytes: chunkBytes, kind: .adapter)
    }
}

/// One version's adapters as trained: F32, the adapters' flat buffer (`AdapterLayout.elementCount` floats,
/// zeros in the alignment padding). Kept by the learner for the versions it serves: the source of the adapter
/// snapshot and, when an actor that does not apply adapters asks, of the merged full snapshot.
public struct AdapterWeights: Sendable {
    public let version: UInt64
    public let values: [Float]
    public init(version: UInt64, values: [Float]) { self.version = version; self.values = values }
}

/// What the learner serves for one weight version. Full fine-tuning: `full` only. LoRA: `adapters` and its
/// snapshot always, `full` (merged) only when an actor that does not apply adapters is connected — built with the
/// version on the training thread, or later on demand (`LearnerServer`).
struct ServedVersion: Sendable {
    let version: UInt64
    var full: WeightSnapshot?
    let adapters: AdapterWeights?
    let adapterSnapshot: WeightSnapshot?

    /// The PUB notice: it describes the adapter snapshot in a LoRA run (every actor reads only `version`).
    var notice: WeightNotice { (adapterSnapshot ?? full)!.notice }

    /// Built on the training thread after a step (or on the network thread for the first version).
    static func build(_ compute: LearnerCompute, version: UInt64, dtype: DType, chunkBytes: Int,
                      merged: Bool) throws -> ServedVersion {
        guard let layout = compute.adapterLayout else {
            return ServedVersion(version: version, full: try compute.snapshot(version: version, dtype: dtype, chunkBytes: chunkBytes),
                                 adapters: nil, adapterSnapshot: nil)
        }
        let a = compute.adapterWeights(version: version)
        return ServedVersion(version: version,
                             full: merged ? try compute.mergedSnapshot(a, dtype: dtype, chunkBytes: chunkBytes) : nil,
                             adapters: a, adapterSnapshot: try layout.snapshot(a, dtype: dtype, chunkBytes: chunkBytes))
    }
}
