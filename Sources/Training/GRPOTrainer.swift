import Foundation
import GRPO
import Kernels
import Model
import Sampling

/// Per-step numbers for metrics.jsonl.
public struct StepMetrics: Sendable {
    public var step: Int
    public var loss: Double = 0
    public var pgLoss: Double = 0
    public var klLoss: Double = 0
    public var clipFraction: Double = 0
    public var approxKL: Double = 0
    public var meanKL: Double = 0
    public var meanRatio: Double = 0
    public var gradNorm: Double = 0
    public var lr: Double = 0
    public var rewardMean: Double = 0
    public var rewardStd: Double = 0
    public var selfCertaintyMean: Double = 0
    public var responseLengthMean: Double = 0
    public var trainedTokens: Int = 0
    public var seconds: Double = 0
    /// Optimizer updates refused in this step (non-finite loss or gradient); the weights stayed as they were.
    public var refusedUpdates: Int = 0
    public var refusalReason: String? = nil
    /// TRL's clip_ratio/low_mean and /high_mean.
    public var clipFractionLow: Double = 0
    public var clipFractionHigh: Double = 0
    /// Entropy, truncation, lengths, within-group self-certainty spread, training accuracy (reported only).
    public var rollout = RolloutStats()

    enum CodingKeys: String, CodingKey {
        case loss, pgLoss = "pg_loss", klLoss = "kl_loss", clipFraction = "clip_fraction", approxKL = "approx_kl"
        case meanKL = "kl", meanRatio = "ratio_mean", gradNorm = "grad_norm", lr, rewardMean = "reward_mean"
        case rewardStd = "reward_std", selfCertaintyMean = "self_certainty", responseLengthMean = "response_length"
        case trainedTokens = "trained_tokens", seconds = "step_seconds", trainTokensPerSecond = "train_tokens_per_second"
        case refusedUpdates = "refused_updates", refusalReason = "refusal_reason"
        case clipFractionLow = "clip_fraction_low", clipFractionHigh = "clip_fraction_high"
    }

    /// Trained tokens per second of the update.
    public var trainTokensPerSecond: Double { seconds > 0 ? Double(trainedTokens) / seconds : 0 }
}

/// The metrics.jsonl keys of a step's update (snake_case; `step` is the caller's, see `StepRecord`).
extension StepMetrics: Encodable {
    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(loss, forKey: .loss); try c.encode(pgLoss, forKey: .pgLoss); try c.encode(klLoss, forKey: .klLoss)
        try c.encode(clipFraction, forKey: .clipFraction); try c.encode(approxKL, forKey: .approxKL)
        try c.encode(meanKL, forKey: .meanKL); try c.encode(meanRatio, forKey: .meanRatio)
        try c.encode(gradNorm, forKey: .gradNorm); try c.encode(lr, forKey: .lr)
        try c.encode(rewardMean, forKey: .rewardMean); try c.encode(rewardStd, forKey: .rewardStd)
        try c.encode(selfCertaintyMean, forKey: .selfCertaintyMean)
        try c.encode(responseLengthMean, forKey: .responseLengthMean)
        try c.encode(trainedTokens, forKey: .trainedTokens); try c.encode(seconds, forKey: .seconds)
        try c.encode(trainTokensPerSecond, forKey: .trainTokensPerSecond)
        try c.encode(refusedUpdates, forKey: .refusedUpdates)
        try c.encodeIfPresent(refusalReason, forKey: .refusalReason)
        try c.encode(clipFractionLow, forKey: .clipFractionLow); try c.encode(clipFractionHigh, forKey: .clipFractionHigh)
        try rollout.encode(to: encoder)
    }
}

