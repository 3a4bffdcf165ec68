import Foundation
import Kernels
import Model
import Testing
import TestSupport
@testable import Sampling

/// The grouped sampler on a real (tiny, fixture) transformer: determinism per seed, independence from batching,
/// and the recorded log-probs and self-certainty equal a full forward's.
@Suite struct GroupedSamplerTests {
    let model: Transformer

    init() throws {
        model = try Transformer.load(directory: Fixtures.url("model/tiny-qwen2"))
        model.reserveDecoding(slots: 33, maxSequenceLength: 64)
    }

    func request(_ prompt: [Int32], seed: UInt64, g: Int = 4, t: Float = 1, topP: Float = 1, topK: Int = 0) -> GroupRequest {
        GroupRequest(promptTokens: prompt, groupSize: g,
                     parameters: SamplingParameters(temperature: t, topP: topP, topK: topK, maxNewTokens: 12, stopTokenIds: [2]),
                     seed: seed)
    }

    @Test func sameSeedSameGroupWhateverItIsBatchedWith() throws {
        let a = request([5, 9, 11, 3], seed: 42), b = request([7, 8], seed: 9, g: 3), c = request([60, 61, 62, 63, 64], seed: 1)
        let alone = try GroupedSampler(decoder: model, maxBatchSequences: 4).sample([a])[0]
        let again = try GroupedSampler(decoder: model, maxBatchSequences: 4).sample([a])[0]
        let mixed = try GroupedSampler(decoder: model, maxBatchSequences: 16).sample([b, a, c])[1]
        #expect(alone.completions == again.completions)
        #expect(alone.completions.map(\.tokens) == mixed.completions.map(\.tokens))
        for (x, y) in zip(alone.completions, mixed.completions) {
            expectClose(x.logprobs, y.logprobs, atol: 1e-5, rtol: 1e-4, "logprobs alone vs batched")
            expectClose(x.selfCertainty, y.selfCertainty, atol: 1e-5, rtol: 1e-4, "self-certainty alone vs batched")
        }
        let other = try GroupedSampler(decoder: model, maxBatchSequences: 4).sample([request([5, 9, 11, 3], seed: 43)])[0]
        #expect(other.completions.map(\.tokens) != alone.completions.map(\.tokens), "a different seed gave the same group")
        // The G completions of a group differ from each other (independent streams).
        #expect(Set(alone.completions.map(\.tokens)).count > 1)
    }

    @Test func recordedLogprobsAndSelfCertaintyMatchAFullForward() throws {
        let prompt: [Int32] = [5, 9, 11, 3, 17]
        let t: Float = 0.7
        let g = try GroupedSampler(decoder: model, maxBatchSequences: 8).sample([request(prompt, seed: 3, t: t, topK: 20)])[0]
        let v = model.config.vocabSize
        for c in g.completions {
            let seq = prompt + c.tokens
            let rows = (0..<c.tokens.count).map { prompt.count + $0 - 1 }
            let logits = try model.forward(PackedBatch(sequences: [seq]), logitRows: rows, forBackward: false)
            var lp = [Float](repeating: 0, count: rows.count), lse = lp, sc = lp, h = lp
            tokenLogprobForward(&lp, &lse, logits.baseAddress!, c.tokens, n: rows.count, v: v, temperature: t)
            selfCertaintyForward(&sc, logits.baseAddress!, n: rows.count, v: v)
            entropyForward(&h, logits.baseAddress!, n: rows.count, v: v)
            expectClose(c.entropy, h, atol: 2e-5, rtol: 1e-4, "entropy vs full forward (raw logits)")
            expectClose(c.logprobs, lp, atol: 2e-5, rtol: 1e-4, "behaviour logprobs vs full forward at T=\(t)")
            expectClose(c.selfCertainty, sc, atol: 2e-5, rtol: 1e-4, "self-certainty vs full forward (raw logits)")
            let mean = sc.reduce(0.0) { $0 + Double($1) } / Double(sc.count)
            expectClose(Double(c.meanSelfCertainty), mean, atol: 1e-5, "reward = mean self-certainty")
        }
    }

    @Test func stopsAtStopTokenOrLengthAndGreedyIsTheArgmaxPath() throws {
        let prompt: [Int32] = [4, 4, 4]
        let greedy = try GroupedSampler(decoder: model).sample([request(prompt, seed: 0, g: 2, t: 0)])[0]
        #expect(greedy.completions[0] == greedy.completions[1], "greedy completions of one group must agree")
        let ref = try model.greedy(prompt: prompt, maxNewTokens: 12, stop: [2])
        #expect(greedy.completions[0].tokens == ref)
        for c in greedy.completions {
            #expect(c.finishReason == (c.tokens.last == 2 ? .stop : .length))
            #expect(c.finishReason == .stop || c.tokens.count == 12)
        }
    }

    @Test func badRequestsNameTheProblem() {
        let s = GroupedSampler(decoder: model)
        #expect(throws: SamplingError.emptyPrompt(requestIndex: 0)) { try s.sample([request([], seed: 0)]) }
        #expect(throws: SamplingError.self) { try s.sample([request([1], seed: 0, t: -1)]) }
        #expect(throws: SamplingError.self) { try s.sample([request([Int32](repeating: 1, count: 64), seed: 0)]) }
    }
}

@Suite struct StopSequenceTests {
    @Test func completionEndsAtAStopSequenceAndKeepsIt() throws {
        let model = try Transformer.load(directory: Fixtures.url("model/tiny-qwen2"))
        model.reserveDecoding(slots: 4, maxSequenceLength: 64)
        let free = GroupRequest(promptTokens: [5, 9], groupSize: 1,
                                parameters: SamplingParameters(temperature: 0, maxNewTokens: 20), seed: 0)
        let full = try GroupedSampler(decoder: model).sample([free])[0].completions[0].tokens
        try #require(full.count >= 6)
        // Stop on the pair of tokens greedy decoding emits at positions 3-4: it must end right there.
        let seq = Array(full[3...4])
        let first = (1..<full.count).first { full[..<($0 + 1)].suffix(2).elementsEqual(seq) }!
        var p = free.parameters
        p.stopSequences = [seq, [96, 96, 96, 96]]
        let stopped = try GroupedSampler(decoder: model).sample([GroupRequest(promptTokens: [5, 9], groupSize: 1, parameters: p, seed: 0)])[0].completions[0]
        #expect(stopped.tokens == Array(full[...first]))
        #expect(stopped.finishReason == .stop)
        #expect(p.endsWithStopSequence([1, 2] + seq) && !p.endsWithStopSequence(seq + [200]) && !p.endsWithStopSequence([seq[1]]))
    }
}
