import Foundation
import Model
import Sampling
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
    }

    /// With LoRA the actors sample with base + adapters: the snapshot holds the merged weights W + s·B·A (built in a
    /// temporary copy of the base, freed once the snapshot has its own bytes), so actors need no LoRA support.
    public func snapshot(version: UInt64, dtype: DType, chunkBytes: Int) throws -> WeightSnapshot {
        var p = trainer.policy.parameters
        if let ad = trainer.policy.lora {
            let merged = FloatBuffer(count: p.count)
            trainer.policy.readParameters(into: merged.pointer)   // BF16 base weights widened
            ad.merge(into: merged.pointer, layout: trainer.policy.layout)
            p = merged
        }
        return try withExtendedLifetime(p) {
            try WeightSnapshot(version: version, parameters: UnsafeBufferPointer(start: p.pointer, count: p.count),
                               manifest: manifest, dtype: dtype, chunkBytes: chunkBytes)
        }
    }

    public func train(step: Int, groups: [AcceptedGroup]) throws -> StepResult {
        let waited = Date().timeIntervalSince(waitingSince)
        defer { waitingSince = Date() }
        var tgroups: [TrainingGroup] = []
        var staleness = 0.0, rescored = 0
        var sampled = groups.map { a in
            a.group.completions.map { c in
                SampledCompletion(tokens: c.tokens.map { Int32(bitPattern: $0) }, logprobs: c.logprobs,
                                  selfCertainty: c.selfCertainty, entropy: c.entropy,
                                  finishReason: c.finishReason == .length ? .length : .stop)
            }
        }
        // The reward is the current policy's self-certainty: a group sampled with older weights is re-scored
        // (split over the ranks of a data-parallel learner).
        let old = groups.indices.filter {
            trainer.config.recomputeSelfCertainty.applies(sampled: groups[$0].group.weightVersion, current: UInt64(step + 1))
        }
        for (i, c) in zip(old, try trainer.rescore(groups: old.map { (groups[$0].promptTokens, sampled[$0]) })) { sampled[i] = c }
        rescored = old.count
        for (a, sampledCompletions) in zip(groups, sampled) {
            let completions = try trainer.rewardFeatures(prompt: a.promptTokens, completions: sampledCompletions)
            let rewards = try scorer.score(completions, reference: answers[a.group.promptId])
            var tg = TrainingGroup(promptId: a.group.promptId, promptTokens: a.promptTokens,
                                   completions: completions, rewards: rewards, weightVersion: a.group.weightVersion)
            tg.correct = scorer.correctness(completions, reference: answers[a.group.promptId])
            tgroups.append(tg)
            staleness += Double(UInt64(step + 1) - min(UInt64(step + 1), a.group.weightVersion))
        }
        try samples?.append(step: step + 1, groups: tgroups)
        let m = try trainer.train(tgroups, step: step)
        var stats = LearnerStepStats()
        stats.stalenessMean = staleness / Double(max(1, groups.count))
        stats.rescoredGroups = rescored
        stats.actors = Set(groups.map(\.group.actorId)).count
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
