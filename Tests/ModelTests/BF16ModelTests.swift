import Shared
import Foundation
import Kernels
import Model
import SafeTensors
import Testing
import TestSupport

/// A model with BF16 base weights (`Transformer(config:baseWeights: .bf16)`) against the F32 model holding the
/// same (BF16-representable) values: scoring, decoding and LoRA training compute the same numbers, the weights
/// take half the memory, and what needs trainable base weights is refused.
@Suite struct BF16ModelTests {
    static let config = ModelConfig(architecture: .qwen2, hiddenSize: 128, intermediateSize: 352, numHiddenLayers: 2,
                                    numAttentionHeads: 4, numKeyValueHeads: 2, vocabSize: 3000,
                                    maxPositionEmbeddings: 256, tieWordEmbeddings: false)

    /// A BF16 model with random weights and the F32 model with the same values (the BF16 matrices widened).
    func pair(tied: Bool = false) throws -> (bf16: Transformer, f32: Transformer) {
        var cfg = Self.config
        cfg.tieWordEmbeddings = tied
        let b = try Transformer(config: cfg, baseWeights: .bf16)
        b.initializeRandom(seed: 5, std: 0.05, biasStd: 0.02)
        let f = try Transformer(config: cfg)
        b.readParameters(into: f.parameters.pointer)
        return (b, f)
    }

    let batch = PackedBatch(sequences: (0..<3).map { s in (0..<40).map { Int32(($0 * 37 + s * 101) % 3000) } })

    @Test func storesMatricesAsBF16AndVectorsAsF32() throws {
        let (b, f) = try pair()
        #expect(b.matricesBF16 != nil && f.matricesBF16 == nil)
        // Half the bytes, up to the F32 vectors (norms and biases).
        let ratio = Double(b.weightBytes) / Double(f.weightBytes)
        #expect(ratio > 0.5 && ratio < 0.51, "BF16 weights are \(ratio) of F32")
        // Every matrix value is BF16-representable: rounding again changes nothing.
        #expect(b.bf16RoundingError(of: f.parameters.pointer) == 0)
        // Round trip through setTensor: a matrix is rounded to nearest-even, a vector kept exactly.
        let q = b.layout.entry("model.layers.0.self_attn.q_proj.weight")!, bias = b.layout.entry("model.layers.0.self_attn.q_proj.bias")!
        var rng = SeededGenerator(seed: 3)
        let qv = (0..<q.count).map { _ in Float(rng.normal()) }, bv = (0..<bias.count).map { _ in Float(rng.normal()) }
        qv.withUnsafeBufferPointer { b.setTensor(q, from: $0.baseAddress!) }
        bv.withUnsafeBufferPointer { b.setTensor(bias, from: $0.baseAddress!) }
        var back = [Float](repeating: 0, count: q.count), backB = [Float](repeating: 0, count: bias.count)
        back.withUnsafeMutableBufferPointer { b.readTensor(q, into: $0.baseAddress!) }
        backB.withUnsafeMutableBufferPointer { b.readTensor(bias, into: $0.baseAddress!) }
        #expect(back == qv.map { BFloat16.toFloat(BFloat16.from($0)) })
        #expect(backB == bv)
        #expect(back != qv)   // (the draws are not all representable: the rounding happened)
    }

    /// The fused head (logp at T, self-certainty, entropy) and the materialised logits: the same values as the F32
    /// model on the widened weights. For this model every panel GEMM is one F32 GEMM of the same shape, so equal.
    @Test(arguments: [false, true])
    func scoringMatchesF32(tied: Bool) throws {
        let (b, f) = try pair(tied: tied)
        let targets = batch.tokens.indices.map { Int32(($0 * 13) % 3000) }
        let ob = try b.forwardHead(batch, targets: targets, temperature: 0.8, selfCertainty: true, entropy: true, forBackward: false)
        let of = try f.forwardHead(batch, targets: targets, temperature: 0.8, selfCertainty: true, entropy: true, forBackward: false)
        #expect(ob.logp == of.logp)
        #expect(ob.selfCertainty == of.selfCertainty)
        #expect(ob.entropy == of.entropy)
        let lb = Array(try b.forward(batch, logitRows: [0, 41, 119], forBackward: false))
        let lf = Array(try f.forward(batch, logitRows: [0, 41, 119], forBackward: false))
        #expect(lb == lf)
    }

