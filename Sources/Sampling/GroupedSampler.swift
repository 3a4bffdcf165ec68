import Foundation
import Kernels

/// Samples G completions per prompt, many prompts at once: each prompt is prefilled once, its cache forked into
/// G slots, and all live sequences of all admitted groups advance together through `BatchDecoder.decode`, so the
/// model's matrix products run with M = (live sequences) instead of M = 1.
///
/// Reproducibility: completion i of a group draws from `RandomSource(seed: request.seed, stream: i)` and its
/// logits depend only on its own tokens, so a group's output is the same whatever it is batched with (up to
/// BLAS reduction order, which OpenBLAS keeps fixed for a given thread count and shape class).
public final class GroupedSampler {
    public let decoder: BatchDecoder
    /// Most sequences decoded together in one step (bounded by the decoder's cache capacity).
    public let maxBatchSequences: Int

    private let vocab: Int
    private var logits: [Float]            // (maxBatch, V)
    private var certainty: [Float]         // (maxBatch)
    private var entropy: [Float]           // (maxBatch)
    private let tokenSampler: TokenSampler

    public init(decoder: BatchDecoder, maxBatchSequences: Int = 16) {
        self.decoder = decoder
        self.maxBatchSequences = max(1, maxBatchSequences)
        vocab = decoder.vocabularySize
        logits = [Float](repeating: 0, count: self.maxBatchSequences * vocab)
        certainty = [Float](repeating: 0, count: self.maxBatchSequences)
        entropy = [Float](repeating: 0, count: self.maxBatchSequences)
        tokenSampler = TokenSampler(vocabularySize: vocab)
    }

    /// A sequence being decoded.
    private struct Live {
        var request: Int
        var index: Int            // completion index within its group
        var slot: Int
        var rng: RandomSource
        var pending: Int32        // sampled, not yet fed to the model
        var length: Int           // prompt + generated tokens so far (pending included)
        var completion: SampledCompletion
    }

