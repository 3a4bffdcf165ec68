// Plain Swift mirrors of the messages in Protos/rlif/v1/rlif.proto (field for field, same names in camelCase).
// See that file for the meaning of each field; docs/PROTOCOL.md for who sends what when.

/// Actor -> learner (work socket), first message of a session.
public struct Hello: Sendable, Equatable {
    public var actorId: String
    public var hostname: String
    public var pid: UInt32
    /// Completions the actor decodes together in one batch.
    public var maxBatchSequences: UInt32
    /// Weight version the actor already holds (0 = none).
    public var weightVersion: UInt64
    /// The actor samples with a frozen base + LoRA adapters: in a LoRA run it gets adapter-only versions.
    public var appliesAdapters: Bool

    public init(actorId: String, hostname: String = "", pid: UInt32 = 0, maxBatchSequences: UInt32 = 0,
                weightVersion: UInt64 = 0, appliesAdapters: Bool = false) {
        self.actorId = actorId; self.hostname = hostname; self.pid = pid
        self.maxBatchSequences = maxBatchSequences; self.weightVersion = weightVersion
        self.appliesAdapters = appliesAdapters
    }
}

/// Learner -> actor, answer to Hello.
public struct Welcome: Sendable, Equatable {
    public var runId: String
    public var currentWeightVersion: UInt64
    /// The Hugging Face `config.json` of the policy.
    public var modelConfigJson: String
    public var heartbeatIntervalMs: UInt32
    /// An actor silent for this long is declared dead and its tasks are re-issued.
    public var heartbeatTimeoutMs: UInt32
    /// Only to an actor that said `Hello.appliesAdapters`, in a LoRA run: it then fetches the frozen base once and
    /// every version as these adapters.
    public var lora: AdapterSpec?

    public init(runId: String, currentWeightVersion: UInt64 = 0, modelConfigJson: String = "",
                heartbeatIntervalMs: UInt32 = 1000, heartbeatTimeoutMs: UInt32 = 5000, lora: AdapterSpec? = nil) {
        self.runId = runId; self.currentWeightVersion = currentWeightVersion; self.modelConfigJson = modelConfigJson
        self.heartbeatIntervalMs = heartbeatIntervalMs; self.heartbeatTimeoutMs = heartbeatTimeoutMs
        self.lora = lora
    }
}

/// A run's LoRA adapters (`rlif.v1.AdapterSpec`, PEFT's LoraConfig): decoding checks rank ≥ 1, a finite alpha > 0
/// and at least one target (the names themselves are checked by the actor's model, which knows them).
public struct AdapterSpec: Sendable, Equatable {
    public var rank: UInt32
    public var alpha: Float
    /// PEFT module names in layer order, each once.
    public var targetModules: [String]

    public init(rank: UInt32, alpha: Float, targetModules: [String]) {
        self.rank = rank; self.alpha = alpha; self.targetModules = targetModules
    }
}

/// What a weight snapshot holds (`SnapshotChunk.adapter` / `.frozen_base`, `SnapshotRequest` likewise).
public enum SnapshotKind: Sendable, Equatable, CaseIterable, CustomStringConvertible {
    /// Every parameter of one version (full fine-tuning, or the merged W + s·B·A of a LoRA run).
    case full
    /// One version's LoRA adapters only: A and B of every adapted layer.
    case adapter
    /// The frozen base of a LoRA run (no version: it never changes during the run).
    case frozenBase

    public var description: String {
        switch self {
        case .full: "full"
        case .adapter: "adapter"
        case .frozenBase: "frozen base"
        }
    }
}

/// Actor <-> learner, liveness in both directions.
public struct Heartbeat: Sendable, Equatable {
    public var weightVersion: UInt64
    public var tasksInProgress: [UInt64]
    /// Actor -> learner: credits asked for and not yet answered (see the proto).
    public var creditsOutstanding: UInt32

    public init(weightVersion: UInt64 = 0, tasksInProgress: [UInt64] = [], creditsOutstanding: UInt32 = 0) {
        self.weightVersion = weightVersion; self.tasksInProgress = tasksInProgress
        self.creditsOutstanding = creditsOutstanding
    }
}

/// Actor -> learner: "I can take `credits` more tasks".
public struct WorkRequest: Sendable, Equatable {
    public var credits: UInt32
    public init(credits: UInt32) { self.credits = credits }
}

