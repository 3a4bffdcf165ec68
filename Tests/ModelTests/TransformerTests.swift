import Foundation
import Kernels
import Model
import SafeTensors
import Testing
import TestSupport

/// Forward/backward against transformers (fixtures from scripts/ref/model_fixtures.py).
/// Tolerances: logits atol 2e-5 + rtol 1e-4 (float32, different summation orders; logits are O(1–10));
/// loss 1e-5 relative; gradients atol 1e-6 + rtol 2e-3 per element (gradients are O(1e-3–1e-1)).
@Suite struct TransformerTests {
    @Test(arguments: ["tiny-qwen2", "tiny-llama"])
    func forwardBackwardMatchTransformers(_ name: String) throws {
        let (model, exp) = try loadTiny(name)
        let batch = try fixtureBatch(exp)
        let v = model.config.vocabSize
        let logits = try model.forward(batch)
        expectClose(Array(logits), try exp.floats("logits"), atol: 2e-5, rtol: 1e-4, "\(name) logits")
        let targets = nextTokenTargets(batch)
        let (loss, dLogits) = meanCrossEntropy(logits.baseAddress!, targets, v: v)
        expectClose(loss, Double(try exp.floats("loss_f64")[0]), atol: 0, rtol: 1e-5, "\(name) loss")
        model.zeroGradients()
        try model.backward(dLogits: dLogits)
        var checked = 0
        for e in model.layout.entries {
            let g = Array(model.gradient(e.name)!)
            expectClose(g, try exp.floats("grad." + e.name), atol: 1e-6, rtol: 2e-3, "\(name) grad.\(e.name)")
            checked += 1
        }
        #expect(checked == exp.tensorNames.filter { $0.hasPrefix("grad.") }.count)
        // Backward accumulates: a second backward doubles the gradient.
        let once = Array(model.gradient("model.norm.weight")!)
        _ = try model.forward(batch)
        try model.backward(dLogits: dLogits)
        expectClose(Array(model.gradient("model.norm.weight")!), once.map { 2 * $0 }, atol: 1e-7, rtol: 1e-5, "accumulated")
    }

    @Test func logitRowSubsetMatchesFullRows() throws {
        let (model, exp) = try loadTiny("tiny-qwen2")
        let batch = try fixtureBatch(exp)
        let v = model.config.vocabSize, n = batch.tokenCount
        let full = Array(try model.forward(batch))
        let rng = [Float]((0..<(n * v)).map { Float(sin(Double($0) * 0.37)) * 0.01 })
        let rows = [5, 0, 17, 12]
        var dFull = [Float](repeating: 0, count: n * v)
        for r in rows { for j in 0..<v { dFull[r * v + j] = rng[r * v + j] } }
        model.zeroGradients()
        try model.backward(dLogits: dFull)
        let gFull = Array(model.gradients.buffer)
        let sub = Array(try model.forward(batch, logitRows: rows))
        for (k, r) in rows.enumerated() {
            expectClose(Array(sub[(k * v)..<((k + 1) * v)]), Array(full[(r * v)..<((r + 1) * v)]), atol: 1e-6, rtol: 1e-5, "row \(r)")
        }
        var dSub = [Float]()
        for r in rows { dSub += rng[(r * v)..<((r + 1) * v)] }
        model.zeroGradients()
        try model.backward(dLogits: dSub)
        expectClose(Array(model.gradients.buffer), gFull, atol: 1e-7, rtol: 1e-4, "subset gradients")
    }

    /// Central differences of a Double-accumulated loss on sampled parameters of every kind.
    @Test func finiteDifferencesOnSampledParameters() throws {
        let (model, exp) = try loadTiny("tiny-llama")
        let batch = try fixtureBatch(exp)
        let v = model.config.vocabSize
        let targets = nextTokenTargets(batch)
        let logits = try model.forward(batch)
        let (_, dLogits) = meanCrossEntropy(logits.baseAddress!, targets, v: v)
        model.zeroGradients()
        try model.backward(dLogits: dLogits)
        let probes: [(String, Int)] = [
            ("model.embed_tokens.weight", 3 * 32 + 5), ("model.layers.0.input_layernorm.weight", 7),
            ("model.layers.0.self_attn.q_proj.weight", 100), ("model.layers.1.self_attn.k_proj.weight", 37),
            ("model.layers.0.self_attn.v_proj.weight", 200), ("model.layers.1.self_attn.o_proj.weight", 511),
            ("model.layers.0.mlp.gate_proj.weight", 77), ("model.layers.1.mlp.up_proj.weight", 901),
            ("model.layers.1.mlp.down_proj.weight", 1000), ("model.norm.weight", 3), ("lm_head.weight", 1234),
            ("model.layers.1.post_attention_layernorm.weight", 30),
        ]
        let h: Float = 1e-2
        for (name, i) in probes {
            let p = model.parameter(name)!
            let analytic = Double(model.gradient(name)![i])
            let x0 = p[i]
            p[i] = x0 + h
            let lp = meanCrossEntropyDouble(UnsafeBufferPointer(try model.forward(batch, forBackward: false)), targets, v: v)
            p[i] = x0 - h
            let lm = meanCrossEntropyDouble(UnsafeBufferPointer(try model.forward(batch, forBackward: false)), targets, v: v)
            p[i] = x0
            let numeric = (lp - lm) / Double(2 * h)
            #expect(abs(numeric - analytic) <= 2e-4 + 2e-2 * abs(analytic),
                    "\(name)[\(i)]: analytic \(analytic), finite difference \(numeric)")
        }
    }

    @Test func badInputsAreErrors() throws {
        let (model, _) = try loadTiny("tiny-qwen2")
        #expect(throws: ModelError.self) { try model.forward(PackedBatch(sequences: [[1, 2, 97]])) }
        #expect(throws: ModelError.self) { try model.forward(PackedBatch(sequences: [[1, 2]]), logitRows: [2]) }
        #expect(throws: ModelError.self) {
            try model.forward(PackedBatch(tokens: [1, 2], seqStarts: [0, 2], positions: [0, 64]))
        }
        let fresh = try Transformer(config: model.config)
        #expect(throws: ModelError.self) { try fresh.backward(dLogits: [Float](repeating: 0, count: 97)) }
    }
}
