import Foundation
import GRPO
import Kernels
import Model
import SafeTensors
import Sampling
import Testing
import TestSupport
@testable import Training

/// LoRA against PEFT + PyTorch (`scripts/ref/lora_fixtures.py`): the base tiny model with adapters loaded from a
/// PEFT directory PEFT itself wrote (tiny-qwen2: all seven linear layers, r 4, alpha 8; tiny-llama: q/v/o/down,
/// r 2, alpha 6; B non-zero so every gradient is), then the GRPO step of `GRPOStepParityTests` (same loss, β 0.05)
/// with the KL reference = the base with the adapters off, and one AdamW step over the adapters only.
/// Tolerances are GRPOStepParityTests': loss atol 1e-6 rtol 1e-5, gradients atol 1e-5 rtol 1e-3, adapters after
/// the step atol 1e-6 (elements with 0 < |g| < 1e-6 to 1.1·lr); logits of the PEFT-loaded model atol 1e-4.
@Suite struct LoRAParityTests {
    struct Fixture: Decodable {
        struct LoRA: Decodable { var r: Int; var lora_alpha: Float; var target_modules: [String] }
        var model: String
        var adapter: String
        var lora: LoRA
        var groups: [GRPOStepParityTests.Group]
        var loss: Double
        var pg_loss: Double
        var kl_loss: Double
        var completion_tokens: Int
        var logits_tokens: [Int32]
    }

    static func load(_ name: String) throws -> (Fixture, SafeTensorsFile) {
        let fx = try JSONDecoder().decode(Fixture.self, from: Data(contentsOf: Fixtures.url("lora/\(name).json")))
        return (fx, try SafeTensorsFile(contentsOf: Fixtures.url("lora/\(name).safetensors")))
    }

    /// The base model with the fixture's PEFT adapters attached.
    static func model(_ fx: Fixture) throws -> Transformer {
        let m = try Transformer.load(directory: Fixtures.url(fx.model))
        m.lora = try LoRAAdapters.loadPEFT(directory: Fixtures.url(fx.adapter), model: m.config)
        return m
    }

    static func config(_ fx: Fixture) -> TrainConfig {
        var c = GRPOStepParityTests.config()
        c.lora = LoRAConfig(rank: fx.lora.r, alpha: fx.lora.lora_alpha, targetModules: fx.lora.target_modules)
        return c
    }

    static func micro(_ fx: Fixture, _ config: TrainConfig) throws -> [([Int32], [Int32], [Float], Float, [Float]?)] {
        var out: [([Int32], [Int32], [Float], Float, [Float]?)] = []
        for g in fx.groups {
            let a = try groupAdvantages(rewards: g.rewards, groupSize: g.rewards.count, epsilon: config.advantageEpsilon,
                                        unbiasedStd: config.unbiasedStd, scaleByStd: config.scaleAdvantages)
            for (i, (c, lp)) in zip(g.completions, g.behaviour_logprobs).enumerated() { out.append((g.prompt, c, lp, a[i], nil)) }
        }
        return out
    }

    @Test(arguments: ["tiny-qwen2", "tiny-llama"])
    func peftDirectoryGivesPEFTLogits(_ name: String) throws {
        let (fx, expected) = try Self.load(name)
        let m = try Self.model(fx)
        #expect(m.lora!.config == (try Self.config(fx).lora!.normalized()))
        let batch = PackedBatch(sequences: [fx.logits_tokens])
        expectClose(Array(try m.forward(batch, forBackward: false)), try expected.floats("logits"), atol: 1e-4, rtol: 0,
                    "\(name) logits of base + adapter vs PeftModel.from_pretrained")
        m.lora!.enabled = false
        expectClose(Array(try m.forward(batch, forBackward: false)), try expected.floats("base_logits"), atol: 1e-4, rtol: 0,
                    "\(name) logits with the adapters off vs the base")
    }