/// How an actor samples a group. Decoding checks the floats are finite, temperature >= 0, 0 < top_p <= 1.
public struct SamplingParams: Sendable, Equatable {
    /// 0 = greedy.
    public var temperature: Float
    /// 1 = off.
    public var topP: Float
    /// 0 = off.
    public var topK: UInt32
    public var maxNewTokens: UInt32
    /// Token ids that end a completion; the stop token is kept in the completion.
    public var stopTokenIds: [UInt32]
    /// Token-id sequences that end a completion when its tokens end with one (kept in the completion).
    /// At most `maxStopSequences` of 1…`maxStopSequenceTokens` tokens each.
    public var stopSequences: [[UInt32]]

    public static let maxStopSequences = 32
    public static let maxStopSequenceTokens = 64

    public init(temperature: Float = 1, topP: Float = 1, topK: UInt32 = 0, maxNewTokens: UInt32 = 256,
                stopTokenIds: [UInt32] = [], stopSequences: [[UInt32]] = []) {
        self.temperature = temperature; self.topP = topP; self.topK = topK
        self.maxNewTokens = maxNewTokens; self.stopTokenIds = stopTokenIds; self.stopSequences = stopSequences
    }
}

/// Learner -> actor: one prompt, to be answered with `groupSize` completions.
public struct WorkItem: Sendable, Equatable {
    public var taskId: UInt64
    public var promptId: String
    public var promptTokens: [UInt32]
    public var groupSize: UInt32
    public var sampling: SamplingParams
    /// Seeds the group's sampler: the same seed and weights give the same group bit for bit.
    public var seed: UInt64
    /// The actor must hold at least this weight version before sampling.
    public var minWeightVersion: UInt64
    public var deadlineMs: UInt32

    public init(taskId: UInt64, promptId: String = "", promptTokens: [UInt32], groupSize: UInt32,
                sampling: SamplingParams = SamplingParams(), seed: UInt64 = 0, minWeightVersion: UInt64 = 0,
                deadlineMs: UInt32 = 0) {
        self.taskId = taskId; self.promptId = promptId; self.promptTokens = promptTokens
        self.groupSize = groupSize; self.sampling = sampling; self.seed = seed
        self.minWeightVersion = minWeightVersion; self.deadlineMs = deadlineMs
    }
}

/// Learner -> actor: nothing to hand out right now.
public struct NoWork: Sendable, Equatable {
    public var retryAfterMs: UInt32
    /// True when the run is over: the actor should say Goodbye and exit.
    public var finished: Bool
    public var reason: String

    public init(retryAfterMs: UInt32 = 0, finished: Bool = false, reason: String = "") {
        self.retryAfterMs = retryAfterMs; self.finished = finished; self.reason = reason
    }
}

/// Why a completion ended (`rlif.v1.FinishReason`).
public enum FinishReason: Int32, Sendable, Equatable, CaseIterable {
    case unspecified = 0, eos = 1, stop = 2, length = 3
}

/// One sampled completion with its per-token data. `tokens`, `logprobs` and `selfCertainty` have equal
/// lengths (checked on decode); every float is finite (checked on decode).
public struct Completion: Sendable, Equatable {
    public var tokens: [UInt32]
    /// log p(token) under the behaviour policy (from logits / temperature).
    public var logprobs: [Float]
    /// Per-token self-certainty from raw logits: logsumexp(z) - mean(z) - log V.
    public var selfCertainty: [Float]
    /// Mean of selfCertainty over the completion's tokens (the INTUITOR reward).
    public var reward: Float
    public var finishReason: FinishReason
    /// Per-token entropy in nats (RENT reward): empty, or one per token (checked on decode).
    public var entropy: [Float]

    public init(tokens: [UInt32], logprobs: [Float], selfCertainty: [Float], reward: Float,
                finishReason: FinishReason, entropy: [Float] = []) {
        self.tokens = tokens; self.logprobs = logprobs; self.selfCertainty = selfCertainty
        self.reward = reward; self.finishReason = finishReason; self.entropy = entropy
    }
}

public struct Timings: Sendable, Equatable {
    public var prefillMs: Float
    public var decodeMs: Float
    public var generatedTokens: UInt32

