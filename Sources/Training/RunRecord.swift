import Foundation

/// What a line of metrics.jsonl (or samples.jsonl) is. Every record written since schema 2 carries its kind;
/// rows without one were written before (training rows with a 0-based "step", see `MetricsRows.normalized`).
public enum RecordKind: String, Codable, Sendable {
    /// One training step.
    case train
    /// A held-out evaluation.
    case eval
    /// One completion's text (samples.jsonl).
    case sample
}

/// A record of a run's logs: written by `MetricsLog`/`RunRecords` as one JSON line with snake_case keys.
/// "step" counts optimizer steps done: the record of the first training step has step 1, the evaluation before
/// training step 0 and the evaluation after step 20 step 20 — the console prints the same numbers.
public protocol RunLogRecord: Encodable, Sendable {
    var kind: RecordKind { get }
    var step: Int { get }
}

/// Timings and throughput the learner adds to a step in a distributed run.
public struct LearnerStepStats: Encodable, Sendable, Equatable {
    /// Mean over the step's groups of (policy version trained) − (version the group was sampled with).
    public var stalenessMean: Double = 0
    /// Groups whose self-certainty was recomputed with the current policy (recompute_self_certainty).
    public var rescoredGroups: Int = 0
    /// Distinct actors whose groups the step trained on.
    public var actors: Int = 0
    /// Generated tokens over the actors' decode+prefill time of those groups (per actor, summed over groups).
    public var actorTokensPerSecond: Double = 0
    /// Which prompts of the schedule this step trained, the ones of this step given up on (quarantined: failed on
    /// two actors), and how many were quarantined so far in the run (a scalar for TensorBoard): one step of the
    /// run's history, so a resumed or chaotic run can be checked for prompts trained twice or never (scripts/chaos).
    public var promptIndices: [Int]? = nil
    public var quarantinedPromptIndices: [Int]? = nil
    public var quarantinedPrompts: Int? = nil
    /// Data-parallel ranks that trained the step (MPI learner), nil for one process.
    public var learnerRanks: Int? = nil
    /// `verify_rewards`: groups of the step re-scored with the learner's own forward to check the actor's values,
    /// those whose values it contradicted (dropped, their actor banned), and those actors (nil when none).
    public var verifiedGroups: Int = 0
    public var verifyFailedGroups: Int = 0
    public var verifyFailedActors: [String]? = nil
    /// Why the step made no update, when it made none (its GRPO metrics are then zeros).
    public var skipped: StepSkipReason? = nil

    enum CodingKeys: String, CodingKey {
        case stalenessMean = "staleness_mean", rescoredGroups = "rescored_groups", actors
        case actorTokensPerSecond = "actor_tokens_per_second"
        case promptIndices = "prompt_indices", quarantinedPromptIndices = "quarantined_prompt_indices"
        case quarantinedPrompts = "quarantined_prompts", learnerRanks = "learner_ranks"
        case verifiedGroups = "verified_groups", verifyFailedGroups = "verify_failed_groups"
        case verifyFailedActors = "verify_failed_actors", skipped
    }

    public init() {}
}

/// Why a learner step made no update.
public enum StepSkipReason: String, Codable, Sendable {
    /// Every group of the step was dropped by `verify_rewards`: nothing trustworthy to train on.
    case noGroupPassedVerification = "no_group_passed_verification"
}

/// One training step in metrics.jsonl, the same in single-process and distributed runs (docs/METRICS.md lists
/// every key). Tests: `RunRecordTests`.
public struct StepRecord: RunLogRecord {
    public var kind: RecordKind { .train }
    /// Optimizer steps done after this one (1-based).
    public var step: Int
    /// Epoch of the data cursor after this step's prompts.
    public var epoch: Int?
    /// The GRPO update (its own `step` field, 0-based, is not written).
    public var metrics: StepMetrics
    /// Wall time to get the step's groups: sampling itself in single-process runs; in distributed runs the time
    /// the learner waited for the last group after its previous step finished (sampling overlaps training).
    public var sampleSeconds: Double
    /// Generated tokens per second of that sampling (single-process runs; the actors' own rate is
    /// `actor_tokens_per_second`).
    public var sampleTokensPerSecond: Double?
    /// Distributed runs only.
    public var learner: LearnerStepStats?