    @Test(arguments: ["tiny-qwen2", "tiny-llama"])
    func oneStepMatchesPEFT(_ name: String) throws {
        let (fx, expected) = try Self.load(name)
        let policy = try Self.model(fx)
        let config = Self.config(fx)
        try config.validate(source: "test")
        let trainer = try GRPOTrainer(policy: policy, reference: nil, config: config)
        let ad = try #require(policy.lora)
        #expect(trainer.optimizer.parameterCount == ad.parameters.count)

        policy.zeroGradients()
        let r = try trainer.accumulate(try Self.micro(fx, config), normalizer: Double(fx.completion_tokens))
        expectClose(r.loss, fx.loss, atol: 1e-6, rtol: 1e-5, "\(name) loss")
        expectClose(r.pgLoss, fx.pg_loss, atol: 1e-6, rtol: 1e-5, "\(name) pg_loss")
        expectClose(r.klLoss, fx.kl_loss, atol: 1e-6, rtol: 1e-5, "\(name) kl_loss (reference = base, adapters off)")
        #expect(ad.enabled, "the reference forward switches the adapters back on")
        // The frozen base has no gradient buffer at all.
        #expect(!policy.hasBaseGradients)
        var gradMax = 0.0
        for t in ad.tensors {
            let got = Array(UnsafeBufferPointer(start: ad.gradients.pointer + t.offset, count: t.shape[0] * t.shape[1]))
            gradMax = max(gradMax, expectClose(got, try expected.floats("grad." + t.name), atol: 1e-5, rtol: 1e-3,
                                               "\(name) grad \(t.name)").maxAbsDiff)
        }
        #expect(ad.tensors.count == expected.tensorNames.filter { $0.hasPrefix("grad.") }.count)

        // Activation checkpointing gives bitwise the same adapter gradients.
        let plain = Array(ad.gradients.buffer)
        policy.activationCheckpointing = true
        policy.zeroGradients()
        _ = try trainer.accumulate(try Self.micro(fx, config), normalizer: Double(fx.completion_tokens))
        #expect(Array(ad.gradients.buffer) == plain, "\(name): checkpointed LoRA gradients differ from the plain path")
        policy.activationCheckpointing = false

        // The whole step: AdamW over the adapters only; the base is untouched.
        let baseBefore = Array(policy.parameters.buffer)
        let m = try trainer.train(GRPOStepParityTests.groups(.init(fx)), step: 0)
        #expect(m.refusedUpdates == 0)
        expectClose(m.loss, fx.loss, atol: 1e-6, rtol: 1e-5, "\(name) StepMetrics.loss")
        #expect(Array(policy.parameters.buffer) == baseBefore, "\(name): the frozen base changed")
        let lr = Double(config.learningRate)
        var paramMax = 0.0
        for t in ad.tensors {
            let actual = Array(UnsafeBufferPointer(start: ad.parameters.pointer + t.offset, count: t.shape[0] * t.shape[1]))
            let want = try expected.floats("after." + t.name), g = try expected.floats("grad." + t.name)
            let isIll = { (i: Int) in g[i] != 0 && abs(g[i]) < 1e-6 }
            let well = g.indices.filter { !isIll($0) }, ill = g.indices.filter(isIll)
            paramMax = max(paramMax, expectClose(well.map { actual[$0] }, well.map { want[$0] }, atol: 1e-6, rtol: 0,
                                                 "\(name) \(t.name) after step").maxAbsDiff)
            if !ill.isEmpty {
                expectClose(ill.map { actual[$0] }, ill.map { want[$0] }, atol: 1.1 * lr, rtol: 0, "\(name) \(t.name) after step (|g| < 1e-6)")
            }
        }
        print("LoRAParity \(name): loss \(r.loss) vs peft \(fx.loss), max |Δgrad| \(gradMax), max |Δadapter after step| \(paramMax)")
    }

    /// Sampling sees base + adapters: prefill and batched decode with LoRA equal the full forward.
    @Test func decodeWithAdaptersMatchesFullForward() throws {
        let (fx, _) = try Self.load("tiny-qwen2")
        let m = try Self.model(fx)
        let v = m.config.vocabSize
        m.reserveDecoding(slots: 4, maxSequenceLength: 32)
        let prompts: [[Int32]] = [[1, 45, 12, 88, 3], [1, 7, 96]]
        var last = [Float](repeating: 0, count: 2 * v)
        let slots = try m.prefill(prompts: prompts, lastLogits: &last)
        func full(_ s: [Int32]) throws -> [Float] {
            Array(try m.forward(PackedBatch(sequences: [s]), logitRows: [s.count - 1], forBackward: false))
        }
        expectClose(Array(last[0..<v]), try full(prompts[0]), atol: 2e-5, rtol: 1e-4, "prefill 0")
        var seqs = prompts
        var step = [Float](repeating: 0, count: 2 * v)
        for t in 0..<6 {
            let toks = (0..<2).map { Int32((t * 31 + $0 * 17 + 5) % v) }
            try m.decode(tokens: toks, slots: slots, logits: &step)
            for b in 0..<2 {
                seqs[b].append(toks[b])
                expectClose(Array(step[(b * v)..<((b + 1) * v)]), try full(seqs[b]), atol: 2e-5, rtol: 1e-4, "decode \(t) seq \(b)")
            }
        }
        // And the adapters matter (the check above could not pass with them ignored in both paths).
        m.lora!.enabled = false
        let off = try full(seqs[0])
        m.lora!.enabled = true
        #expect(zip(off, try full(seqs[0])).map { abs($0 - $1) }.max()! > 1e-2)
    }

