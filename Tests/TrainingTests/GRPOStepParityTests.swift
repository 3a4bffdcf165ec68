import Foundation
import GRPO
import Model
import SafeTensors
import Sampling
import Testing
import TestSupport
@testable import Training

/// One whole GRPO step of `GRPOTrainer` against PyTorch + transformers (`scripts/ref/grpo_step_fixtures.py`):
/// 2 groups × 3 completions of different lengths on a tiny model, behaviour log-probs off-policy (so ratios ≠ 1
/// and some are clipped), β = 0.05 KL to a perturbed reference, token-mean loss; then one AdamW step with no
/// gradient clipping. Compares the loss, every parameter's gradient, the pre-clip grad norm and AdamW's first
/// moment (= 0.1·g: catches a clip the nearly scale-invariant first update would hide), and every parameter after
/// the step.
///
/// Tolerances: loss atol 1e-6 rtol 1e-5; gradients atol 1e-5 rtol 1e-3; parameters after the step atol 1e-6
/// (the step itself is ≈ lr = 1e-3 per element, so this pins the AdamW update to ~0.1%) wherever the torch
/// gradient has |g| >= 1e-6 or g = 0; the few elements with 0 < |g| < 1e-6 (first Adam step lr·g/(|g|+eps) is ill-conditioned
/// there) only to 1.1·lr. Measured (debug build): |Δloss| ≤ 3e-8, |Δgrad| ≤ 2e-7, |Δparam| ≤ 2e-7 (well-conditioned)
/// and 2e-6 (qwen2 q_proj.bias[20], |g| = 1.2e-7).
@Suite struct GRPOStepParityTests {
    struct Group: Decodable {
        var prompt: [Int32]
        var completions: [[Int32]]
        var behaviour_logprobs: [[Float]]
        var rewards: [Float]
        var advantages: [Float]
    }
    struct Fixture: Decodable {
        var model: String
        var reference: String
        var groups: [Group]
        var loss: Double
        var pg_loss: Double
        var kl_loss: Double
        var completion_tokens: Int
        var clipped_tokens: Int
    }

    /// The TrainConfig the fixture script used (its `settings`).
    static func config() -> TrainConfig {
        var c = TrainConfig()
        c.steps = 1
        c.promptsPerStep = 2
        c.groupSize = 3
        c.temperature = 0.9
        c.klBeta = 0.05
        c.clipEpsilonLow = 0.2
        c.clipEpsilonHigh = 0.2
        c.lossAggregation = .tokenMean
        c.advantageEpsilon = 1e-6
        c.unbiasedStd = true
        c.scaleAdvantages = true
        c.tisCap = 0
        c.learningRate = 1e-3
        c.lrSchedule = .constant
        c.warmupRatio = 0
        c.adamBeta1 = 0.9
        c.adamBeta2 = 0.999
        c.adamEpsilon = 1e-8
        c.weightDecay = 0.01
        c.maxGradNorm = 0   // 0 = no clipping
        c.ppoEpochs = 1
        c.minibatches = 1
        return c
    }

    static func load(_ name: String) throws -> (Fixture, SafeTensorsFile) {
        let data = try Data(contentsOf: Fixtures.url("grpo-step/\(name).json"))
        let fx = try JSONDecoder().decode(Fixture.self, from: data)
        let tensors = try SafeTensorsFile(contentsOf: Fixtures.url("grpo-step/\(name).safetensors"))
        return (fx, tensors)
    }

    static func groups(_ fx: Fixture) -> [TrainingGroup] {
        fx.groups.enumerated().map { i, g in
            TrainingGroup(promptId: "g\(i)", promptTokens: g.prompt,
                          completions: zip(g.completions, g.behaviour_logprobs).map { c, lp in
                              SampledCompletion(tokens: c, logprobs: lp, selfCertainty: [Float](repeating: 0, count: c.count),
                                                finishReason: .length)
                          },
                          rewards: g.rewards, weightVersion: 1)
        }
    }

    /// Parameters compared by HF name (the tied lm_head is the embedding).
    static func names(_ m: Transformer) -> [String] { m.layout.entries.map(\.name) }