/// The GRPO / INTUITOR update on a batch of groups: group advantages, then for each PPO epoch and minibatch,
/// gradient accumulation over token-bounded micro-batches of packed (prompt + completion) sequences, the
/// PPO-clip + k3-KL loss on completion tokens, global grad-norm clipping and one AdamW step.
///
/// Log-probabilities are log softmax(z / T) at the sampling temperature (T = 1 when greedy), the same
/// convention the actors record behaviour log-probs with (see `SamplingParameters`).
public final class GRPOTrainer {
    public let policy: Transformer
    /// Frozen copy of the initial policy; nil when β = 0 (no reference forward at all) and with LoRA, where the
    /// reference is the policy's own base (its adapters switched off for the reference forward).
    public let reference: Transformer?
    /// The frozen initial model whose self-certainty is the reward with `self_certainty_source: reference` (the
    /// paper's offline ablation); the same object as `reference` when β > 0, nil otherwise.
    public let frozenRewardModel: Transformer?
    public let optimizer: AdamW
    public let schedule: LRSchedule
    public let lossConfig: PolicyLossConfig
    /// The run's whole config, written into checkpoints (`train_config.json`); the update reads only `settings`.
    public let config: TrainConfig
    /// What the update depends on (`GRPOSettings`, taken from `config` once).
    public let settings: GRPOSettings
    /// Optimizer steps taken so far (the schedule position).
    public private(set) var optimizerSteps: Int = 0
    public private(set) var guardrail = UpdateGuard()
    /// Set by a data-parallel learner: this rank trains only its token-balanced share of each minibatch and
    /// gradients, losses and statistics are summed over the ranks (`DataParallel.swift`). nil = one process.
    public var dataParallel: DataParallelGroup?

    private let temperature: Float

    public init(policy: Transformer, reference: Transformer?, config: TrainConfig) throws {
        self.policy = policy
        self.config = config
        let settings = GRPOSettings(config)
        self.settings = settings
        policy.activationCheckpointing = settings.activationCheckpointing
        if let lc = settings.lora {
            // LoRA: adapters start as PEFT's (A kaiming-uniform, B = 0) unless the caller attached some (a
            // resumed or loaded adapter); the base is frozen and is also the KL reference.
            if let ad = policy.lora {
                guard ad.config == (try lc.normalized()) else {
                    throw ConfigError(source: "trainer", key: "lora", message: "the model's attached adapters have \(ad.config), the config says \(lc)")
                }
            } else {
                let ad = try LoRAAdapters(config: lc, model: policy.config)
                ad.initialize(seed: settings.seed)
                policy.lora = ad
            }
            guard reference == nil else {
                throw ConfigError(source: "trainer", key: "lora", message: "with LoRA the KL reference is the base model with the adapters off: pass no reference model (it would be a second copy of the weights)")
            }
            self.reference = nil
        } else {
            guard policy.lora == nil else {
                throw ConfigError(source: "trainer", key: "lora", message: "the model has LoRA adapters attached but the config has no lora section")
            }
            self.reference = settings.klBeta > 0 ? reference : nil
            if settings.klBeta > 0 && reference == nil {
                throw ConfigError(source: "trainer", key: "kl_beta", message: "β > 0 needs a reference model")
            }
        }
        // self_certainty_source: reference — the frozen initial model's self-certainty; with LoRA that is the
        // policy's own base with the adapters off (`rewardFeatures` switches them off), no second copy.
        frozenRewardModel = settings.selfCertaintySource == .reference ? (settings.lora == nil ? reference : policy) : nil
        if settings.selfCertaintySource == .reference && frozenRewardModel == nil {
            throw ConfigError(source: "trainer", key: "self_certainty_source", message: "reference needs the frozen initial model")
        }
        // Gradients and AdamW moments exist only for what is trained (the adapters with LoRA).
        optimizer = try AdamW(parameterCount: policy.trainableParameters.count, config: AdamWConfig(
            lr: Double(settings.learningRate), beta1: Double(settings.adamBeta1), beta2: Double(settings.adamBeta2),
            eps: Double(settings.adamEpsilon), weightDecay: Double(settings.weightDecay)))
        // One optimizer step per minibatch per PPO epoch per training step.
        let total = settings.steps * settings.ppoEpochs * settings.minibatches
        schedule = try LRSchedule(kind: settings.lrSchedule.kind(minLRRatio: Double(settings.minLrRatio)),
                                  baseLR: Double(settings.learningRate), totalSteps: total,
                                  warmupRatio: Double(settings.warmupRatio))
        lossConfig = PolicyLossConfig(clipLow: Double(settings.clipEpsilonLow), clipHigh: Double(settings.clipEpsilonHigh),
                                      klCoef: Double(settings.klBeta), tisCap: Double(max(settings.tisCap, 1e-6)),
                                      aggregation: settings.lossAggregation)
        temperature = settings.temperature > 0 ? settings.temperature : 1
    }