    public init(prefillMs: Float = 0, decodeMs: Float = 0, generatedTokens: UInt32 = 0) {
        self.prefillMs = prefillMs; self.decodeMs = decodeMs; self.generatedTokens = generatedTokens
    }
}

/// Actor -> learner: the answer to one WorkItem. Resent until acknowledged.
public struct RolloutGroup: Sendable, Equatable {
    public var taskId: UInt64
    public var actorId: String
    public var weightVersion: UInt64
    public var promptId: String
    public var completions: [Completion]
    public var timings: Timings

    public init(taskId: UInt64, actorId: String, weightVersion: UInt64, promptId: String = "",
                completions: [Completion], timings: Timings = Timings()) {
        self.taskId = taskId; self.actorId = actorId; self.weightVersion = weightVersion
        self.promptId = promptId; self.completions = completions; self.timings = timings
    }
}

/// The learner's verdict on a RolloutGroup (`rlif.v1.AckStatus`).
public enum AckStatus: Int32, Sendable, Equatable, CaseIterable {
    case unspecified = 0
    case accepted = 1
    /// Already have a group for this task id: dropped, counted once.
    case duplicate = 2
    /// Weight version older than the learner allows (max_lag): dropped and the task re-issued.
    case stale = 3
    /// Malformed (wrong group size, NaN, unknown task): dropped, see detail.
    case rejected = 4
}

/// Learner -> actor: the group for taskId was received; the actor may forget it.
public struct Ack: Sendable, Equatable {
    public var taskId: UInt64
    public var status: AckStatus
    public var detail: String

    public init(taskId: UInt64, status: AckStatus, detail: String = "") {
        self.taskId = taskId; self.status = status; self.detail = detail
    }
}

/// Element type of a serialised weight snapshot (`rlif.v1.DType`).
public enum DType: Int32, Sendable, Equatable, CaseIterable {
    case unspecified = 0, f32 = 1, bf16 = 2

    /// Bytes per element on the wire (0 for `.unspecified`).
    public var byteWidth: Int {
        switch self {
        case .unspecified: 0
        case .f32: 4
        case .bf16: 2
        }
    }
}

/// Learner -> all actors (PUB): a new weight version exists. Small on purpose (PUB drops past HWM).
public struct WeightNotice: Sendable, Equatable {
    public var version: UInt64
    public var totalBytes: UInt64
    public var nChunks: UInt32
    public var dtype: DType
    /// CRC-32 (zlib) of the whole serialised snapshot.
    public var crc32: UInt32
    public var chunkBytes: UInt32
    /// The sizes are those of the version's adapter snapshot (a LoRA run).
    public var adapter: Bool

    public init(version: UInt64, totalBytes: UInt64, nChunks: UInt32, dtype: DType, crc32: UInt32,
                chunkBytes: UInt32, adapter: Bool = false) {
        self.version = version; self.totalBytes = totalBytes; self.nChunks = nChunks
        self.dtype = dtype; self.crc32 = crc32; self.chunkBytes = chunkBytes; self.adapter = adapter
    }
}

/// Actor -> learner (weights socket): send me chunks of a version.
public struct SnapshotRequest: Sendable, Equatable {
    /// 0 = whatever is current.
    public var version: UInt64
    public var firstChunk: UInt32
    /// How many chunks may be in flight to this actor (credit-based flow control).
    public var credits: UInt32
    public var dtype: DType
    /// Full weights, a version's adapters, or the frozen base (`version` 0) — on the wire `adapter` / `frozen_base`.
    public var kind: SnapshotKind

    public init(version: UInt64 = 0, firstChunk: UInt32 = 0, credits: UInt32 = 2, dtype: DType = .f32,
                kind: SnapshotKind = .full) {
        self.version = version; self.firstChunk = firstChunk; self.credits = credits; self.dtype = dtype
        self.kind = kind
    }
}

/// Where one tensor lives in the flat parameter buffer.
public struct TensorEntry: Sendable, Equatable {
    /// Hugging Face tensor name, e.g. "model.layers.0.self_attn.q_proj.weight".
    public var name: String
    public var shape: [UInt64]
    /// Offset of the tensor's first element in the flat parameter buffer.
    public var offsetElements: UInt64

    public init(name: String, shape: [UInt64], offsetElements: UInt64) {
        self.name = name; self.shape = shape; self.offsetElements = offsetElements
    }

