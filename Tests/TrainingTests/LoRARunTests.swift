import Foundation
import GRPO
import Logging
import Model
import SafeTensors
import Shared
import Testing
import TestSupport
import Tokenizer
@testable import Training

/// LoRA runs end to end: checkpoints are PEFT directories (+ the adapters' AdamW moments and trainer state), a
/// resumed run is bit-identical to one that never stopped, and `rlif merge`'s library gives a model whose logits
/// are the base + adapter's.
@Suite(.serialized) struct LoRARunTests {
    static let lora = LoRAConfig(rank: 4, alpha: 8)

    static func config(model: URL, output: URL) -> TrainConfig {
        var c = ResumeTests.config(model: model, output: output)
        c.lora = lora
        // Adapters start at B = 0: a larger lr so the 4 steps visibly move them.
        c.learningRate = 5e-3
        return c
    }

    /// As `rlif train --single-process` builds a LoRA run: the policy from the model directory, no reference copy.
    static func makeRun(_ c: TrainConfig) throws -> SingleProcessRun {
        let modelDir = URL(fileURLWithPath: c.model)
        let policy = try Transformer.load(directory: modelDir)
        let tokenizer = try Tokenizer(contentsOf: modelDir.appendingPathComponent("tokenizer.json"))
        let formatter = try PromptFormatter(tokenizer: tokenizer, template: c.template, systemPrompt: c.systemPrompt)
        let dataset = try PromptDataset(contentsOf: URL(fileURLWithPath: c.prompts), seed: c.seed)
        let scorer = try RewardScorer(name: c.reward, tokenizer: tokenizer)
        let trainer = try GRPOTrainer(policy: policy, reference: nil, config: c)
        var log = Logger(label: "lora-resume-test")
        log.logLevel = .warning
        return SingleProcessRun(config: c, trainer: trainer, formatter: formatter, dataset: dataset, evalSet: [],
                                scorer: scorer, output: URL(fileURLWithPath: c.outputDir), logger: log)
    }

    static func adapters(_ r: SingleProcessRun) -> [Float] { Array(r.trainer.policy.lora!.parameters.buffer) }

    @Test func resumedLoRARunIsBitIdentical() throws {
        let tmp = try Fixtures.temporaryDirectory("rlif-lora-resume")
        let model = try ResumeTests.makeModel(in: tmp)
        let outA = tmp.appendingPathComponent("A"), outB = tmp.appendingPathComponent("B")
        let a = try Self.makeRun(Self.config(model: model, output: outA))
        let base = Array(a.trainer.policy.parameters.buffer)
        let start = Self.adapters(a)
        try a.run()
        #expect(a.completedSteps == 4)
        #expect(Array(a.trainer.policy.parameters.buffer) == base, "the frozen base changed")
        #expect(!a.trainer.policy.hasBaseGradients)
        #expect(Self.adapters(a) != start, "training did not move the adapters: the comparison is vacuous")

        // The checkpoint is a PEFT directory, not a copy of the model.
        let ckpt = try #require(try Checkpointing.latest(in: outA))
        let fm = FileManager.default
        #expect(!fm.fileExists(atPath: ckpt.appendingPathComponent("model.safetensors").path))
        let cfg = try JSONSerialization.jsonObject(with: Data(contentsOf: ckpt.appendingPathComponent("adapter_config.json"))) as! [String: Any]
        #expect(cfg["r"] as? Int == 4 && cfg["lora_alpha"] as? Double == 8 && cfg["task_type"] as? String == "CAUSAL_LM")
        #expect(cfg["peft_type"] as? String == "LORA" && cfg["base_model_name_or_path"] as? String == model.path)
        #expect(cfg["target_modules"] as? [String] == LoRATarget.allCases.map(\.rawValue))
        let w = try SafeTensorsFile(contentsOf: ckpt.appendingPathComponent("adapter_model.safetensors"))
        #expect(w.tensorNames.contains("base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight"))
        #expect(w.tensorNames.count == 2 * 7 * 2)
        let opt = try SafeTensorsFile(contentsOf: ckpt.appendingPathComponent("optimizer.safetensors"))
        #expect(opt.shape(of: "exp_avg") == [a.trainer.policy.lora!.parameters.count])

        let b1 = try Self.makeRun(Self.config(model: model, output: outB))
        b1.stopAfterSteps = 2
        try b1.run()
        let b = try Self.makeRun(Self.config(model: model, output: outB))
        #expect(try b.resume())
        #expect(b.completedSteps == 2)
        try b.run()
        #expect(b.completedSteps == 4)
        let same = Self.adapters(a) == Self.adapters(b)
        #expect(same, "adapters differ after resume: max |Δ| \(zip(Self.adapters(a), Self.adapters(b)).map { abs($0 - $1) }.max() ?? 0)")
        let sameM = a.trainer.optimizer.m == b.trainer.optimizer.m, sameV = a.trainer.optimizer.v == b.trainer.optimizer.v
        #expect(sameM && sameV, "AdamW moments differ after resume")
        let ra = try ResumeTests.records(outA), rb = try ResumeTests.records(outB)
        for step in 0..<4 {
            for k in ResumeTests.comparedKeys {
                let x = ra[step]?[k] as? Double, y = rb[step]?[k] as? Double
                #expect(x != nil && x == y, "metrics step \(step) \(k): straight \(String(describing: x)) vs resumed \(String(describing: y))")
            }
        }
        // Resuming with other LoRA settings is refused by name.
        var other = Self.config(model: model, output: outB)
        other.lora = LoRAConfig(rank: 2, alpha: 8)
        let c = try Self.makeRun(other)
        #expect(throws: CheckpointError.self) { _ = try c.resume() }
        try? fm.removeItem(at: tmp)
    }

