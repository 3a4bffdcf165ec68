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

    /// The fused LM head (vocabulary chunks of 10 columns: 97 = 9 × 10 + 7) gives transformers' loss and every
    /// parameter gradient — tiny-qwen2 has tied embeddings, so the head's dW lands in the embedding's gradient —
    /// with the logits recomputed in the backward (keep budget 0) and kept from the forward.
    @Test(arguments: ["tiny-qwen2", "tiny-llama"], [0, 1 << 20])
    func fusedHeadMatchesTransformers(_ name: String, keepBytes: Int) throws {
        let (model, exp) = try loadTiny(name)
        model.headChunkColumns = 10
        model.headKeepLogitsBytes = keepBytes
        let batch = try fixtureBatch(exp)
        let targets = nextTokenTargets(batch)
        let count = Float(targets.filter { $0 >= 0 }.count)
        let logp = try model.forwardHead(batch, targets: targets).logp
        let loss = logp.reduce(0.0) { $0 - Double($1) } / Double(count)
        expectClose(loss, Double(try exp.floats("loss_f64")[0]), atol: 0, rtol: 1e-5, "\(name) loss")
        model.zeroGradients()
        try model.backwardHead(dLogp: targets.map { $0 >= 0 ? -1 / count : 0 })
        for e in model.layout.entries {
            expectClose(Array(model.gradient(e.name)!), try exp.floats("grad." + e.name), atol: 1e-6, rtol: 2e-3,
                        "\(name) fused grad.\(e.name)")
        }
    }

    /// forwardHead/backwardHead against forward + logit kernels + backward(dLogits:) on a row subset at T = 0.8
    /// (log-probs, self-certainty, entropy, every gradient), chunk sizes 10 and the whole vocabulary.
    @Test(arguments: [10, 97], [0, 1 << 20])
    func fusedHeadMatchesMaterialisedHead(chunk: Int, keepBytes: Int) throws {
        let (model, exp) = try loadTiny("tiny-qwen2")
        model.headChunkColumns = chunk
        model.headKeepLogitsBytes = keepBytes
        let batch = try fixtureBatch(exp)
        let v = model.config.vocabSize, temp: Float = 0.8
        let rows = [5, 0, 17, 12, 3]
        let targets: [Int32] = [7, 96, 0, 41, 41]
        let dLogp: [Float] = [0.3, -1.1, 0.05, 0.7, -0.2]
        let logits = Array(try model.forward(batch, logitRows: rows))
        let r = rows.count
        var lp = [Float](repeating: 0, count: r), lse = lp, sc = lp, ent = lp
        tokenLogprobForward(&lp, &lse, logits, targets, n: r, v: v, temperature: temp)
        selfCertaintyForward(&sc, logits, n: r, v: v)
        entropyForward(&ent, logits, n: r, v: v)
        var dLogits = [Float](repeating: 0, count: r * v)
        tokenLogprobBackward(&dLogits, dLogp, logits, lse, targets, n: r, v: v, temperature: temp)
        model.zeroGradients()
        try model.backward(dLogits: dLogits)
        let gRef = Array(model.gradients.buffer)

        let out = try model.forwardHead(batch, logitRows: rows, targets: targets, temperature: temp,
                                        selfCertainty: true, entropy: true)
        expectClose(out.logp, lp, atol: 1e-6, rtol: 1e-6, "logp")
        expectClose(out.selfCertainty, sc, atol: 1e-6, rtol: 1e-6, "self-certainty")
        expectClose(out.entropy, ent, atol: 1e-6, rtol: 1e-6, "entropy")
        model.zeroGradients()
        try model.backwardHead(dLogp: dLogp)
        // dlnf sums over the vocabulary chunk by chunk instead of in one GEMM: float rounding of sums of
        // O(1e-3) terms, carried through the layers.
        expectClose(Array(model.gradients.buffer), gRef, atol: 1e-6, rtol: 1e-4, "gradients")
        // Inference (no backward state) gives the same numbers.
        let inf = try model.forwardHead(batch, logitRows: rows, targets: targets, temperature: temp, forBackward: false)
        #expect(inf.logp == out.logp)
        #expect(throws: ModelError.self) { try model.backwardHead(dLogp: dLogp) }
    }

    /// Activation checkpointing (keep layer inputs, recompute each layer in backward) gives bitwise the plain
    /// path's gradients: the recompute runs the same kernels on the same inputs with the same shapes, and every
    /// kernel is deterministic (fixed row splits, BLAS with a fixed thread count). A random 3-layer model with
    /// 3 × 70 tokens as well as the fixtures, so the multi-worker row splits and BLAS paths run.
    @Test(arguments: ["tiny-qwen2", "tiny-llama", "random"])
    func checkpointedGradientsAreBitwiseEqual(_ name: String) throws {
        let model: Transformer, batch: PackedBatch
        if name == "random" {
            let cfg = ModelConfig(architecture: .qwen2, hiddenSize: 128, intermediateSize: 352, numHiddenLayers: 3,
                                  numAttentionHeads: 4, numKeyValueHeads: 2, vocabSize: 3000,
                                  maxPositionEmbeddings: 256, tieWordEmbeddings: false)
            model = try Transformer(config: cfg)
            model.initializeRandom(seed: 11, std: 0.05, biasStd: 0.02)
            batch = PackedBatch(sequences: (0..<3).map { s in (0..<70).map { Int32(($0 * 37 + s * 101) % 3000) } })
        } else {
            let (m, exp) = try loadTiny(name)
            model = m
            batch = try fixtureBatch(exp)
        }
        let targets = nextTokenTargets(batch)
        let dLogp = targets.enumerated().map { $1 >= 0 ? Float(($0 % 7) - 3) * 0.01 : 0 }
        func gradients(checkpointing: Bool) throws -> ([Float], [Float]) {
            let m2 = try Transformer(config: model.config)
            m2.parameters.copy(from: model.parameters)
            m2.activationCheckpointing = checkpointing
            let lp = try m2.forwardHead(batch, targets: targets, temperature: 0.9).logp
            m2.zeroGradients()
            try m2.backwardHead(dLogp: dLogp)
            return (lp, Array(m2.gradients.buffer))
        }
        let (lpPlain, gPlain) = try gradients(checkpointing: false)
        let (lpCk, gCk) = try gradients(checkpointing: true)
        #expect(lpCk == lpPlain)
        let differing = zip(gCk, gPlain).filter { $0 != $1 }.count
        #expect(differing == 0, "\(name): \(differing) of \(gPlain.count) gradient entries differ")
        #expect(gPlain.contains { $0 != 0 })
        // The checkpointed arena keeps one layer's tensors plus every layer's input.
        let n = batch.tokenCount
        model.activationCheckpointing = false
        let full = model.activationFloats(tokens: n, rows: n, forBackward: true)
        model.activationCheckpointing = true
        let ck = model.activationFloats(tokens: n, rows: n, forBackward: true)
        #expect(ck < full, "checkpointed \(ck) floats, plain \(full)")
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
        #expect(throws: ModelError.self) { try fresh.backwardHead(dLogp: [0]) }
        let batch = PackedBatch(sequences: [[1, 2, 3]])
        #expect(throws: ModelError.self) { try model.forwardHead(batch, targets: [1, 2]) }           // 3 rows
        #expect(throws: ModelError.self) { try model.forwardHead(batch, targets: [1, 2, 97]) }       // V = 97
        #expect(throws: ModelError.self) { try model.forwardHead(batch, targets: [1, 2, 3], temperature: 0) }
        // A materialised forward's backward is backward(dLogits:), a fused one's is backwardHead.
        _ = try model.forward(batch)
        #expect(throws: ModelError.self) { try model.backwardHead(dLogp: [0, 0, 0]) }
        _ = try model.forwardHead(batch, targets: [1, 2, -1])
        #expect(throws: ModelError.self) { try model.backward(dLogits: [Float](repeating: 0, count: 3 * 97)) }
    }
}