    /// Loads a checkpoint written by `checkpoint(...)`: weights, AdamW moments and the schedule position.
    public func resume(from dir: URL) throws -> TrainerState {
        let s = try Checkpointing.restore(from: dir, model: policy, optimizer: optimizer)
        optimizerSteps = s.optimizerSteps
        return s
    }

    /// Writes `<output>/checkpoint-<completedSteps>/` (see `Checkpointing`).
    @discardableResult
    public func checkpoint(completedSteps: Int, cursor: DataCursor, output: URL, extra: [String: String] = [:]) throws -> URL {
        try Checkpointing.save(model: policy, optimizer: optimizer,
                               state: TrainerState(completedSteps: completedSteps, optimizerSteps: optimizerSteps,
                                                   adamStep: optimizer.stepCount, cursor: cursor, extra: extra),
                               config: config, output: output)
    }

    /// One training step (μ PPO epochs × minibatches) on `groups`. The policy's parameters change in place
    /// unless every update was refused.
    public func train(_ groups: [TrainingGroup], step: Int) throws -> StepMetrics {
        let t0 = Date()
        var metrics = StepMetrics(step: step)
        // Rewards → group advantages. Groups may differ in size (an actor may return fewer on error: not here,
        // Scheduling rejects those), so advantages are computed group by group.
        var advantages: [[Float]] = []
        var allRewards: [Double] = []
        var scSum = 0.0, scCount = 0, lenSum = 0, seqCount = 0
        for g in groups {
            let a = try groupAdvantages(rewards: g.rewards, groupSize: g.rewards.count,
                                        epsilon: settings.advantageEpsilon, unbiasedStd: settings.unbiasedStd,
                                        scaleByStd: settings.scaleAdvantages)
            advantages.append(a)
            allRewards += g.rewards.map(Double.init)
            for c in g.completions {
                scSum += Double(c.meanSelfCertainty); scCount += 1
                lenSum += c.tokens.count; seqCount += 1
            }
        }
        let rMean = allRewards.reduce(0, +) / Double(max(1, allRewards.count))
        let rVar = allRewards.reduce(0) { $0 + ($1 - rMean) * ($1 - rMean) } / Double(max(1, allRewards.count))
        metrics.rewardMean = rMean
        metrics.rewardStd = rVar.squareRoot()
        metrics.selfCertaintyMean = scSum / Double(max(1, scCount))
        metrics.responseLengthMean = Double(lenSum) / Double(max(1, seqCount))
        metrics.rollout = RolloutStats(groups: groups)

        // Flatten to sequences.
        struct Seq {
            var prompt: [Int32]; var completion: [Int32]; var behaviour: [Float]; var advantage: Float
            /// Log-probs under the weights before this step's first update (TIS with several updates only).
            var old: [Float]? = nil
        }
        var seqs: [Seq] = []
        for (g, a) in zip(groups, advantages) {
            for (c, adv) in zip(g.completions, a) {
                seqs.append(Seq(prompt: g.promptTokens, completion: c.tokens, behaviour: c.logprobs, advantage: adv))
            }
        }
        // Minibatches are whole groups' worth of sequences, split evenly.
        let mbCount = min(settings.minibatches, max(1, seqs.count))
        let per = (seqs.count + mbCount - 1) / mbCount
        // Data parallel: which rank trains each sequence, balanced by tokens within each minibatch (every rank
        // computes the same split); each rank then trains the sequences it owns, in their order.
        let rank = dataParallel?.rank ?? 0
        var owner = [Int](repeating: 0, count: seqs.count)
        if let dp = dataParallel, dp.size > 1 {
            for mb in 0..<mbCount {
                let r = min(seqs.count, mb * per)..<min(seqs.count, (mb + 1) * per)
                let split = TokenBalancedSplit.owners(tokenCounts: seqs[r].map { $0.prompt.count + $0.completion.count },
                                                      ranks: dp.size)
                for (k, i) in r.enumerated() { owner[i] = split[k] }
            }
        }
        // With TIS the PPO ratio is against the trainer's own view of the sampling policy. When the step makes
        // several updates (epochs or minibatches), that view is the weights before the first one, taken once here:
        // taking it from the current weights at each minibatch made the ratio exactly 1 and clipping never acted.
        if settings.tisCap > 0 && (settings.ppoEpochs > 1 || mbCount > 1) {
            let mine = seqs.indices.filter { owner[$0] == rank }
            let sizes = mine.map { seqs[$0].prompt.count + seqs[$0].completion.count }
            for range in PackedCompletions.microBatches(tokenCounts: sizes, budget: settings.microBatchTokens) {
                let packed = PackedCompletions(mine[range].map { (seqs[$0].prompt, seqs[$0].completion) })
                let lp = try policy.forwardHead(packed.batch, logitRows: packed.rows, targets: packed.targets,
                                                temperature: temperature, forBackward: false).logp
                for (k, i) in mine[range].enumerated() {
                    seqs[i].old = Array(lp[packed.offsets[k]..<packed.offsets[k] + packed.lengths[k]])
                }
            }
        }
        var lossSum = 0.0, pgSum = 0.0, klSum = 0.0, normSum = 0.0, updates = 0
        var stats = PolicyLossStats()
        for _ in 0..<settings.ppoEpochs {
            for mb in 0..<mbCount {
                let sliceRange = min(seqs.count, mb * per)..<min(seqs.count, (mb + 1) * per)
                let slice = Array(seqs[sliceRange])
                if slice.isEmpty { continue }
                // The minibatch's D, passed to each micro-batch so their losses and gradients sum to the minibatch's.
                let normalizer = lossConfig.aggregation.normalizer(
                    totalTokenWeight: Double(slice.reduce(0) { $0 + $1.completion.count }), sequenceCount: slice.count)
                policy.zeroGradients()
                var mbLoss = 0.0, mbPg = 0.0, mbKl = 0.0, mbTokens = 0
                var mbStats = PolicyLossStats()
                // Token-bounded micro-batches (at least one sequence each) of this rank's share (all of it alone).
                let mine = slice.indices.filter { owner[sliceRange.lowerBound + $0] == rank }.map { slice[$0] }
                let sizes = mine.map { $0.prompt.count + $0.completion.count }
                for range in PackedCompletions.microBatches(tokenCounts: sizes, budget: settings.microBatchTokens) {
                    let r = try accumulate(mine[range].map { ($0.prompt, $0.completion, $0.behaviour, $0.advantage, $0.old) },
                                           normalizer: normalizer)
                    mbLoss += r.loss; mbPg += r.pgLoss; mbKl += r.klLoss
                    mbStats.merge(r.stats)
                    mbTokens += sizes[range].reduce(0, +)
                }
                let g = policy.trainableGradients
                if let dp = dataParallel, dp.size > 1 {
                    // Σ over ranks: gradients (only the trainable ones: the adapters with LoRA), losses, statistics.
                    try dp.allreduceGradients(g.pointer, count: g.count)
                    try DataParallelSums.reduce(loss: &mbLoss, pg: &mbPg, kl: &mbKl, tokens: &mbTokens, stats: &mbStats, over: dp)
                }
                stats.merge(mbStats)
                metrics.trainedTokens += mbTokens
                // max_grad_norm 0 disables clipping (the norm is still measured for the update guard).
                let norm = clipGradNorm(g.pointer, count: g.count,
                                        maxNorm: settings.maxGradNorm > 0 ? Double(settings.maxGradNorm) : .infinity)
                let lr = schedule.lr(step: optimizerSteps)
                switch guardrail.check(loss: mbLoss, gradNorm: norm) {
                case .apply:
                    optimizer.step(params: policy.trainableParameters.pointer, grads: g.pointer, lr: lr)
                    optimizerSteps += 1
                    updates += 1
                    normSum += norm
                case .refuse(let reason):
                    metrics.refusedUpdates += 1
                    metrics.refusalReason = reason.description
                }
                metrics.lr = lr
                lossSum += mbLoss; pgSum += mbPg; klSum += mbKl
            }
        }
        policy.zeroGradients()
        let n = Double(max(1, settings.ppoEpochs * mbCount))
        metrics.loss = lossSum / n
        metrics.pgLoss = pgSum / n
        metrics.klLoss = klSum / n
        metrics.gradNorm = updates > 0 ? normSum / Double(updates) : .nan
        metrics.clipFraction = stats.clipFraction
        metrics.clipFractionLow = stats.clipFractionLow
        metrics.clipFractionHigh = stats.clipFractionHigh
        metrics.approxKL = stats.approxKL
        metrics.meanKL = stats.meanKL
        metrics.meanRatio = stats.meanRatio
        metrics.seconds = Date().timeIntervalSince(t0)
        return metrics
    }