    @Test(arguments: ["tiny-qwen2", "tiny-llama"])
    func oneStepMatchesPyTorch(_ name: String) throws {
        let (fx, expected) = try Self.load(name)
        let policy = try Transformer.load(directory: Fixtures.url(fx.model))
        let reference = try Transformer.load(directory: Fixtures.url(fx.reference))
        let config = Self.config()
        try config.validate(source: "test")
        let trainer = try GRPOTrainer(policy: policy, reference: reference, config: config)
        let groups = Self.groups(fx)

        // LambdaLR numbering: the first update (after 0 earlier ones) runs at the base lr with no warmup.
        #expect(trainer.schedule.lr(step: 0) == Double(config.learningRate))

        // Advantages: the trainer's group formula vs torch's (float64, rounded to float32).
        var advantages: [Float] = []
        for (i, g) in fx.groups.enumerated() {
            let a = try groupAdvantages(rewards: g.rewards, groupSize: g.rewards.count, epsilon: config.advantageEpsilon,
                                        unbiasedStd: config.unbiasedStd, scaleByStd: config.scaleAdvantages)
            expectClose(a, g.advantages, atol: 1e-6, rtol: 1e-6, "\(name) advantages of group \(i)")
            advantages += a
        }

        // Gradients at the initial weights through the trainer's own forward → loss → backward path.
        var micro: [([Int32], [Int32], [Float], Float, [Float]?)] = []
        var k = 0
        for g in fx.groups {
            for (c, lp) in zip(g.completions, g.behaviour_logprobs) {
                micro.append((g.prompt, c, lp, advantages[k], nil)); k += 1
            }
        }
        #expect(micro.reduce(0) { $0 + $1.1.count } == fx.completion_tokens)
        policy.zeroGradients()
        let r = try trainer.accumulate(micro, normalizer: Double(fx.completion_tokens))
        expectClose(r.loss, fx.loss, atol: 1e-6, rtol: 1e-5, "\(name) loss (accumulate)")
        expectClose(r.pgLoss, fx.pg_loss, atol: 1e-6, rtol: 1e-5, "\(name) pg_loss")
        expectClose(r.klLoss, fx.kl_loss, atol: 1e-6, rtol: 1e-5, "\(name) kl_loss")
        #expect(r.stats.clipFraction == Double(fx.clipped_tokens) / Double(fx.completion_tokens),
                "\(name): clip fraction \(r.stats.clipFraction) vs torch \(fx.clipped_tokens)/\(fx.completion_tokens)")
        var gradMax = 0.0
        for n in Self.names(policy) {
            let c = expectClose(Array(policy.gradient(n)!), try expected.floats("grad." + n),
                                atol: 1e-5, rtol: 1e-3, "\(name) grad \(n)")
            gradMax = max(gradMax, c.maxAbsDiff)
        }