    /// sample_seconds + step_seconds.
    public var totalSeconds: Double { sampleSeconds + metrics.seconds }

    public init(step: Int, metrics: StepMetrics, sampleSeconds: Double, epoch: Int? = nil,
                sampleTokensPerSecond: Double? = nil, learner: LearnerStepStats? = nil) {
        self.step = step
        self.metrics = metrics
        self.sampleSeconds = sampleSeconds
        self.epoch = epoch
        self.sampleTokensPerSecond = sampleTokensPerSecond
        self.learner = learner
    }

    enum CodingKeys: String, CodingKey {
        case kind, step, epoch, sampleSeconds = "sample_seconds", sampleTokensPerSecond = "sample_tokens_per_second"
        case totalSeconds = "total_seconds"
    }

    public func encode(to encoder: Encoder) throws {
        // One flat JSON object: the GRPO metrics, the rollout statistics and the learner's numbers share it.
        try metrics.encode(to: encoder)
        try learner?.encode(to: encoder)
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(kind, forKey: .kind)
        try c.encode(step, forKey: .step)
        try c.encodeIfPresent(epoch, forKey: .epoch)
        try c.encode(sampleSeconds, forKey: .sampleSeconds)
        try c.encodeIfPresent(sampleTokensPerSecond, forKey: .sampleTokensPerSecond)
        try c.encode(totalSeconds, forKey: .totalSeconds)
    }
}

extension StepRecord {
    /// Adds to the learner's numbers of this step (starting from none when the record has no learner part): the
    /// learner server and the data-parallel wrapper each add their own fields to what the compute returned.
    public mutating func updateLearnerStats(_ update: (inout LearnerStepStats) -> Void) {
        var stats = learner ?? LearnerStepStats()
        update(&stats)
        learner = stats
    }
}

/// A held-out evaluation in metrics.jsonl (the summary of an `EvalReport`, keys prefixed `eval_`), written as
/// its own record in every mode.
public struct EvalRecord: RunLogRecord, Equatable {
    public var kind: RecordKind { .eval }
    /// Training steps completed when it ran (0 = before training).
    public var step: Int
    public var count: Int
    public var accuracy: Double
    public var accuracyLow: Double
    public var accuracyHigh: Double
    public var selfCertainty: Double
    public var selfCertaintyCorrect: Double?
    public var selfCertaintyIncorrect: Double?
    public var selfCertaintyAUC: Double?
    public var selfCertaintyEffectR: Double?
    public var length: Double
    public var truncatedFraction: Double
    /// Seconds the evaluation took.
    public var seconds: Double

    public init(step: Int, report r: EvalReport, seconds: Double = 0) {
        self.step = step
        count = r.count
        accuracy = r.accuracy
        accuracyLow = r.accuracyLow
        accuracyHigh = r.accuracyHigh
        selfCertainty = r.meanSelfCertainty
        selfCertaintyCorrect = r.meanSelfCertaintyCorrect
        selfCertaintyIncorrect = r.meanSelfCertaintyIncorrect
        selfCertaintyAUC = r.selfCertaintyAUC
        selfCertaintyEffectR = r.selfCertaintyEffectR
        length = r.meanLength
        truncatedFraction = r.truncatedFraction
        self.seconds = seconds
    }

    enum CodingKeys: String, CodingKey {
        case kind, step, count = "eval_count", accuracy = "eval_accuracy", accuracyLow = "eval_accuracy_low"
        case accuracyHigh = "eval_accuracy_high", selfCertainty = "eval_self_certainty"
        case selfCertaintyCorrect = "eval_self_certainty_correct", selfCertaintyIncorrect = "eval_self_certainty_incorrect"
        case selfCertaintyAUC = "eval_self_certainty_auc", selfCertaintyEffectR = "eval_self_certainty_effect_r"
        case length = "eval_length", truncatedFraction = "eval_truncated_fraction", seconds = "eval_seconds"
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(kind, forKey: .kind)
        try c.encode(step, forKey: .step)
        try c.encode(count, forKey: .count)
        try c.encode(accuracy, forKey: .accuracy)
        try c.encode(accuracyLow, forKey: .accuracyLow)
        try c.encode(accuracyHigh, forKey: .accuracyHigh)
        try c.encode(selfCertainty, forKey: .selfCertainty)
        try c.encodeIfPresent(selfCertaintyCorrect, forKey: .selfCertaintyCorrect)
        try c.encodeIfPresent(selfCertaintyIncorrect, forKey: .selfCertaintyIncorrect)
        try c.encodeIfPresent(selfCertaintyAUC, forKey: .selfCertaintyAUC)
        try c.encodeIfPresent(selfCertaintyEffectR, forKey: .selfCertaintyEffectR)
        try c.encode(length, forKey: .length)
        try c.encode(truncatedFraction, forKey: .truncatedFraction)
        try c.encode(seconds, forKey: .seconds)
    }
}

