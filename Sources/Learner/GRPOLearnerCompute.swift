import Foundation
import Model
import Sampling
import Shared
import Training
import Wire

/// The learner's compute: rewards from the actors' per-token self-certainty (or another registered reward),
/// the GRPO step, snapshots for the weight broadcast and checkpoints.
public final class GRPOLearnerCompute: LearnerCompute {
    public let trainer: GRPOTrainer
    public let scorer: RewardScorer
    public let output: URL
    /// Gold answers by prompt id (reported or used by the accuracy baseline only).
    let answers: [String: String]
    public let modelConfigJSON: String
    public var vocabSize: Int { trainer.policy.config.vocabSize }
    private let manifest: [TensorEntry]
    /// Held-out evaluation after a step (on the training thread, which owns the policy): given the number of
    /// completed steps, returns its record, or nil when none is due.
    public var evaluate: ((Int) throws -> EvalRecord?)?
    /// When the learner started waiting for the next step's groups: the end of the previous step (set it when
    /// the learner starts serving). A step's sample_seconds is the wait from here to its training.
    public var waitingSince = Date()
    /// A few completion texts every N steps into samples.jsonl (nil = none).
    public var samples: SampleLog?

    public init(trainer: GRPOTrainer, scorer: RewardScorer, output: URL, answers: [String: String]) throws {
        self.trainer = trainer
        self.scorer = scorer
        self.output = output
        self.answers = answers
        modelConfigJSON = String(decoding: try trainer.policy.config.jsonData(), as: UTF8.self)
        manifest = trainer.policy.layout.entries.map {
            TensorEntry(name: $0.name, shape: $0.shape.map(UInt64.init), offsetElements: UInt64($0.offset))
        }
        adapterLayout = trainer.policy.lora.map { ad in
            AdapterLayout(spec: AdapterSpec(rank: UInt32(ad.rank), alpha: ad.config.alpha, targetModules: ad.config.targetModules),
                          manifest: ad.tensors.map { TensorEntry(name: $0.name, shape: $0.shape.map(UInt64.init), offsetElements: UInt64($0.offset)) },
                          elementCount: ad.parameters.count)
        }
    }

    public let adapterLayout: AdapterLayout?

    /// With LoRA, for actors that do not apply adapters: the merged weights W + s·B·A (built in a temporary copy
    /// of the base, freed once the snapshot has its own bytes). Actors that do get `adapterWeights` instead.
    public func snapshot(version: UInt64, dtype: DType, chunkBytes: Int) throws -> WeightSnapshot {
        guard trainer.policy.lora != nil else {
            let p = trainer.policy.parameters
            return try WeightSnapshot(version: version, parameters: UnsafeBufferPointer(start: p.pointer, count: p.count),
                                      manifest: manifest, dtype: dtype, chunkBytes: chunkBytes)
        }
        return try mergedSnapshot(adapterWeights(version: version), dtype: dtype, chunkBytes: chunkBytes)
    }

    public func adapterWeights(version: UInt64) -> AdapterWeights {
        let ad = trainer.policy.lora!
        return AdapterWeights(version: version, values: Array(ad.parameters.buffer))
    }

    public func mergedSnapshot(_ a: AdapterWeights, dtype: DType, chunkBytes: Int) throws -> WeightSnapshot {
        let policy = trainer.policy, ad = policy.lora!
        precondition(a.values.count == ad.parameters.count, "adapter weights of another layout")
        let merged = FloatBuffer(count: policy.parameters.count)
        policy.readParameters(into: merged.pointer)   // BF16 base weights widened
        a.values.withUnsafeBufferPointer { ad.merge(into: merged.pointer, layout: policy.layout, adapters: $0.baseAddress!) }
        return try withExtendedLifetime(merged) {
            try WeightSnapshot(version: a.version, parameters: UnsafeBufferPointer(start: merged.pointer, count: merged.count),
                               manifest: manifest, dtype: dtype, chunkBytes: chunkBytes)
        }
    }

    public func frozenBaseSnapshot(dtype: DType, chunkBytes: Int) throws -> WeightSnapshot {
        let policy = trainer.policy
        precondition(policy.lora != nil, "frozenBaseSnapshot without LoRA: the weights are not frozen")
        // Read a slice at a time from the model's own weights (F32, or BF16 widened exactly): no copy of the model.
        // LoRA never writes the base, so the training thread may run meanwhile.
        return try WeightSnapshot(version: 0, elementCount: policy.parameters.count, manifest: manifest, dtype: dtype,
                                  chunkBytes: chunkBytes, kind: .frozenBase) { start, count, dst in
            policy.readParameters(start: start, count: count, into: dst)
        }
    }

    /// Groups dropped by the last `train` (verification), handed to the network thread after the step.
    private var flagged: [FlaggedGroup] = []
    public func takeFlaggedGroups() -> [FlaggedGroup] { defer { flagged = [] }; return flagged }

    /// Whether `taskId`'s group is one of the sampled `verify_rewards` fraction: a hash of (seed, task id), so
    /// the choice is reproducible and an actor cannot tell which of its groups will be checked. The hash is
    /// splitmix64 of taskId + seed·γ (γ = SplitMix64's increment): Shared's generator started one γ before that
    /// gives the same bits with its first draw.
    static func isSampledForVerification(taskId: UInt64, seed: UInt64, fraction: Double) -> Bool {
        guard fraction > 0 else { return false }
        guard fraction < 1 else { return true }
        let gamma: UInt64 = 0x9E37_79B9_7F4A_7C15
        var g = SplitMix64(seed: taskId &+ (seed &- 1) &* gamma)
        return g.nextUniform() < fraction
    }