    /// Prefill and batched decode (the skinny kernel reading BF16 rows): bitwise the F32 model. A single-row
    /// decode step is the skinny kernel for BF16 but OpenBLAS's sgemv for F32 (another summation order): close.
    @Test func decodingMatchesF32() throws {
        let (b, f) = try pair()
        for m in [b, f] { m.reserveDecoding(slots: 5, maxSequenceLength: 64) }
        func run(_ m: Transformer) throws -> (batched: [Float], single: [Float]) {
            var first = [Float](repeating: 0, count: 3 * 3000)
            let slots = try first.withUnsafeMutableBufferPointer {
                try m.prefill(prompts: [[1, 2, 3], [7, 8], [9, 10, 11, 12]], lastLogits: $0.baseAddress!)
            }
            let batched = first + Array(try m.decodeStep(tokens: [5, 6, 7], slots: slots))
            let single = Array(try m.decodeStep(tokens: [8], slots: [slots[1]]))
            m.release(slots)
            return (batched, single)
        }
        let rb = try run(b), rf = try run(f)
        #expect(rb.batched == rf.batched)
        expectClose(rb.single, rf.single, atol: 1e-5, rtol: 1e-5, "B = 1 decode step")
        #expect(try b.greedy(prompt: [3, 4, 5], maxNewTokens: 8) == f.greedy(prompt: [3, 4, 5], maxNewTokens: 8))
    }

    /// LoRA on a BF16 base: loss and adapter gradients as on the F32 base (the input gradients through the
    /// frozen matrices go through the panel GEMM: float tolerance), with and without activation checkpointing.
    @Test(arguments: [false, true])
    func loraGradientsMatchF32(checkpointing: Bool) throws {
        let (b, f) = try pair()
        let targets = batch.tokens.indices.map { Int32(($0 * 17) % 3000) }
        let dLogp = targets.indices.map { Float(($0 % 5) - 2) * 0.05 }
        func grads(_ m: Transformer) throws -> ([Float], [Float]) {
            let ad = try LoRAAdapters(config: LoRAConfig(rank: 4, alpha: 8), model: m.config)
            ad.initialize(seed: 9)
            for i in 0..<ad.parameters.count { ad.parameters[i] += 0.01 * Float((i * 7) % 11 - 5) }  // B ≠ 0
            m.lora = ad
            m.activationCheckpointing = checkpointing
            let lp = try m.forwardHead(batch, targets: targets, temperature: 0.9).logp
            m.zeroGradients()
            try m.backwardHead(dLogp: dLogp)
            #expect(!m.hasBaseGradients)
            return (lp, Array(ad.gradients.buffer))
        }
        let (lpB, gB) = try grads(b)
        let (lpF, gF) = try grads(f)
        #expect(lpB == lpF)
        expectClose(gB, gF, atol: 1e-6, rtol: 1e-4, "adapter gradients")
        #expect(gF.contains { $0 != 0 })
    }

    @Test func trainingTheBaseIsRefused() throws {
        let (b, _) = try pair()
        let targets = batch.tokens.indices.map { Int32(($0 * 17) % 3000) }
        _ = try b.forwardHead(batch, targets: targets)
        #expect(throws: ModelError.self) { try b.backwardHead(dLogp: [Float](repeating: 0.1, count: targets.count)) }
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("bf16-save-\(getpid())")
        defer { try? FileManager.default.removeItem(at: dir) }
        #expect(throws: ModelError.self) { try b.save(to: dir) }
    }

    /// A GGUF loaded with BF16 base weights holds each matrix rounded to BF16 and each vector as loaded.
    @Test func ggufLoadsIntoBF16() throws {
        let url = Fixtures.url("gguf/tiny-qwen2.gguf")
        let f = try Transformer.load(model: url)
        let b = try Transformer.load(model: url, baseWeights: .bf16)
        let flat = FloatBuffer(count: b.layout.totalCount)
        b.readParameters(into: flat.pointer)
        for e in f.layout.entries {
            for i in 0..<e.count {
                let x = f.parameters[e.offset + i]
                let want = e.isMatrix ? BFloat16.toFloat(BFloat16.from(x)) : x
                if flat[e.offset + i] != want { Issue.record("\(e.name)[\(i)]: \(flat[e.offset + i]) != \(want)"); return }
            }
        }
    }
    /// `readParameters(start:count:into:)` (a frozen-base snapshot built a slice at a time) gives exactly the slices
    /// of the whole `readParameters`, across tensor boundaries and alignment padding, for F32 and BF16 models.
    @Test(arguments: [BaseWeights.f32, .bf16])
    func slicesOfTheParametersEqualTheWhole(_ baseWeights: BaseWeights) throws {
        let m = try Transformer.load(model: Fixtures.url("gguf/tiny-qwen2.gguf"), baseWeights: baseWeights)
        let n = m.layout.totalCount
        let whole = FloatBuffer(count: n)
        m.readParameters(into: whole.pointer)
        for slice in [1, 7, 1000, 4096, n] {
            let got = FloatBuffer(count: n)
            var start = 0
            while start < n {
                let count = min(slice, n - start)
                m.readParameters(start: start, count: count, into: got.pointer + start)
                start += count
            }
            let same = (0..<n).allSatisfy { whole[$0].bitPattern == got[$0].bitPattern }
            #expect(same, "slices of \(slice) differ from the whole (\(baseWeights))")
        }
    }
}