/// One completion's text in samples.jsonl.
public struct SampleRecord: RunLogRecord, Equatable {
    public var kind: RecordKind { .sample }
    /// The training step (1-based) whose groups the completion belongs to.
    public var step: Int
    public var promptId: String
    public var prompt: String
    public var completion: String
    public var reward: Double
    public var selfCertainty: Double
    public var length: Int
    public var finishReason: String
    /// Whether it matched the dataset's answer (nil when the prompt has none).
    public var correct: Bool?

    enum CodingKeys: String, CodingKey {
        case kind, step, promptId = "prompt_id", prompt, completion, reward, selfCertainty = "self_certainty", length
        case finishReason = "finish_reason", correct
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(kind, forKey: .kind)
        try c.encode(step, forKey: .step)
        try c.encode(promptId, forKey: .promptId)
        try c.encode(prompt, forKey: .prompt)
        try c.encode(completion, forKey: .completion)
        try c.encode(reward, forKey: .reward)
        try c.encode(selfCertainty, forKey: .selfCertainty)
        try c.encode(length, forKey: .length)
        try c.encode(finishReason, forKey: .finishReason)
        try c.encodeIfPresent(correct, forKey: .correct)
    }
}

/// A record as the run's callbacks see it (the console, the live view, Prometheus).
public enum RunEvent: Sendable {
    case train(StepRecord)
    case eval(EvalRecord)
}

/// Reading metrics.jsonl rows of any schema as the current one: `"kind"` set and `"step"` counting optimizer
/// steps done. Rows without a kind were written before records had one: a training row's "step" was 0-based (+1
/// now), and in distributed runs an evaluation after a step was merged into that step's row (its `eval_*` keys
/// become an eval record at the step count). Tests: `RunRecordTests`.
public enum MetricsRows {
    public static func normalized(_ rows: [[String: Any]]) -> [[String: Any]] {
        var out: [[String: Any]] = []
        for r in rows {
            guard r["kind"] == nil, let s = (r["step"] as? NSNumber)?.intValue else { out.append(r); continue }
            var train: [String: Any] = [:], eval: [String: Any] = [:]
            for (k, v) in r where k != "step" {
                if k.hasPrefix("eval_") { eval[k] = v } else { train[k] = v }
            }
            train["step"] = s + 1
            train["kind"] = RecordKind.train.rawValue
            out.append(train)
            if !eval.isEmpty {
                eval["step"] = s + 1
                eval["kind"] = RecordKind.eval.rawValue
                out.append(eval)
            }
        }
        return out
    }

    /// The rows of a metrics.jsonl file as JSON objects, normalized; a torn last line (a kill mid-write) is left
    /// out, any other line that is not a JSON object is an error naming it.
    public static func read(_ url: URL) throws -> [[String: Any]] {
        guard let data = FileManager.default.contents(atPath: url.path) else {
            throw DatasetError(file: url.path, line: nil, message: "missing: is this an rlif run directory?")
        }
        var lines = data.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: true)
        let torn = data.last != UInt8(ascii: "\n") && !lines.isEmpty
        var rows: [[String: Any]] = []
        for (k, line) in lines.enumerated() {
            guard let obj = try? JSONSerialization.jsonObject(with: Data(line)) as? [String: Any] else {
                if torn && k == lines.count - 1 { lines.removeLast(); break }
                throw DatasetError(file: url.path, line: k + 1, message: "not a JSON object")
            }
            rows.append(obj)
        }
        return normalized(rows)
    }
}