    /// The largest mean absolute per-token difference, over the completions, between the actor's values and
    /// the learner's recomputation (self-certainty and log-probs), with where it is.
    static func disagreement(reported: [SampledCompletion], recomputed: [SampledCompletion]) -> (value: Float, detail: String) {
        var worst: (Float, String) = (0, "")
        for (i, (a, b)) in zip(reported, recomputed).enumerated() {
            let n = Float(max(1, a.tokens.count))
            let sc = zip(a.selfCertainty, b.selfCertainty).reduce(Float(0)) { $0 + abs($1.0 - $1.1) } / n
            let lp = zip(a.logprobs, b.logprobs).reduce(Float(0)) { $0 + abs($1.0 - $1.1) } / n
            if sc > worst.0 { worst = (sc, "completion \(i): self-certainty off by \(sc) per token on average") }
            if lp > worst.0 { worst = (lp, "completion \(i): log-probs off by \(lp) per token on average") }
        }
        return worst
    }

    public func train(step: Int, groups received: [AcceptedGroup]) throws -> StepResult {
        let waited = Date().timeIntervalSince(waitingSince)
        defer { waitingSince = Date() }
        flagged = []
        var tgroups: [TrainingGroup] = []
        var staleness = 0.0
        var sampled = received.map { a in
            a.group.completions.map { c in
                SampledCompletion(tokens: c.tokens.map { Int32(bitPattern: $0) }, logprobs: c.logprobs,
                                  selfCertainty: c.selfCertainty, entropy: c.entropy,
                                  finishReason: c.finishReason == .length ? .length : .stop)
            }
        }
        let current = UInt64(step + 1)
        let c = trainer.config
        // verify_rewards: a sampled fraction of the groups sampled with exactly these weights is recomputed (groups
        // from older weights cannot be compared; `recompute_self_certainty` re-scores those). The reward is the
        // current policy's self-certainty: a group sampled with older weights is re-scored. Both are one batched
        // re-scoring (split over the ranks of a data-parallel learner, every rank gets every value back, so every
        // rank drops the same groups).
        let verify = Set(received.indices.filter {
            received[$0].group.weightVersion == current
                && Self.isSampledForVerification(taskId: received[$0].taskId, seed: c.seed, fraction: c.verifyRewards)
        })
        let old = Set(received.indices.filter { c.recomputeSelfCertainty.applies(sampled: received[$0].group.weightVersion, current: current) })
        let rescore = verify.union(old).sorted()
        let mine = try trainer.rescore(groups: rescore.map { (received[$0].promptTokens, sampled[$0]) })
        var dropped: Set<Int> = []
        for (i, recomputed) in zip(rescore, mine) {
            if verify.contains(i) {
                let (off, detail) = Self.disagreement(reported: sampled[i], recomputed: recomputed)
                if !(off <= c.verifyTolerance) {
                    let a = received[i]
                    flagged.append(FlaggedGroup(actorId: a.group.actorId, taskId: a.taskId, promptIndex: a.promptIndex,
                                                detail: "\(detail) (verify_tolerance \(c.verifyTolerance))"))
                    dropped.insert(i)
                    continue
                }
            }
            sampled[i] = recomputed
        }
        let kept = received.indices.filter { !dropped.contains($0) }
        let groups = kept.map { received[$0] }
        for i in kept {
            let a = received[i]
            let completions = try trainer.rewardFeatures(prompt: a.promptTokens, completions: sampled[i])
            let rewards = try scorer.score(completions, reference: answers[a.group.promptId])
            var tg = TrainingGroup(promptId: a.group.promptId, promptTokens: a.promptTokens,
                                   completions: completions, rewards: rewards, weightVersion: a.group.weightVersion)
            tg.correct = scorer.correctness(completions, reference: answers[a.group.promptId])
            tgroups.append(tg)
            staleness += Double(current - min(current, a.group.weightVersion))
        }
        try samples?.append(step: step + 1, groups: tgroups)
        // No group passed verification: no update (nothing trustworthy to train on); the record says so.
        let m = tgroups.isEmpty ? StepMetrics.noUpdate(step: step) : try trainer.train(tgroups, step: step)
        var stats = LearnerStepStats()
        stats.stalenessMean = staleness / Double(max(1, groups.count))
        stats.rescoredGroups = old.subtracting(dropped).count
        stats.actors = Set(groups.map(\.group.actorId)).count
        stats.verifiedGroups = verify.count
        stats.verifyFailedGroups = flagged.count
        stats.verifyFailedActors = flagged.isEmpty ? nil : Set(flagged.map(\.actorId)).sorted()
        stats.skipped = tgroups.isEmpty ? .noGroupPassedVerification : nil
        let gen = groups.reduce(0) { $0 + $1.group.completions.reduce(0) { $0 + $1.tokens.count } }
        let decodeMs = groups.reduce(0.0) { $0 + Double($1.group.timings.decodeMs + $1.group.timings.prefillMs) }
        stats.actorTokensPerSecond = decodeMs > 0 ? Double(gen) / (decodeMs / 1000) : 0
        let record = StepRecord(step: step + 1, metrics: m, sampleSeconds: waited, learner: stats)
        return StepResult(record: record, eval: try evaluate?(step + 1))
    }

    public func checkpoint(completedSteps: Int, cursor: DataCursor) throws {
        try trainer.checkpoint(completedSteps: completedSteps, cursor: cursor, output: output)
    }
}
