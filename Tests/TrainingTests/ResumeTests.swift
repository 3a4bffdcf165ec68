import Foundation
import GRPO
import Logging
import Model
import SafeTensors
import Testing
import TestSupport
import Tokenizer
@testable import Training

/// Interrupting a single-process run at a checkpoint and resuming it in fresh objects must give bitwise the
/// run that never stopped: weights, AdamW moments, schedule position, data cursor and sampling seeds all come
/// back from the checkpoint (or are functions of the step).
///
/// Model: a random-init Qwen2 with the embedded default's vocabulary (512, `Sources/rlif/Resources/default/
/// model/tokenizer.json`) but shrunk to 2 layers × 32 wide so the whole test runs in seconds in debug builds.
/// Prompts: the embedded default's `train.jsonl`.
@Suite(.serialized) struct ResumeTests {
    static let defaultDir = Fixtures.repoRoot.appendingPathComponent("Sources/rlif/Resources/default")

    /// Writes `<dir>/model/` (config.json, model.safetensors, tokenizer.json) and returns it.
    static func makeModel(in dir: URL) throws -> URL {
        var cfg = try ModelConfig.load(from: Fixtures.repoRoot.appendingPathComponent("scripts/default-model/config.json"))
        cfg.hiddenSize = 32
        cfg.intermediateSize = 64
        cfg.numHiddenLayers = 2
        cfg.numAttentionHeads = 4
        cfg.numKeyValueHeads = 2
        cfg.headDim = 8
        let m = try Transformer(config: cfg)
        // A peaked (not near-uniform) policy, so self-certainty rewards differ within a group.
        m.initializeRandom(seed: 11, std: 0.3, biasStd: 0.05)
        let modelDir = dir.appendingPathComponent("model")
        try m.save(to: modelDir)
        try FileManager.default.copyItem(at: defaultDir.appendingPathComponent("model/tokenizer.json"),
                                         to: modelDir.appendingPathComponent("tokenizer.json"))
        return modelDir
    }

    static func config(model: URL, output: URL) -> TrainConfig {
        var c = TrainConfig()
        // The embedded default is so peaked at temperature 1 that a group's completions coincide and the gradient
        // is rounding noise (grad norm ~1e-7), which would make the negative control below a coin flip; at
        // temperature 2 its groups differ.
        if model.standardizedFileURL == embeddedModel.standardizedFileURL { c.temperature = 2 }
        c.model = model.path
        c.prompts = defaultDir.appendingPathComponent("train.jsonl").path
        c.outputDir = output.path
        c.steps = 4
        c.promptsPerStep = 2
        c.groupSize = 3
        c.maxNewTokens = 8
        c.checkpointEvery = 2
        c.klBeta = 0.005
        c.template = .plain
        c.systemPrompt = "none"
        // Large enough that every step visibly moves the weights; cosine + warmup so the schedule position matters.
        c.learningRate = 1e-3
        c.seed = 5
        return c
    }

    /// Fresh objects, as `rlif train --single-process` builds them: policy from the original model directory,
    /// reference = a copy of that initial policy.
    static func makeRun(_ c: TrainConfig) throws -> SingleProcessRun {
        let modelDir = URL(fileURLWithPath: c.model)
        let policy = try Transformer.load(directory: modelDir)
        let reference = try Transformer(config: policy.config)
        reference.parameters.copy(from: policy.parameters)
        let tokenizer = try Tokenizer(contentsOf: modelDir.appendingPathComponent("tokenizer.json"))
        let formatter = try PromptFormatter(tokenizer: tokenizer, template: c.template, systemPrompt: c.systemPrompt)
        let dataset = try PromptDataset(contentsOf: URL(fileURLWithPath: c.prompts), seed: c.seed)
        let scorer = try RewardScorer(name: c.reward, tokenizer: tokenizer)
        let trainer = try GRPOTrainer(policy: policy, reference: reference, config: c)
        var log = Logger(label: "resume-test")
        log.logLevel = .warning
        return SingleProcessRun(config: c, trainer: trainer, formatter: formatter, dataset: dataset, evalSet: [],
                                scorer: scorer, output: URL(fileURLWithPath: c.outputDir), logger: log)
    }