        // The full step: advantages, loss, (no) clipping, AdamW at lr(0).
        policy.zeroGradients()
        let m = try trainer.train(groups, step: 0)
        #expect(m.refusedUpdates == 0)
        #expect(m.lr == Double(config.learningRate))
        #expect(trainer.optimizer.stepCount == 1)
        expectClose(m.loss, fx.loss, atol: 1e-6, rtol: 1e-5, "\(name) StepMetrics.loss")
        // max_grad_norm 0 = no clipping: the pre-clip norm is reported, and the first moment is (1 − β1)·g of the
        // UNclipped torch gradient (the first AdamW update itself is nearly scale-invariant, so this is what
        // would notice a clip).
        var sq = 0.0
        for n in Self.names(policy) { for x in try expected.floats("grad." + n) { sq += Double(x) * Double(x) } }
        expectClose(m.gradNorm, sq.squareRoot(), atol: 0, rtol: 1e-5, "\(name) grad_norm (pre-clip)")
        let moments = trainer.optimizer.m
        for e in policy.layout.entries {
            let want = try expected.floats("grad." + e.name).map { Float(1 - config.adamBeta1) * $0 }
            expectClose(moments[e.offset..<(e.offset + e.count)], want, atol: 1e-6, rtol: 1e-3, "\(name) exp_avg \(e.name)")
        }
        // The first AdamW update is lr·g/(|g| + eps) (+ decay): for |g| ≲ 1e-6 it amplifies float32 rounding of
        // g by eps/g² (|g| = 1e-7 → ×1e6), so those few elements are only held to the size of one step (1.1·lr).
        let lr = Double(config.learningRate)
        var paramMax = 0.0, illMax = 0.0, illCount = 0
        for n in Self.names(policy) {
            let actual = Array(policy.parameter(n)!), want = try expected.floats("after." + n)
            let g = try expected.floats("grad." + n)
            let isIll = { (i: Int) in g[i] != 0 && abs(g[i]) < 1e-6 }  // g = 0 exactly (unused rows): decay only
            let well = g.indices.filter { !isIll($0) }, ill = g.indices.filter(isIll)
            let c = expectClose(well.map { actual[$0] }, well.map { want[$0] }, atol: 1e-6, rtol: 0,
                                "\(name) param after step \(n) (elements with |grad| >= 1e-6 or 0)")
            paramMax = max(paramMax, c.maxAbsDiff)
            if !ill.isEmpty {
                let d = expectClose(ill.map { actual[$0] }, ill.map { want[$0] }, atol: 1.1 * lr, rtol: 0,
                                    "\(name) param after step \(n) (elements with 0 < |grad| < 1e-6)")
                illMax = max(illMax, d.maxAbsDiff); illCount += ill.count
            }
        }
        print("GRPOStepParity \(name): loss \(r.loss) vs torch \(fx.loss) (Δ \(abs(r.loss - fx.loss))), "
              + "max |Δgrad| \(gradMax), max |Δparam after step| \(paramMax) (|grad| >= 1e-6 or 0), "
              + "\(illMax) over the \(illCount) elements with 0 < |grad| < 1e-6")
    }

    /// The same gradients through the memory-saving paths: `activation_checkpointing: true` (parsed from YAML) and
    /// the fused head recomputing its chunk logits in the backward (keep budget 0) — against the torch fixture
    /// with the tolerances above, and bitwise against the plain path (same kernels, same inputs).
    @Test(arguments: ["tiny-qwen2", "tiny-llama"])
    func checkpointedRecomputingStepMatchesPyTorch(_ name: String) throws {
        let (fx, expected) = try Self.load(name)
        var micro: [([Int32], [Int32], [Float], Float, [Float]?)] = []
        for g in fx.groups {
            let a = try groupAdvantages(rewards: g.rewards, groupSize: g.rewards.count, epsilon: 1e-6,
                                        unbiasedStd: true, scaleByStd: true)
            for (k, (c, lp)) in zip(g.completions, g.behaviour_logprobs).enumerated() { micro.append((g.prompt, c, lp, a[k], nil)) }
        }
        func run(checkpointing: Bool, keepBytes: Int) throws -> (Transformer, Double) {
            let policy = try Transformer.load(directory: Fixtures.url(fx.model))
            let reference = try Transformer.load(directory: Fixtures.url(fx.reference))
            var config = Self.config()
            // The key as a user writes it, and as a --set override.
            config.activationCheckpointing = try TrainConfig.load(yaml: "activation_checkpointing: \(checkpointing)",
                                                                  source: "test").activationCheckpointing
            #expect(try TrainConfig().overriding(["activation_checkpointing=\(checkpointing)"]).activationCheckpointing
                    == checkpointing)
            let trainer = try GRPOTrainer(policy: policy, reference: reference, config: config)
            #expect(policy.activationCheckpointing == checkpointing)
            policy.headKeepLogitsBytes = keepBytes
            reference.headKeepLogitsBytes = keepBytes
            policy.zeroGradients()
            let r = try trainer.accumulate(micro, normalizer: Double(fx.completion_tokens))
            return (policy, r.loss)
        }
        let (plain, plainLoss) = try run(checkpointing: false, keepBytes: 0)
        let (ck, ckLoss) = try run(checkpointing: true, keepBytes: 0)
        expectClose(ckLoss, fx.loss, atol: 1e-6, rtol: 1e-5, "\(name) loss (checkpointed, recomputed head)")
        for n in Self.names(ck) {
            expectClose(Array(ck.gradient(n)!), try expected.floats("grad." + n), atol: 1e-5, rtol: 1e-3, "\(name) grad \(n)")
        }
        #expect(ckLoss == plainLoss)
        #expect(Array(ck.gradients.buffer) == Array(plain.gradients.buffer), "\(name): checkpointed gradients not bitwise equal")
    }
}
