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
    public var vocabSize: Int { trainer.policy.config.vocabSize }
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
            merged.copy(from: p)
            ad.merge(into: merged.pointer, layout: trainer.policy.layout)
            p = merged
        }
        return try withExtendedLifetime(p) {
            try WeightSnapshot(version: version, parameters: UnsafeBufferPointer(start: p.pointer, count: p.count),
                               manifest: manifest, dtype: dtype, chunkBytes: chunkBytes)
        }
    }

    /// Groups dropped by the last `train` (verification), handed to the network thread after the step.
    private var flagged: [FlaggedGroup] = []
    public func takeFlaggedGroups() -> [FlaggedGroup] { defer { flagged = [] }; return flagged }

    /// Whether `taskId`'s group is one of the sampled `verify_rewards` fraction: a hash of (seed, task id), so
    /// the choice is reproducible and an actor cannot tell which of its groups will be checked.
    static func isSampledForVerification(taskId: UInt64, seed: UInt64, fraction: Double) -> Bool {
        guard fraction > 0 else { return false }
        guard fraction < 1 else { return true }
        var z = taskId &+ seed &* 0x9E37_79B9_7F4A_7C15  // splitmix64
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        z ^= z >> 31
        return Double(z >> 11) / Double(1 << 53) < fraction
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

    public func train(step: Int, groups: [AcceptedGroup]) throws -> [String: Any] {
        var tgroups: [TrainingGroup] = []
        var staleness = 0.0, rescored = 0, verified = 0
        var kept: [AcceptedGroup] = []
        flagged = []
        for a in groups {
            var completions = a.group.completions.map { c in
                SampledCompletion(tokens: c.tokens.map { Int32(bitPattern: $0) }, logprobs: c.logprobs,
                                  selfCertainty: c.selfCertainty, entropy: c.entropy,
                                  finishReason: c.finishReason == .length ? .length : .stop)
            }
            // verify_rewards: a sampled fraction of the groups sampled with exactly these weights is recomputed
            // (groups from older weights cannot be compared; `recompute_self_certainty: auto` re-scores those).
            let c = trainer.config
            if a.group.weightVersion == UInt64(step + 1),
               Self.isSampledForVerification(taskId: a.taskId, seed: c.seed, fraction: c.verifyRewards) {
                let mine = try trainer.rescore(prompt: a.promptTokens, completions: completions)
                verified += 1
                let (off, detail) = Self.disagreement(reported: completions, recomputed: mine)
                if !(off <= c.verifyTolerance) {
                    flagged.append(FlaggedGroup(actorId: a.group.actorId, taskId: a.taskId, promptIndex: a.promptIndex,
                                                detail: "\(detail) (verify_tolerance \(c.verifyTolerance))"))
                    continue
                }
                completions = mine
            }
            kept.append(a)
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
        var d: [String: Any]
        if tgroups.isEmpty {
            d = ["step": step, "skipped": "no group passed verification"]  // no update: nothing trustworthy to train on
        } else {
            d = try trainer.train(tgroups, step: step).dictionary
        }
        d["verified_groups"] = verified
        d["verify_failed_groups"] = flagged.count
        if !flagged.isEmpty { d["verify_failed_actors"] = Set(flagged.map(\.actorId)).sorted().joined(separator: ",") }
        let groups = kept
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