    /// `completions` of `prompt` with their per-token behaviour log-probs (at the sampling temperature),
    /// self-certainty and entropy recomputed by the current policy (forward only, token-bounded micro-batches).
    /// INTUITOR's reward is the self-certainty of the *current* policy: a group sampled with older weights is
    /// re-scored with this before its rewards and advantages (`recompute_self_certainty`).
    public func rescore(prompt: [Int32], completions: [SampledCompletion]) throws -> [SampledCompletion] {
        try recompute(prompt: prompt, completions: completions, on: policy, logprobs: true)
    }

    /// `completions` with their per-token self-certainty (and entropy) from the frozen initial model instead of
    /// the sampling policy — the offline ablation (`self_certainty_source: reference`); behaviour log-probs are kept
    /// (the PPO ratio is still against the sampling policy). Unchanged when the source is the policy.
    public func rewardFeatures(prompt: [Int32], completions: [SampledCompletion]) throws -> [SampledCompletion] {
        guard let frozen = frozenRewardModel else { return completions }
        // LoRA: the frozen model is the policy's base, i.e. the policy with its adapters off.
        let adapters = frozen === policy ? policy.lora : nil
        adapters?.enabled = false
        defer { adapters?.enabled = true }
        return try recompute(prompt: prompt, completions: completions, on: frozen, logprobs: false)
    }