    /// Samples every request; results are in request order. `progress` is called with the number of finished
    /// groups after each one completes.
    public func sample(_ requests: [GroupRequest], progress: ((Int) -> Void)? = nil) throws -> [SampledGroup] {
        for (i, r) in requests.enumerated() {
            try r.parameters.validate()
            guard !r.promptTokens.isEmpty else { throw SamplingError.emptyPrompt(requestIndex: i) }
            guard r.groupSize >= 1 else { throw SamplingError.invalidParameter("group_size", "must be >= 1 (request \(i))") }
            guard r.promptTokens.count < decoder.maxSequenceLength else {
                throw SamplingError.invalidParameter("prompt", "request \(i): \(r.promptTokens.count) tokens leave no room in a \(decoder.maxSequenceLength)-token context")
            }
        }
        let batchLimit = max(maxBatchSequences, requests.map(\.groupSize).max() ?? 1)
        if batchLimit * vocab > logits.count {
            logits = [Float](repeating: 0, count: batchLimit * vocab)
            certainty = [Float](repeating: 0, count: batchLimit)
            entropy = [Float](repeating: 0, count: batchLimit)
        }

        var results = [[SampledCompletion?]](repeating: [], count: requests.count)
        var remaining = requests.map(\.groupSize)
        var prefillTime = [Double](repeating: 0, count: requests.count)
        var decodeTime = [Double](repeating: 0, count: requests.count)
        var output = [SampledGroup?](repeating: nil, count: requests.count)
        var live: [Live] = [], still: [Live] = []
        live.reserveCapacity(batchLimit); still.reserveCapacity(batchLimit)
        var stepTokens: [Int32] = [], stepSlots: [Int] = []
        stepTokens.reserveCapacity(batchLimit); stepSlots.reserveCapacity(batchLimit)
        var stepCounted = [Int](repeating: -1, count: requests.count), stepIndex = 0
        var next = 0
        var finishedGroups = 0
        var allSlots: [Int] = []
        defer { decoder.release(allSlots) }   // on error, give every slot back

        func finish(_ s: Live) {
            results[s.request][s.index] = s.completion
            decoder.release([s.slot])
            allSlots.removeAll { $0 == s.slot }
            remaining[s.request] -= 1
            if remaining[s.request] == 0 {
                output[s.request] = SampledGroup(completions: results[s.request].map { $0! },
                                                 prefillSeconds: prefillTime[s.request],
                                                 decodeSeconds: decodeTime[s.request])
                finishedGroups += 1
                progress?(finishedGroups)
            }
        }

        /// Records the token chosen from `row` for `s`; returns false when `s` is finished.
        func accept(_ s: inout Live, row: UnsafePointer<Float>, certainty sc: Float, entropy h: Float, step: Int) throws -> Bool {
            let params = requests[s.request].parameters
            guard let (token, lp) = tokenSampler.sample(row, params: params, rng: &s.rng), sc.isFinite else {
                throw SamplingError.nonFiniteLogits(requestIndex: s.request, completion: s.index, step: step)
            }
            s.completion.tokens.append(token)
            s.completion.logprobs.append(lp)
            s.completion.selfCertainty.append(sc)
            s.completion.entropy.append(h)
            s.pending = token
            s.length += 1
            if params.stopTokenIds.contains(token) || (!params.stopSequences.isEmpty && params.endsWithStopSequence(s.completion.tokens)) {
                s.completion.finishReason = .stop
                return false
            }
            if s.completion.tokens.count >= params.maxNewTokens || s.length >= decoder.maxSequenceLength {
                s.completion.finishReason = .length
                return false
            }
            return true
        }

        while next < requests.count || !live.isEmpty {
            // Admit whole groups while they fit in the batch and in the cache (prompt + children; pinned prompts
            // of live groups hold slots), always at least one when nothing is live.
            while next < requests.count && (live.isEmpty || (live.count + requests[next].groupSize <= batchLimit
                                                             && decoder.freeSlotCount >= requests[next].groupSize + 1)) {
                let r = requests[next]
                let t0 = DispatchTime.now().uptimeNanoseconds
                let prompt = try logits.withUnsafeMutableBufferPointer { buf in
                    try decoder.prefill(r.promptTokens, lastLogits: buf.baseAddress!)
                }
                allSlots.append(prompt)
                let slots = try decoder.fork(prompt, count: r.groupSize)
                allSlots.append(contentsOf: slots)
                decoder.release([prompt])
                allSlots.removeAll { $0 == prompt }
                results[next] = .init(repeating: nil, count: r.groupSize)
                // The first token of every completion comes from the prompt's last logits.
                logits.withUnsafeBufferPointer { l in
                    certainty.withUnsafeMutableBufferPointer { c in
                        selfCertaintyForward(c.baseAddress!, l.baseAddress!, n: 1, v: vocab)
                    }
                    entropy.withUnsafeMutableBufferPointer { e in entropyForward(e.baseAddress!, l.baseAddress!, n: 1, v: vocab) }
                }
                for i in 0..<r.groupSize {
                    var s = Live(request: next, index: i, slot: slots[i], rng: RandomSource(seed: r.seed, stream: UInt64(i)),
                                 pending: 0, length: r.promptTokens.count,
                                 completion: SampledCompletion(tokens: [], logprobs: [], selfCertainty: [], entropy: [], finishReason: .length))
                    let more = try logits.withUnsafeBufferPointer { l in
                        try accept(&s, row: l.baseAddress!, certainty: certainty[0], entropy: entropy[0], step: 0)
                    }
                    if more { live.append(s) } else { finish(s) }
                }
                prefillTime[next] = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
                next += 1
            }
            if live.isEmpty { continue }

            // One decode step for every live sequence (step buffers reused: no allocation per step).
            let t0 = DispatchTime.now().uptimeNanoseconds
            let b = live.count
            stepTokens.removeAll(keepingCapacity: true)
            stepSlots.removeAll(keepingCapacity: true)
            for s in live { stepTokens.append(s.pending); stepSlots.append(s.slot) }
            try logits.withUnsafeMutableBufferPointer { l in
                try decoder.decode(tokens: stepTokens, slots: stepSlots, logits: l.baseAddress!)
                certainty.withUnsafeMutableBufferPointer { c in
                    selfCertaintyForward(c.baseAddress!, l.baseAddress!, n: b, v: vocab)
                }
                entropy.withUnsafeMutableBufferPointer { e in entropyForward(e.baseAddress!, l.baseAddress!, n: b, v: vocab) }
            }
            still.removeAll(keepingCapacity: true)
            for bi in 0..<b {
                var s = live[bi]
                let more = try logits.withUnsafeBufferPointer { l in
                    try accept(&s, row: l.baseAddress! + bi * vocab, certainty: certainty[bi], entropy: entropy[bi],
                               step: s.completion.tokens.count)
                }
                if more { still.append(s) } else { finish(s) }
            }
            let dt = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
            // Every group with a live sequence this step (a group's sequences need not be adjacent).
            for s in live where stepCounted[s.request] != stepIndex { stepCounted[s.request] = stepIndex; decodeTime[s.request] += dt }
            stepIndex += 1
            swap(&live, &still)
        }
        allSlots.removeAll()
        return output.map { $0! }
    }
}
