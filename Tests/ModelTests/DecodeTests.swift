import Foundation
@testable import Model
import Testing
import TestSupport

/// Incremental decoding (prefill, fork, batched decode over a KV cache) against full forwards.
/// Tolerance: atol 2e-5 + rtol 1e-4 on logits.
@Suite struct DecodeTests {
    @Test(arguments: ["tiny-qwen2", "tiny-llama"])
    func incrementalDecodeMatchesFullForward(_ name: String) throws {
        let (model, _) = try loadTiny(name)
        let v = model.config.vocabSize
        model.reserveDecoding(slots: 6, maxSequenceLength: 40)
        let promptA: [Int32] = [1, 45, 12, 88, 3, 19, 60]
        let promptB: [Int32] = [1, 7, 96]
        var last = [Float](repeating: 0, count: 2 * v)
        let slots = try model.prefill(prompts: [promptA, promptB], lastLogits: &last)
        func fullLast(_ seq: [Int32]) throws -> [Float] {
            let l = try model.forward(PackedBatch(sequences: [seq]), logitRows: [seq.count - 1], forBackward: false)
            return Array(l)
        }
        expectClose(Array(last[0..<v]), try fullLast(promptA), atol: 2e-5, rtol: 1e-4, "prefill A")
        expectClose(Array(last[v..<(2 * v)]), try fullLast(promptB), atol: 2e-5, rtol: 1e-4, "prefill B")
        // Group of 3 forked from A (A itself continues too), plus B.
        let forks = try model.fork(slots[0], count: 3)
        var live = [slots[0]] + forks + [slots[1]]
        var seqs = [promptA, promptA, promptA, promptA, promptB]
        var step = [Float](repeating: 0, count: live.count * v)
        for t in 0..<12 {
            let toks = (0..<live.count).map { Int32((t * 31 + $0 * 17 + 5) % v) }
            if t % 2 == 0 {
                try model.decode(tokens: toks, slots: live, logits: &step)
            } else {
                step = Array(try model.decodeStep(tokens: toks, slots: live))
            }
            for b in 0..<live.count {
                seqs[b].append(toks[b])
                expectClose(Array(step[(b * v)..<((b + 1) * v)]), try fullLast(seqs[b]), atol: 2e-5, rtol: 1e-4,
                            "\(name) step \(t) seq \(b)")
                #expect(model.sequenceLength(of: live[b]) == seqs[b].count)
            }
            if t == 5 {
                // Release one fork mid-way; a new fork of another fork reuses the slot and continues correctly.
                model.release([live[2]])
                let again = try model.fork(live[1], count: 1)[0]
                live[2] = again
                seqs[2] = seqs[1]
            }
        }
        model.release(live)
        #expect(model.kvCache?.freeSlotCount == 6)
    }

    /// Children read the prompt's rows by reference: releasing the prompt right after forking (what the sampler
    /// does) pins its slot until the last child goes; meanwhile nobody can be handed that slot, and the children
    /// decode exactly as a full forward. A fork of a child (count ≥ 2) shares the same root.
    @Test func sharedPrefixIsPinnedUntilTheLastChildIsReleased() throws {
        let (model, _) = try loadTiny("tiny-qwen2")
        let v = model.config.vocabSize
        model.reserveDecoding(slots: 6, maxSequenceLength: 32)
        let prompt: [Int32] = [1, 45, 12, 88, 3, 19, 60, 2, 9]
        var last = [Float](repeating: 0, count: v)
        let root = try model.prefill(prompt, lastLogits: &last)
        let kids = try model.fork(root, count: 2)
        model.release([root])
        let cache = try #require(model.kvCache)
        #expect(cache.pinnedSlotCount == 1 && cache.freeSlotCount == 3)
        #expect(throws: ModelError.self) { try model.decode(tokens: [5], slots: [root], logits: &last) }
        // Overwrite every free slot's rows: a child reading a freed (reused) prompt slot would go wrong.
        var scratch = [Float](repeating: 0, count: 3 * v)
        let squatters = try model.prefill(prompts: [[7, 7, 7, 7, 7, 7, 7, 7, 7, 7], [8, 8, 8], [9, 9, 9, 9, 9, 9]],
                                          lastLogits: &scratch)
        #expect(!squatters.contains(root))
        var seqs = [prompt, prompt]
        var live = kids
        var step = [Float](repeating: 0, count: 4 * v)
        for t in 0..<6 {
            if t == 3 {
                // Fork child 0 into two grandchildren (same root, child 0's own rows copied); drop child 0.
                model.release(squatters)
                let grand = try model.fork(live[0], count: 2)
                #expect(grand.allSatisfy { cache.prefixSlot[$0] == root && cache.prefixLength[$0] == prompt.count })
                model.release([live[0]])
                live = [live[1]] + grand
                seqs = [seqs[1], seqs[0], seqs[0]]
            }
            let toks = (0..<live.count).map { Int32((t * 13 + $0 * 7 + 2) % v) }
            try model.decode(tokens: toks, slots: live, logits: &step)
            for b in 0..<live.count {
                seqs[b].append(toks[b])
                let full = try model.forward(PackedBatch(sequences: [seqs[b]]), logitRows: [seqs[b].count - 1], forBackward: false)
                expectClose(Array(step[(b * v)..<((b + 1) * v)]), Array(full), atol: 2e-5, rtol: 1e-4, "step \(t) seq \(b)")
            }
        }
        #expect(cache.pinnedSlotCount == 1)
        model.release([live[0], live[1]])
        #expect(cache.pinnedSlotCount == 1, "one grandchild still reads the root")
        model.release([live[2]])
        #expect(cache.pinnedSlotCount == 0 && cache.freeSlotCount == 6)
    }