    /// Training-step records of `<output>/metrics.jsonl` by 0-based step index (a record's "step" counts steps done).
    static func records(_ output: URL) throws -> [Int: [String: Any]] {
        let text = try String(contentsOf: output.appendingPathComponent("metrics.jsonl"), encoding: .utf8)
        var out: [Int: [String: Any]] = [:]
        for line in text.split(separator: "\n") {
            let r = try JSONSerialization.jsonObject(with: Data(line.utf8)) as! [String: Any]
            if r["kind"] as? String == "train", let s = r["step"] as? Int { out[s - 1] = r }
        }
        return out
    }

    static let comparedKeys = ["reward_mean", "reward_std", "self_certainty", "response_length", "loss", "pg_loss",
                               "kl", "clip_fraction", "ratio_mean", "approx_kl", "grad_norm", "lr", "trained_tokens"]

    /// Run A: 4 steps straight. Run B: the same config stopped after 2 steps (checkpoint-2), then NEW objects
    /// (policy from the original model directory, fresh trainer and optimizer) `resume()` and run to 4.
    /// Run C (negative control): like B's second half (one step) from a copy of checkpoint-2, but the resumed AdamW
    /// moments are zeroed (as if only the weights had been checkpointed): it must NOT match, so the comparison really sees
    /// the optimizer state.
    @Test func resumedRunIsBitIdentical() throws {
        let tmp = try Fixtures.temporaryDirectory("rlif-resume")
        try Self.check(model: try Self.makeModel(in: tmp), tmp: tmp)
    }

    /// The optimizer moments are flat in the writer's parameter layout: a checkpoint from another layout (or from
    /// before the layout was recorded) is refused by name instead of pairing moments with the wrong tensors.
    @Test func momentsFromAnotherParameterLayoutAreRefused() throws {
        let tmp = try Fixtures.temporaryDirectory("rlif-resume-layout")
        let model = try Self.makeModel(in: tmp)
        let out = tmp.appendingPathComponent("run")
        let a = try Self.makeRun(Self.config(model: model, output: out))
        a.stopAfterSteps = 2
        try a.run()
        let ckpt = try #require(try Checkpointing.latest(in: out))
        let optURL = ckpt.appendingPathComponent("optimizer.safetensors")
        let file = try SafeTensorsFile(contentsOf: optURL)
        #expect(file.metadata["layout"] == a.trainer.policy.layout.fingerprint)
        for layout: String? in ["0123abcd", nil] {
            var w = SafeTensorsWriter()
            let m = try file.floats("exp_avg"), v = try file.floats("exp_avg_sq")
            try m.withUnsafeBufferPointer { try w.add(name: "exp_avg", shape: [m.count], floats: $0, as: .f32) }
            try v.withUnsafeBufferPointer { try w.add(name: "exp_avg_sq", shape: [v.count], floats: $0, as: .f32) }
            var md = ["step": file.metadata["step"] ?? "2"]
            if let layout { md["layout"] = layout }
            try w.write(to: optURL, metadata: md)
            let b = try Self.makeRun(Self.config(model: model, output: out))
            do {
                _ = try b.resume()
                Issue.record("resume accepted moments of layout \(layout ?? "none")")
            } catch let e as CheckpointError {
                #expect(e.path.hasSuffix("optimizer.safetensors") && e.message.contains("parameter layout"), "\(e)")
            }
        }
        try? FileManager.default.removeItem(at: tmp)
    }

    static let embeddedModel = defaultDir.appendingPathComponent("model")

    /// The same on the embedded default model itself (4 layers × 128): opt-in (`RLIF_SLOW_TESTS=1`; ~50 s in a
    /// debug build on a loaded 2-core machine), and only when this checkout has the model.
    @Test(.enabled(if: ProcessInfo.processInfo.environment["RLIF_SLOW_TESTS"] == "1", "set RLIF_SLOW_TESTS=1"),
          .enabled(if: FileManager.default.fileExists(atPath: embeddedModel.appendingPathComponent("model.safetensors").path),
                   "needs Sources/rlif/Resources/default/model/model.safetensors"))
    func resumedRunIsBitIdenticalOnEmbeddedDefault() throws {
        let tmp = try Fixtures.temporaryDirectory("rlif-resume-default")
        try Self.check(model: Self.embeddedModel, tmp: tmp)
    }