    /// Written and read back: identical adapters; names and config as PEFT writes them (the fixture directories
    /// are PEFT's own `save_pretrained`).
    @Test(arguments: ["tiny-qwen2", "tiny-llama"])
    func peftDirectoryRoundTrip(_ name: String) throws {
        let (fx, _) = try LoRAParityTests.load(name)
        let m = try LoRAParityTests.model(fx)
        let tmp = try Fixtures.temporaryDirectory("rlif-peft")
        try m.lora!.savePEFT(to: tmp, baseModel: fx.model)
        let back = try LoRAAdapters.loadPEFT(directory: tmp, model: m.config)
        #expect(Array(back.parameters.buffer) == Array(m.lora!.parameters.buffer))
        #expect(back.config == m.lora!.config)
        let ours = try SafeTensorsFile(contentsOf: tmp.appendingPathComponent("adapter_model.safetensors"))
        let peft = try SafeTensorsFile(contentsOf: Fixtures.url(fx.adapter).appendingPathComponent("adapter_model.safetensors"))
        #expect(ours.tensorNames == peft.tensorNames)
        for n in peft.tensorNames { #expect(ours.shape(of: n) == peft.shape(of: n), "\(n)") }
        try? FileManager.default.removeItem(at: tmp)
    }

    /// `rlif export-adapter`'s library: a checkpoint's F32 adapters re-written as BF16 (each value rounded to
    /// nearest even), the hub name in adapter_config.json, the metadata kept, loadable again; an existing output
    /// and a file with a non-LoRA tensor are refused and leave nothing behind.
    @Test func exportedAdapterIsBF16AndLoadsBack() throws {
        let (fx, _) = try LoRAParityTests.load("tiny-qwen2")
        let m = try LoRAParityTests.model(fx)
        let tmp = try Fixtures.temporaryDirectory("rlif-export")
        let ckpt = tmp.appendingPathComponent("checkpoint"), out = tmp.appendingPathComponent("published")
        try m.lora!.savePEFT(to: ckpt, baseModel: "/some/local/path")
        let e = try LoRAAdapters.exportPEFT(adapter: ckpt, output: out, dtype: .bf16, baseModel: "Org/Base-Model",
                                            metadata: ["base_sha256": String(repeating: "ab", count: 32)])
        #expect(e.parameters == m.lora!.parameters.count)
        let file = try SafeTensorsFile(contentsOf: out.appendingPathComponent("adapter_model.safetensors"))
        #expect(file.tensorNames.allSatisfy { file.dtype(of: $0) == .bf16 })
        #expect(file.metadata["base_sha256"] == String(repeating: "ab", count: 32) && file.metadata["format"] == "pt")
        let cfg = try JSONSerialization.jsonObject(with: Data(contentsOf: out.appendingPathComponent("adapter_config.json"))) as? [String: Any]
        #expect(cfg?["base_model_name_or_path"] as? String == "Org/Base-Model")
        let back = try LoRAAdapters.loadPEFT(directory: out, model: m.config)
        #expect(back.config == m.lora!.config)
        let rounded = m.lora!.parameters.buffer.map { BFloat16.toFloat(BFloat16.from($0)) }
        #expect(Array(back.parameters.buffer) == rounded)
        #expect(rounded != Array(m.lora!.parameters.buffer), "the fixture's adapters should not all be BF16 values already")
        #expect(throws: ModelError.self) {
            try LoRAAdapters.exportPEFT(adapter: ckpt, output: out, dtype: .bf16, baseModel: "x")
        }
        // A weights file with something that is not a LoRA weight is refused before anything is written.
        var w = SafeTensorsWriter()
        try w.add(name: "base_model.model.lm_head.weight", shape: [2, 2], floats: [1, 2, 3, 4])
        try w.write(to: ckpt.appendingPathComponent("adapter_model.safetensors"))
        let out2 = tmp.appendingPathComponent("refused")
        #expect(throws: ModelError.self) {
            try LoRAAdapters.exportPEFT(adapter: ckpt, output: out2, dtype: .bf16, baseModel: "x")
        }
        #expect(!FileManager.default.fileExists(atPath: out2.path))
        #expect(try FileManager.default.contentsOfDirectory(atPath: tmp.path).sorted() == ["checkpoint", "published"])
        try? FileManager.default.removeItem(at: tmp)
    }

    /// `LoRAMerge.merge` (rlif merge): the merged model's logits are base + adapter's (and PEFT's).
    @Test(arguments: ["tiny-qwen2", "tiny-llama"])
    func mergedModelHasTheAdaptedLogits(_ name: String) throws {
        let (fx, expected) = try LoRAParityTests.load(name)
        let tmp = try Fixtures.temporaryDirectory("rlif-merge")
        let out = tmp.appendingPathComponent("merged")
        try LoRAMerge.merge(base: Fixtures.url(fx.model), adapter: Fixtures.url(fx.adapter), output: out)
        let merged = try Transformer.load(directory: out)
        #expect(merged.lora == nil)
        let batch = PackedBatch(sequences: [fx.logits_tokens])
        let got = Array(try merged.forward(batch, forBackward: false))
        let withAdapters = try LoRAParityTests.model(fx)   // alive while its logits buffer is read
        let adapted = Array(try withAdapters.forward(batch, forBackward: false))
        expectClose(got, adapted, atol: 1e-4, rtol: 0, "\(name) merged vs base + adapter")
        expectClose(got, try expected.floats("logits"), atol: 1e-4, rtol: 0, "\(name) merged vs PEFT")
        #expect(throws: ModelError.self) {
            try LoRAMerge.merge(base: Fixtures.url(fx.model), adapter: Fixtures.url(fx.adapter), output: out)
        }
        try? FileManager.default.removeItem(at: tmp)
    }
}
