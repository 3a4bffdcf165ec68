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
    /// completed steps, returns eval fields to add to that step's metrics, or nil when none is due.
    public var evaluate: ((Int) throws -> [String: Any]?)?
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

    public func train(step: Int, groups: [AcceptedGroup]) throws -> [String: Any] {
        var tgroups: [TrainingGroup] = []
        var staleness = 0.0, rescored = 0
        for a in groups {
            var completions = a.group.completions.map { c in
                SampledCompletion(tokens: c.tokens.map { Int32(bitPattern: $0) }, logprobs: c.logprobs,
                                  selfCertainty: c.selfCertainty, entropy: c.entropy,
                                  finishReason: c.finishReason == .length ? .length : .stop)
            }
            // The reward is the current policy's self-certainty: a group sampled with older weights is re-scored.
            if trainer.config.recomputeSelfCertainty.applies(sampled: a.group.weightVersion, current: UInt64(step + 1)) {
                completions = try trainer.rescore(prompt: a.promptTokens, completions: completions)
                rescored += 1
            }
            completions = try trainer.rewardFeatures(prompt: a.promptTokens, completions: completions)
            let rewards = try scorer.score(completions, reference: answers[a.group.promptId])
            var tg = TrainingGroup(promptId: a.group.promptId, promptTokens: a.promptTokens,
                                   completions: completions, rewards: rewards, weightVersion: a.group.weightVersion)
            tg.correct = scorer.correctness(completions, reference: answers[a.group.promptId])
            tgroups.append(tg)
            staleness += Double(UInt64(step + 1) - min(UInt64(step + 1), a.group.weightVersion))
        }
        try samples?.append(step: step, groups: tgroups)
        let m = try trainer.train(tgroups, step: step)
        var d = m.dictionary
        d["staleness_mean"] = staleness / Double(max(1, groups.count))
        d["rescored_groups"] = rescored
        d["actors"] = Set(groups.map(\.group.actorId)).count
        let gen = groups.reduce(0) { $0 + $1.group.completions.reduce(0) { $0 + $1.tokens.count } }
        let decodeMs = groups.reduce(0.0) { $0 + Double($1.group.timings.decodeMs + $1.group.timings.prefillMs) }
        d["actor_tokens_per_second"] = decodeMs > 0 ? Double(gen) / (decodeMs / 1000) : 0
        if let e = try evaluate?(step + 1) { d.merge(e) { a, _ in a } }
        return d
    }

    public func checkpoint(completedSteps: Int, state: [String: Any]) throws {
        let cursor = state["cursor"] as? DataCursor ?? DataCursor()
        try trainer.checkpoint(completedSteps: completedSteps, cursor: cursor, output: output)
    }
}