    /// Product of the shape (1 for a scalar), nil on overflow.
    public var elementCount: UInt64? {
        var n: UInt64 = 1
        for d in shape {
            let (p, o) = n.multipliedReportingOverflow(by: d)
            if o { return nil }
            n = p
        }
        return n
    }
}

/// Learner -> actor: a byte range of the serialised snapshot of one version. Built by `WeightSnapshot.chunk(_:)`,
/// consumed by `SnapshotAssembler.accept(_:)`.
public struct SnapshotChunk: Sendable, Equatable {
    public var version: UInt64
    public var chunkIndex: UInt32
    public var nChunks: UInt32
    public var dtype: DType
    /// Byte offset of `data` within the serialised snapshot.
    public var offset: UInt64
    /// The bytes. A slice so that a chunk of a `WeightSnapshot` shares its storage (no copy); its indices
    /// are NOT zero-based in general: use `data.withUnsafeBytes` or `data.startIndex`.
    public var data: ArraySlice<UInt8>
    /// CRC-32 (zlib) of `data`.
    public var crc32: UInt32
    public var totalBytes: UInt64
    /// Only in chunk 0: where each tensor lives in the flat buffer.
    public var manifest: [TensorEntry]
    /// Nominal chunk size: offset = chunkIndex * chunkBytes.
    public var chunkBytes: UInt32
    /// CRC-32 of the whole serialised snapshot.
    public var snapshotCRC32: UInt32
    /// Zero-copy path: `data` is empty and the bytes travel as the next frame of the multipart message
    /// (`WeightSnapshot.chunkHeader(_:)` + `SnapshotAssembler.accept(_:data:)`).
    public var dataInNextFrame: Bool
    /// What the snapshot holds (on the wire `adapter` / `frozen_base`).
    public var kind: SnapshotKind

    public init(version: UInt64, chunkIndex: UInt32, nChunks: UInt32, dtype: DType, offset: UInt64,
                data: ArraySlice<UInt8>, crc32: UInt32, totalBytes: UInt64, manifest: [TensorEntry] = [],
                chunkBytes: UInt32, snapshotCRC32: UInt32, dataInNextFrame: Bool = false, kind: SnapshotKind = .full) {
        self.version = version; self.chunkIndex = chunkIndex; self.nChunks = nChunks; self.dtype = dtype
        self.offset = offset; self.data = data; self.crc32 = crc32; self.totalBytes = totalBytes
        self.manifest = manifest; self.chunkBytes = chunkBytes; self.snapshotCRC32 = snapshotCRC32
        self.dataInNextFrame = dataInNextFrame; self.kind = kind
    }
}

/// `rlif.v1.ErrorCode`.
public enum ErrorCode: Int32, Sendable, Equatable, CaseIterable {
    case unspecified = 0, malformed = 1, protocolVersion = 2, tooLarge = 3, unknownPeer = 4
    case unknownVersion = 5, `internal` = 6
}

/// Either direction: the previous message from this peer was refused (`rlif.v1.Error`).
public struct ErrorMessage: Sendable, Equatable {
    public var code: ErrorCode
    public var message: String
    /// The offending field or task, when there is one.
    public var field: String

    public init(code: ErrorCode, message: String, field: String = "") {
        self.code = code; self.message = message; self.field = field
    }
}

/// Actor -> learner: leaving cleanly (its in-flight tasks are re-issued at once).
public struct Goodbye: Sendable, Equatable {
    public var reason: String
    public init(reason: String = "") { self.reason = reason }
}

/// Actor -> learner: sampling a task failed on this actor (`rlif.v1.TaskFailure`). The learner re-issues it to
/// another actor, or quarantines it once it failed on two different actors.
public struct TaskFailure: Sendable, Equatable {
    public var taskId: UInt64
    /// What the actor's engine raised.
    public var error: String
    public init(taskId: UInt64, error: String) { self.taskId = taskId; self.error = error }
}

/// Anyone -> learner (work socket): asks for the run's status (`rlif status`).
public struct StatusRequest: Sendable, Equatable {
    public init() {}
}

/// Learner -> the requester: the status as JSON (the learner's `LearnerStatus`).
public struct StatusReply: Sendable, Equatable {
    public var statusJson: String
    public init(statusJson: String) { self.statusJson = statusJson }
}