    static func check(model: URL, tmp: URL) throws {
        let t0 = Date()
        let outA = tmp.appendingPathComponent("A"), outB = tmp.appendingPathComponent("B")
        let outC = tmp.appendingPathComponent("C")

        let a = try Self.makeRun(Self.config(model: model, output: outA))
        var afterThree: [Float] = []   // run A's weights after 3 steps, for the negative control
        try a.run { r in if case .train(let rec) = r, rec.step == 3 { afterThree = Array(a.trainer.policy.parameters.buffer) } }
        #expect(a.completedSteps == 4)

        let b1 = try Self.makeRun(Self.config(model: model, output: outB))
        b1.stopAfterSteps = 2
        try b1.run()
        #expect(b1.completedSteps == 2)
        #expect(try Checkpointing.latest(in: outB)?.lastPathComponent == Checkpointing.directoryName(step: 2))
        try FileManager.default.copyItem(at: outB, to: outC)

        let b = try Self.makeRun(Self.config(model: model, output: outB))
        #expect(try b.resume())
        #expect(b.completedSteps == 2)
        try b.run()
        #expect(b.completedSteps == 4)

        let pa = Array(a.trainer.policy.parameters.buffer), pb = Array(b.trainer.policy.parameters.buffer)
        let initial = try Transformer.load(directory: model)
        let moved = pa != Array(initial.parameters.buffer)
        #expect(moved, "training did not change the weights: the comparison is vacuous")
        if pa != pb {
            let diff = zip(pa, pb).map { abs($0 - $1) }.max() ?? 0
            let first = pa.indices.first { pa[$0] != pb[$0] } ?? -1
            Issue.record("final parameters differ: max |Δ| \(diff), first at flat index \(first)")
        }
        // (Bools, so a failure doesn't print the whole moment arrays.)
        let sameM = a.trainer.optimizer.m == b.trainer.optimizer.m, sameV = a.trainer.optimizer.v == b.trainer.optimizer.v
        #expect(sameM, "AdamW exp_avg differs")
        #expect(sameV, "AdamW exp_avg_sq differs")
        #expect(a.trainer.optimizer.stepCount == b.trainer.optimizer.stepCount)
        #expect(a.trainer.optimizerSteps == b.trainer.optimizerSteps)
        #expect(a.cursor == b.cursor)

        let ra = try Self.records(outA), rb = try Self.records(outB)
        let gradAtThird = ra[2]?["grad_norm"] as? Double ?? 0
        #expect(gradAtThird > 1e-3, "step 2's gradient (\(gradAtThird)) is too small for the negative control to mean anything")
        #expect(Set(ra.keys) == [0, 1, 2, 3])
        #expect(Set(rb.keys) == [0, 1, 2, 3], "run B's metrics.jsonl must hold steps 0-1 (first part) and 2-3 (resumed)")
        for step in 0..<4 {
            for k in Self.comparedKeys {
                let x = ra[step]?[k] as? Double, y = rb[step]?[k] as? Double
                #expect(x != nil && x == y, "metrics step \(step) \(k): straight \(String(describing: x)) vs resumed \(String(describing: y))")
            }
        }
        // Rewards must vary within groups, or the advantages (and the comparison) would be degenerate.
        #expect((ra[2]?["reward_std"] as? Double ?? 0) > 0)

        let c = try Self.makeRun(Self.config(model: model, output: outC))
        #expect(try c.resume())
        let opt = c.trainer.optimizer
        try opt.restore(AdamW.State(stepCount: opt.stepCount, m: [Float](repeating: 0, count: opt.parameterCount),
                                    v: [Float](repeating: 0, count: opt.parameterCount)))
        c.stopAfterSteps = 3   // one step is enough to diverge
        try c.run()
        #expect(c.completedSteps == 3)
        #expect(!afterThree.isEmpty)
        let controlDiffers = Array(c.trainer.policy.parameters.buffer) != afterThree
        #expect(controlDiffers, "losing the AdamW moments went unnoticed")
        print("ResumeTests \(model.path): 9 training steps in \(Date().timeIntervalSince(t0)) s")
        try? FileManager.default.removeItem(at: tmp)
    }
}