    /// `self_certainty_source: reference` with LoRA: the frozen reward model is the base (the policy with its
    /// adapters off, no copy): its self-certainty equals the base's, differs from the adapted policy's, and the
    /// adapters are back on afterwards.
    @Test func frozenRewardModelIsTheBaseWithAdaptersOff() throws {
        let (fx, _) = try Self.load("tiny-qwen2")
        let policy = try Self.model(fx)
        var config = Self.config(fx)
        config.selfCertaintySource = .reference
        let trainer = try GRPOTrainer(policy: policy, reference: nil, config: config)
        #expect(trainer.frozenRewardModel === policy)
        let g = fx.groups[0]
        let completions = zip(g.completions, g.behaviour_logprobs).map { c, lp in
            SampledCompletion(tokens: c, logprobs: lp, selfCertainty: [Float](repeating: 0, count: c.count), finishReason: .length)
        }
        let frozen = try trainer.rewardFeatures(prompt: g.prompt, completions: completions)
        #expect(policy.lora!.enabled)
        let base = try Transformer.load(directory: Fixtures.url(fx.model))
        let own = try trainer.rescore(prompt: g.prompt, completions: completions)
        for (i, c) in completions.enumerated() {
            let packed = PackedCompletions([(g.prompt, c.tokens)])
            let want = try base.forwardHead(packed.batch, logitRows: packed.rows, targets: packed.targets, temperature: 0.9,
                                            selfCertainty: true, forBackward: false).selfCertainty
            expectClose(frozen[i].selfCertainty, want, atol: 1e-5, rtol: 1e-5, "completion \(i): frozen = base")
            #expect(zip(own[i].selfCertainty, want).map { abs($0 - $1) }.max()! > 1e-3, "the adapters do not matter here")
            #expect(frozen[i].logprobs == c.logprobs)
        }
    }

    /// PEFT's init: A ~ U(−1/√in, 1/√in), B = 0 (the adapted model starts as the base); seeded.
    @Test func initializationIsPEFTs() throws {
        let base = try Transformer.load(directory: Fixtures.url("model/tiny-llama"))
        let ad = try LoRAAdapters(config: LoRAConfig(rank: 4, alpha: 8), model: base.config)
        ad.initialize(seed: 7)
        for e in ad.entries {
            let a = UnsafeBufferPointer(start: ad.parameters.pointer + e.a, count: 4 * e.inFeatures)
            let b = UnsafeBufferPointer(start: ad.parameters.pointer + e.b, count: e.outFeatures * 4)
            let bound = Float(1 / Double(e.inFeatures).squareRoot())
            #expect(a.allSatisfy { abs($0) <= bound } && a.map(abs).max()! > 0.8 * bound, "\(e.nameA)")
            #expect(b.allSatisfy { $0 == 0 }, "\(e.nameB)")
        }
        let again = try LoRAAdapters(config: LoRAConfig(rank: 4, alpha: 8), model: base.config)
        again.initialize(seed: 7)
        #expect(Array(again.parameters.buffer) == Array(ad.parameters.buffer))
        #expect(ad.scale == 2)
        #expect(ad.entries.count == 2 * 7)
    }

    @Test func configErrorsNameTheKey() throws {
        #expect(throws: ConfigError(source: "t", key: "lora.dropout", message: "0.1: LoRA dropout is not implemented; only 0 (PEFT's default) is supported")) {
            try TrainConfig.load(yaml: "lora: {rank: 8, dropout: 0.1}", source: "t")
        }
        #expect(throws: ConfigError.self) { try TrainConfig.load(yaml: "lora: {rnak: 8}", source: "t") }
        #expect(throws: ConfigError.self) { try TrainConfig.load(yaml: "lora: {target_modules: [qkv]}", source: "t") }
        let c = try TrainConfig.load(yaml: "lora: {rank: 16, alpha: 32}", source: "t")
        #expect(c.lora == LoRAConfig(rank: 16, alpha: 32))
        let d = try TrainConfig().overriding(["lora.rank=4", "lora.target_modules=[q_proj, v_proj]"])
        #expect(d.lora == LoRAConfig(rank: 4, alpha: 8, targetModules: ["q_proj", "v_proj"]))
        #expect(TrainConfig().lora == nil)
    }
}

extension GRPOStepParityTests.Fixture {
    init(_ fx: LoRAParityTests.Fixture) {
        self.init(model: fx.model, reference: "", groups: fx.groups, loss: fx.loss, pg_loss: fx.pg_loss,
                  kl_loss: fx.kl_loss, completion_tokens: fx.completion_tokens, clipped_tokens: 0)
    }
}
