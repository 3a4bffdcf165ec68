import Foundation
import Model
import SafeTensors
import Testing
import TestSupport
@testable import Training

/// SFT's cross-entropy through the fused LM head (−logp at T = 1, no (R, V) logits) against transformers
/// (scripts/ref/model_fixtures.py: mean next-token cross-entropy of the fixture batch and every gradient). Each
/// fixture sequence becomes an example whose prompt is its first token and whose response is the rest, so the SFT
/// targets are exactly the fixture's next-token targets. Tolerances as TransformerTests.
@Suite struct SFTTrainerTests {
    @Test(arguments: ["tiny-qwen2", "tiny-llama"], [false, true])
    func crossEntropyMatchesTransformers(_ name: String, checkpointing: Bool) throws {
        let model = try Transformer.load(directory: Fixtures.url("model/\(name)"))
        model.headChunkColumns = 10   // V = 97: a partial last chunk
        let exp = try SafeTensorsFile(contentsOf: Fixtures.url("model/\(name)-expected.safetensors"))
        let tokens = try exp.ints("tokens").map { Int32($0) }, starts = try exp.ints("seq_starts").map { Int($0) }
        let examples = (0..<(starts.count - 1)).map { s in
            SFTExample(prompt: [tokens[starts[s]]], response: Array(tokens[(starts[s] + 1)..<starts[s + 1]]))
        }
        var cfg = SFTConfig()
        cfg.activationCheckpointing = checkpointing
        let trainer = try SFTTrainer(model: model, config: cfg, exampleCount: examples.count)
        #expect(model.activationCheckpointing == checkpointing)
        let total = examples.reduce(0) { $0 + $1.response.count }
        model.zeroGradients()
        let sum = try trainer.accumulate(examples, normalizer: Double(total))
        expectClose(sum / Double(total), Double(try exp.floats("loss_f64")[0]), atol: 0, rtol: 1e-5, "\(name) loss")
        for e in model.layout.entries {
            expectClose(Array(model.gradient(e.name)!), try exp.floats("grad." + e.name), atol: 1e-6, rtol: 2e-3,
                        "\(name) grad.\(e.name)")
        }
        // Held-out loss (inference forward) is the same mean.
        expectClose(try trainer.evaluate(examples), sum / Double(total), atol: 1e-7, rtol: 1e-6, "\(name) evaluate")
    }
}