    /// The fused head's per-token self-certainty and entropy (and, with `logprobs`, log-probs at the sampling
    /// temperature) of `completions` under `model`, written into copies of them.
    private func recompute(prompt: [Int32], completions: [SampledCompletion], on model: Transformer,
                           logprobs: Bool) throws -> [SampledCompletion] {
        var out = completions
        let sizes = completions.map { prompt.count + $0.tokens.count }
        for range in PackedCompletions.microBatches(tokenCounts: sizes, budget: settings.microBatchTokens) {
            let packed = PackedCompletions(completions[range].map { (prompt, $0.tokens) })
            let h = try model.forwardHead(packed.batch, logitRows: packed.rows, targets: packed.targets,
                                          temperature: temperature, selfCertainty: true, entropy: true, forBackward: false)
            for (k, i) in range.enumerated() {
                let span = packed.offsets[k]..<packed.offsets[k] + packed.lengths[k]
                if logprobs { out[i].logprobs = Array(h.logp[span]) }
                out[i].selfCertainty = Array(h.selfCertainty[span])
                out[i].entropy = Array(h.entropy[span])
            }
        }
        return out
    }

    /// Forward + loss + backward for one micro-batch; gradients accumulate into `policy.trainableGradients`.
    /// Each element: (prompt, completion, behaviour log-probs, advantage, log-probs before the step's first update
    /// when TIS makes several updates — nil means "the current weights").
    func accumulate(_ micro: [([Int32], [Int32], [Float], Float, [Float]?)], normalizer: Double) throws -> PolicyLossResult<Float> {
        // Rollout prompts are never empty (the sampler refuses them), so every completion token has its row
        // and the behaviour log-probs line up with `packed.targets`.
        if let bad = micro.firstIndex(where: { $0.0.isEmpty }) {
            throw ModelError.invalidInput("GRPO micro-batch: sequence \(bad) has an empty prompt")
        }
        let packed = PackedCompletions(micro.map { ($0.0, $0.1) })
        let batch = packed.batch, rows = packed.rows, targets = packed.targets
        let offsets = packed.offsets, lengths = packed.lengths
        let behaviour = micro.flatMap(\.2), adv = micro.map(\.3)
        // The fused LM head: per-row log-probs at T without (R, V) logits (`lmHeadForward`).
        let refLogp: [Float]?
        if let ad = policy.lora, settings.klBeta > 0 {
            // LoRA: the reference is the frozen base, i.e. the policy with its adapters off (before the policy's
            // own forward, which keeps what the backward needs).
            ad.enabled = false
            defer { ad.enabled = true }
            refLogp = try policy.forwardHead(batch, logitRows: rows, targets: targets, temperature: temperature,
                                             forBackward: false).logp
        } else {
            refLogp = try reference?.forwardHead(batch, logitRows: rows, targets: targets, temperature: temperature,
                                                 forBackward: false).logp
        }
        let logp = try policy.forwardHead(batch, logitRows: rows, targets: targets, temperature: temperature,
                                          forBackward: true).logp
        var dLogp = [Float](repeating: 0, count: rows.count)
        let useTIS = settings.tisCap > 0
        let old = micro.allSatisfy { $0.4 != nil } ? micro.flatMap { $0.4! } : logp
        let result = try dLogp.withUnsafeMutableBufferPointer { d in
            try policyLoss(accumulatingInto: d, logp: logp,
                           // With TIS the PPO ratio is against the trainer's own view of the sampling policy
                           // (the weights before this step's first update, detached) and the actor's log-probs
                           // only weight the policy gradient; without it the ratio is against the actor's log-probs.
                           oldLogp: useTIS ? old : behaviour,
                           refLogp: refLogp, rolloutLogp: useTIS ? behaviour : nil,
                           advantages: adv, offsets: offsets, lengths: lengths,
                           config: lossConfig, normalizer: normalizer)
        }
        try policy.backwardHead(dLogp: dLogp)
        return result
    }
}