    /// A model wide enough that decode's skinny products split their output columns over 2 threads (tiny fixtures
    /// never do), with fused q|k|v and gate|up products.
    @Test func columnSplitDecodeMatchesFullForward() throws {
        // Llama with attention_bias: q/k/v/o biases, fused q|k|v (640 columns) split with a bias on each slice.
        let cfg = ModelConfig(architecture: .llama, hiddenSize: 384, intermediateSize: 1024, numHiddenLayers: 1,
                              numAttentionHeads: 6, numKeyValueHeads: 2, vocabSize: 2048, maxPositionEmbeddings: 64,
                              tieWordEmbeddings: false, attentionBias: true)
        let model = try Transformer(config: cfg)
        #expect(model.layout.layers[0].fusedQKV && model.layout.layers[0].fusedGateUp)
        model.decodeColumnWorkers = 2   // automatic would not split when tests pin BLAS to 1 thread
        model.initializeRandom(seed: 9, std: 0.1, biasStd: 0.1)
        let b = 8, v = cfg.vocabSize
        model.reserveDecoding(slots: b, maxSequenceLength: 16)
        var seqs = (0..<b).map { i in (0..<(3 + i % 4)).map { Int32(($0 * 97 + i * 31) % 2048) } }
        var logits = [Float](repeating: 0, count: b * v)
        let slots = try model.prefill(prompts: seqs, lastLogits: &logits)
        for t in 0..<3 {
            let toks = (0..<b).map { Int32(($0 * 13 + t * 7 + 1) % 2048) }
            try model.decode(tokens: toks, slots: slots, logits: &logits)
            for i in 0..<b {
                seqs[i].append(toks[i])
                let full = try model.forward(PackedBatch(sequences: [seqs[i]]), logitRows: [seqs[i].count - 1], forBackward: false)
                expectClose(Array(logits[(i * v)..<((i + 1) * v)]), Array(full), atol: 2e-5, rtol: 1e-4, "step \(t) seq \(i)")
            }
        }
    }

    @Test func decodeErrors() throws {
        let (model, _) = try loadTiny("tiny-qwen2")
        var out = [Float](repeating: 0, count: 97 * 2)
        #expect(throws: ModelError.self) { try model.prefill([1, 2], lastLogits: &out) }  // nothing reserved
        model.reserveDecoding(slots: 2, maxSequenceLength: 4)
        let s = try model.prefill([1, 2, 3], lastLogits: &out)
        #expect(throws: ModelError.self) { try model.decode(tokens: [1], slots: [1], logits: &out) }  // not allocated
        #expect(throws: ModelError.self) { try model.decode(tokens: [1, 2], slots: [s, s], logits: &out) }
        try model.decode(tokens: [4], slots: [s], logits: &out)
        #expect(throws: ModelError.self) { try model.decode(tokens: [4], slots: [s], logits: &out) }  // full
        #expect(throws: ModelError.self) { _ = try model.fork(s, count: 2) }  // one free slot only
        #expect(throws: ModelError.self) { try model.prefill([1, 2, 3, 4, 5], lastLogits: &out) }  // too long
    }

    @Test(.enabled(if: Fixtures.shared("stories260K") != nil, "needs ../shared/data/stories260K"))
    func stories260KGreedyMatchesTransformers() throws {
        let model = try Transformer.load(directory: Fixtures.shared("stories260K")!)
        #expect(model.config.numKeyValueHeads == 4 && model.config.vocabSize == 512)
        let data = try Data(contentsOf: Fixtures.url("model/stories260K-greedy.json"))
        let obj = try JSONSerialization.jsonObject(with: data) as! [String: Any]
        let expected = (obj["generated"] as! [Int]).map { Int32($0) }
        #expect(expected.count == 200)
        let got = try model.greedy(prompt: [1], maxNewTokens: 200)
        let firstDiff = zip(got, expected).enumerated().first { $0.element.0 != $0.element.1 }?.offset
        #expect(got == expected, "first difference at \(firstDiff.map(String.init) ?? "length") of \(expected.count)")
    }
}