/// The part of a run's config the GRPO update reads: optimizer and schedule, objective, PPO epochs and minibatches,
/// micro-batch size, sampling temperature (the log-prob convention), LoRA and the reward source. Data, sampling
/// limits, distribution and bookkeeping keys are not the trainer's.
public struct GRPOSettings: Sendable, Equatable {
    public var steps: Int
    public var ppoEpochs: Int
    public var minibatches: Int
    public var microBatchTokens: Int
    public var activationCheckpointing: Bool
    public var lora: LoRAConfig?
    /// Seeds the LoRA adapters' initialisation.
    public var seed: UInt64
    public var temperature: Float
    public var learningRate: Float
    public var lrSchedule: LRScheduleChoice
    public var warmupRatio: Float
    public var minLrRatio: Float
    public var adamBeta1: Float
    public var adamBeta2: Float
    public var adamEpsilon: Float
    public var weightDecay: Float
    public var maxGradNorm: Float
    public var klBeta: Float
    public var clipEpsilonLow: Float
    public var clipEpsilonHigh: Float
    public var lossAggregation: LossAggregation
    public var tisCap: Float
    public var advantageEpsilon: Float
    public var unbiasedStd: Bool
    public var scaleAdvantages: Bool
    public var selfCertaintySource: SelfCertaintySource

    public init(_ c: TrainConfig) {
        steps = c.steps; ppoEpochs = c.ppoEpochs; minibatches = c.minibatches; microBatchTokens = c.microBatchTokens
        activationCheckpointing = c.activationCheckpointing; lora = c.lora; seed = c.seed; temperature = c.temperature
        learningRate = c.learningRate; lrSchedule = c.lrSchedule; warmupRatio = c.warmupRatio; minLrRatio = c.minLrRatio
        adamBeta1 = c.adamBeta1; adamBeta2 = c.adamBeta2; adamEpsilon = c.adamEpsilon; weightDecay = c.weightDecay
        maxGradNorm = c.maxGradNorm; klBeta = c.klBeta; clipEpsilonLow = c.clipEpsilonLow
        clipEpsilonHigh = c.clipEpsilonHigh; lossAggregation = c.lossAggregation; tisCap = c.tisCap
        advantageEpsilon = c.advantageEpsilon; unbiasedStd = c.unbiasedStd; scaleAdvantages = c.scaleAdvantages
        selfCertaintySource = c.selfCertaintySource
    }
}

extension StepMetrics {
    /// The metrics of a step that made no update (no group to train on, e.g. none passed `verify_rewards`):
    /// zeros, the weights as they were.
    public static func noUpdate(step: Int) -> StepMetrics { StepMetrics(step: step) }
}
