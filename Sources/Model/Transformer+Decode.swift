import Foundation
import Kernels

/// Buffers of the batched decode step, sized for `maxBatch` rows (one token per sequence) so that decoding
/// allocates nothing per token. B = batch rows.
final class DecodeState {
    let cache: KVCache
    let maxBatch: Int
    let arena: FloatBuffer
    let x, ln, rstd, q, k, v, att, res, gate, up, h, logits, qkv: UnsafeMutablePointer<Float>
    // x/res (B, C), ln (B, C), rstd (B), q/att (B, QD), k/v (B, KVD), h (B, F), logits (B, V),
    // qkv (B, QD + 2·KVD) fused projection output, gate/up (B, F) each and contiguous: (B, 2·F) fused gate|up rows
    let scores: UnsafeMutablePointer<Float>          // (workers, group, capacity) attention scratch
    let tokens: UnsafeMutablePointer<Int32>          // (B)
    let positions: UnsafeMutablePointer<Int32>       // (B)
    let split: UnsafeMutablePointer<Int>             // (workers + 1) attention work split
    /// Attention workers the scratch is sized for (the core count when the cache was reserved).
    let workers = max(1, Parallel.maxWorkers)

    init(config cfg: ModelConfig, slots: Int, capacity: Int) {
        cache = KVCache(layers: cfg.numHiddenLayers, slots: slots, capacity: capacity, kvDim: cfg.kvDim)
        maxBatch = slots
        let b = slots, c = cfg.hiddenSize, qd = cfg.qDim, kvd = cfg.kvDim, f = cfg.intermediateSize
        let group = cfg.numAttentionHeads / cfg.numKeyValueHeads
        func pad(_ n: Int) -> Int { (n + 15) / 16 * 16 }
        let sizes = [b * c, b * c, b, b * qd, b * kvd, b * kvd, b * qd, b * c, 2 * b * f, 0, b * f, b * cfg.vocabSize,
                     workers * group * capacity, b * (qd + 2 * kvd)]
        arena = FloatBuffer(count: sizes.map(pad).reduce(0, +))
        var cur = arena.pointer
        var ptrs: [UnsafeMutablePointer<Float>] = []
        for s in sizes { ptrs.append(cur); cur += pad(s) }
        (x, ln, rstd, q, k, v, att, res) = (ptrs[0], ptrs[1], ptrs[2], ptrs[3], ptrs[4], ptrs[5], ptrs[6], ptrs[7])
        (gate, up, h, logits, scores, qkv) = (ptrs[8], ptrs[8] + b * f, ptrs[10], ptrs[11], ptrs[12], ptrs[13])
        tokens = .allocate(capacity: b)
        positions = .allocate(capacity: b)
        split = .allocate(capacity: workers + 1)
    }

    deinit { tokens.deallocate(); positions.deallocate(); split.deallocate() }
}

/// Raw pointers for the attention workers; safe because `Parallel.run` joins before returning and each worker
/// writes only its own sequences' output rows and its own score scratch.
private struct DecodePointers: @unchecked Sendable {
    let q, att, scores: UnsafeMutablePointer<Float>
}

extension Transformer {
    /// Width of a logits row.
    public var vocabularySize: Int { config.vocabSize }

    /// Most tokens (prompt + completion) one KV-cache slot holds (0 before `reserveDecoding`).
    public var maxSequenceLength: Int { decodeState?.cache.capacity ?? 0 }

    /// The KV cache (nil before `reserveDecoding`).
    public var kvCache: KVCache? { decodeState?.cache }

    /// KV-cache slots free for `prefill` / `fork` (0 before `reserveDecoding`).
    public var freeSlotCount: Int { decodeState?.cache.freeSlotCount ?? 0 }

    /// Allocates the KV cache and decode buffers: `slots` concurrent sequences of up to `maxSequenceLength`
    /// tokens (capped at max_position_embeddings). Drops any previous cache.
    /// When the existing cache already has exactly these dimensions and no slot is in use, it is kept (no
    /// reallocation for callers that reserve per batch).
    public func reserveDecoding(slots: Int, maxSequenceLength: Int) {
        let cap = max(1, min(maxSequenceLength, config.maxPositionEmbeddings)), n = max(1, slots)
        if let st = decodeState, st.cache.slotCount == n, st.cache.capacity == cap, st.cache.freeSlotCount == n { return }
        decodeState = nil
        decodeState = DecodeState(config: config, slots: n, capacity: cap)
    }

    /// `decode` into an internal buffer: returns next-token logits (B, V), valid until the next decode call.
    public func decodeStep(tokens: [Int32], slots: [Int]) throws -> UnsafeBufferPointer<Float> {
        let st = try requireDecodeState()
        try decode(tokens: tokens, slots: slots, logits: st.logits)
        return UnsafeBufferPointer(start: st.logits, count: tokens.count * config.vocabSize)
    }

    private func requireDecodeState() throws -> DecodeState {
        guard let s = decodeState else {
            throw ModelError.invalidInput("decoding needs reserveDecoding(slots:maxSequenceLength:) first")
        }
        return s
    }

    /// Runs one prompt into a fresh slot; writes the last position's logits (V). Returns the slot.
    public func prefill(_ tokens: [Int32], lastLogits: UnsafeMutablePointer<Float>) throws -> Int {
        try prefill(prompts: [tokens], lastLogits: lastLogits)[0]
    }

    /// Runs several prompts (packed, one forward) into fresh slots; writes each prompt's last-position logits
    /// (P, V). Returns the slots, in prompt order.
    public func prefill(prompts: [[Int32]], lastLogits: UnsafeMutablePointer<Float>) throws -> [Int] {
        let st = try requireDecodeState()
        for (i, p) in prompts.enumerated() {
            guard !p.isEmpty, p.count <= st.cache.capacity else {
                throw ModelError.invalidInput("prefill: prompt \(i) has \(p.count) tokens; need 1…\(st.cache.capacity)")
            }
        }
        let batch = PackedBatch(sequences: prompts)
        try batch.validate(vocabSize: config.vocabSize, maxPositions: config.maxPositionEmbeddings)
        guard st.cache.freeSlotCount >= prompts.count else {
            throw ModelError.invalidInput("prefill: \(prompts.count) prompts but only \(st.cache.freeSlotCount) free KV-cache slots")
        }
        var slots: [Int] = []
        for _ in prompts { slots.append(try st.cache.allocate()) }
        let a = ensureArena(tokens: batch.tokenCount, rows: prompts.count, storage: .shared)
        invalidateForBackward()
        runLayers(batch, a, cacheSlots: slots)
        let c = config.hiddenSize
        for b in 0..<prompts.count {
            (a.compact + b * c).update(from: a.lnf + (batch.seqStarts[b + 1] - 1) * c, count: c)
            st.cache.setLength(slots[b], prompts[b].count)
        }
        linearForward(lastLogits, a.compact, weight(layout.lmHead), nil,
                      n: prompts.count, c: c, oc: config.vocabSize)
        return slots
    }

    /// `count` new slots continuing from `slot`; `slot` stays valid. With count ≥ 2 the children share `slot`'s
    /// rows by reference (see `KVCache`): releasing `slot` then keeps its storage pinned until the last child is
    /// released, so reserve one extra slot per group whose prompt is released while it decodes.
    public func fork(_ slot: Int, count: Int) throws -> [Int] {
        let st = try requireDecodeState()
        try st.cache.checkLive(slot)
        guard st.cache.freeSlotCount >= count else {
            throw ModelError.invalidInput("fork: \(count) slots requested but only \(st.cache.freeSlotCount) free")
        }
        var out: [Int] = []
        for _ in 0..<count {
            let s = try st.cache.allocate()
            st.cache.fork(from: slot, to: s, share: count >= 2)
            out.append(s)
        }
        return out
    }

    /// Frees slots (unknown or already free slots are ignored).
    public func release(_ slots: [Int]) {
        guard let st = decodeState else { return }
        for s in slots { st.cache.release(s) }
    }

    /// Tokens held by a slot.
    public func sequenceLength(of slot: Int) -> Int { decodeState?.cache.lengths[slot] ?? 0 }

    /// Appends `tokens[b]` to `slots[b]` for every b (distinct slots) and writes next-token logits (B, V).
    /// Linear layers run as M = B GEMMs; attention runs per sequence against its cache (GQA: a kv head's query
    /// group is one small GEMM).
    public func decode(tokens: [Int32], slots: [Int], logits out: UnsafeMutablePointer<Float>) throws {
        let st = try requireDecodeState()
        let bsz = tokens.count
        guard bsz == slots.count, bsz <= st.maxBatch else {
            throw ModelError.invalidInput("decode: \(bsz) tokens for \(slots.count) slots (max batch \(st.maxBatch))")
        }
        if bsz == 0 { return }
        let cache = st.cache
        for (b, s) in slots.enumerated() {
            try cache.checkLive(s)
            guard cache.lengths[s] < cache.capacity else {
                throw ModelError.invalidInput("decode: slot \(s) is full (\(cache.capacity) tokens)")
            }
            guard tokens[b] >= 0, Int(tokens[b]) < config.vocabSize else {
                throw ModelError.invalidInput("decode: token \(tokens[b]) at \(b) not in 0..<\(config.vocabSize)")
            }
            if slots[..<b].contains(s) { throw ModelError.invalidInput("decode: slot \(s) appears twice") }
            st.tokens[b] = tokens[b]
            st.positions[b] = Int32(cache.lengths[s])
        }
        invalidateForBackward()
        let cfg = config
        let c = cfg.hiddenSize, qd = cfg.qDim, kvd = cfg.kvDim, f = cfg.intermediateSize, hd = cfg.headDim
        let nh = cfg.numAttentionHeads, nkv = cfg.numKeyValueHeads, group = nh / nkv, eps = Float(cfg.rmsNormEps)
        let w = parameters.pointer
        let cw = decodeColumnWorkers
        func opt(_ o: Int) -> UnsafePointer<Float>? { o < 0 ? nil : UnsafePointer(w + o) }
        embeddingForward(st.x, st.tokens, weight(layout.embedding), n: bsz, c: c)
        // Attention work per step, for the parallel split: worker w takes sequences split[w]..<split[w+1].
        var attWork = 0
        for s in slots { attWork += 4 * (cache.lengths[s] + 1) * qd }
        // (At most the worker count the score scratch was sized for.)
        let workers = min(Parallel.workers(work: attWork, items: bsz), st.workers)
        let split = st.split   // (workers + 1), preallocated: nothing is allocated per step
        for i in 0...workers { split[i] = bsz }
        split[0] = 0
        var acc = 0, next = 1
        for (b, s) in slots.enumerated() where next < workers {
            acc += 4 * (cache.lengths[s] + 1) * qd
            while next < workers && acc * workers >= attWork * next { split[next] = b + 1; next += 1 }
        }
        // LoRA: s·B·A·x added to each targeted projection's rows (`ld`: the output's row stride).
        let ad = lora.flatMap { $0.enabled ? $0 : nil }
        func adapt(_ li: Int, _ t: LoRATarget, _ out: UnsafeMutablePointer<Float>, _ inp: UnsafePointer<Float>, ld: Int? = nil) {
            guard let ad, let e = ad.entry(layer: li, target: t) else { return }
            loraForward(out, ad.scratchRows(bsz), inp, ad.parameters.pointer + e.a, ad.parameters.pointer + e.b,
                        n: bsz, c: e.inFeatures, oc: e.outFeatures, r: ad.rank, scale: ad.scale, ldOut: ld)
        }
        for (li, lo) in layout.layers.enumerated() {
            rmsnormForward(st.ln, st.rstd, st.x, w + lo.inputNorm, n: bsz, c: c, eps: eps)
            if lo.fusedQKV {
                // One (B, QD + 2·KVD) product (one parallel region instead of three), then split into q, k, v.
                let qkvd = qd + 2 * kvd
                decodeLinearForward(st.qkv, st.ln, weight(lo.wq), nil, n: bsz, c: c, oc: qkvd, workers: cw)
                for b in 0..<bsz {
                    let row = st.qkv + b * qkvd
                    splitRow(st.q + b * qd, row, opt(lo.bq), qd)
                    splitRow(st.k + b * kvd, row + qd, opt(lo.bk), kvd)
                    splitRow(st.v + b * kvd, row + qd + kvd, opt(lo.bv), kvd)
                }
            } else {
                decodeLinearForward(st.q, st.ln, weight(lo.wq), opt(lo.bq), n: bsz, c: c, oc: qd, workers: cw)
                decodeLinearForward(st.k, st.ln, weight(lo.wk), opt(lo.bk), n: bsz, c: c, oc: kvd, workers: cw)
                decodeLinearForward(st.v, st.ln, weight(lo.wv), opt(lo.bv), n: bsz, c: c, oc: kvd, workers: cw)
            }
            adapt(li, .q, st.q, st.ln); adapt(li, .k, st.k, st.ln); adapt(li, .v, st.v, st.ln)
            ropeForward(st.q, st.positions, rope, n: bsz, nHeads: nh)
            ropeForward(st.k, st.positions, rope, n: bsz, nHeads: nkv)
            for (b, s) in slots.enumerated() {
                let p = Int(st.positions[b])
                cache.kRow(li, s, p).update(from: st.k + b * kvd, count: kvd)
                cache.vRow(li, s, p).update(from: st.v + b * kvd, count: kvd)
            }
            let ptrs = DecodePointers(q: st.q, att: st.att, scores: st.scores)
            let cap = cache.capacity
            let body: (Int) -> Void = { wi in
                let sc = ptrs.scores + wi * group * cap
                // Contiguous sequences per worker (a group's completions are adjacent, so their shared prompt
                // rows stay in this core's L2), split where the attention work (∝ length) is balanced.
                for b in split[wi]..<split[wi + 1] {
                    let s = slots[b], len = Int(st.positions[b]) + 1
                    // The slot's rows: its root's 0..<pre (a forked prompt, by reference), then its own pre..<len.
                    let root = cache.prefixSlot[s], pre = root >= 0 ? cache.prefixLength[s] : 0
                    decodeAttentionForward(ptrs.att + b * qd, ptrs.q + b * qd,
                                           prefixKeys: pre > 0 ? cache.kRow(li, root, 0) : nil,
                                           prefixValues: pre > 0 ? cache.vRow(li, root, 0) : nil, prefixLength: pre,
                                           keys: cache.kRow(li, s, pre), values: cache.vRow(li, s, pre), length: len,
                                           scores: sc, nHeads: nh, nKVHeads: nkv, headDim: hd)
                }
            }
            // (No BLAS inside: the skinny kernels are single-threaded here, so no BLAS thread juggling either.)
            Parallel.run(workers: workers, body)
            decodeLinearForward(st.res, st.att, weight(lo.wo), opt(lo.bo), n: bsz, c: qd, oc: c, workers: cw)
            adapt(li, .o, st.res, st.att)
            addForward(st.res, st.res, st.x, count: bsz * c)
            rmsnormForward(st.ln, st.rstd, st.res, w + lo.postNorm, n: bsz, c: c, eps: eps)
            if lo.fusedGateUp {
                // gate|up rows (B, 2·F) from one product; SwiGLU per row.
                decodeLinearForward(st.gate, st.ln, weight(lo.wGate), nil, n: bsz, c: c, oc: 2 * f, workers: cw)
                adapt(li, .gate, st.gate, st.ln, ld: 2 * f)
                adapt(li, .up, st.gate + f, st.ln, ld: 2 * f)
                for b in 0..<bsz {
                    swigluForward(st.h + b * f, st.gate + b * 2 * f, st.gate + b * 2 * f + f, count: f)
                }
            } else {
                decodeLinearForward(st.gate, st.ln, weight(lo.wGate), nil, n: bsz, c: c, oc: f, workers: cw)
                decodeLinearForward(st.up, st.ln, weight(lo.wUp), nil, n: bsz, c: c, oc: f, workers: cw)
                adapt(li, .gate, st.gate, st.ln); adapt(li, .up, st.up, st.ln)
                swigluForward(st.h, st.gate, st.up, count: bsz * f)
            }
            decodeLinearForward(st.x, st.h, weight(lo.wDown), nil, n: bsz, c: f, oc: c, workers: cw)
            adapt(li, .down, st.x, st.h)
            addForward(st.x, st.x, st.res, count: bsz * c)
        }
        rmsnormForward(st.ln, st.rstd, st.x, w + layout.finalNorm, n: bsz, c: c, eps: eps)
        decodeLinearForward(out, st.ln, weight(layout.lmHead), nil, n: bsz, c: c, oc: cfg.vocabSize, workers: cw)
        for (b, s) in slots.enumerated() { cache.setLength(s, Int(st.positions[b]) + 1) }
    }

    /// Greedy decoding of one prompt (argmax, first index on ties) for `maxNewTokens` tokens or until a token in
    /// `stop`. Uses slot machinery; reserves a one-slot cache when none is reserved, none is free or the reserved
    /// one is too short for this prompt (it used to keep a shorter cache and fail with "slot is full").
    public func greedy(prompt: [Int32], maxNewTokens: Int, stop: Set<Int32> = []) throws -> [Int32] {
        let need = min(prompt.count + maxNewTokens, config.maxPositionEmbeddings)
        if decodeState == nil || decodeState!.cache.freeSlotCount == 0 || decodeState!.cache.capacity < need {
            reserveDecoding(slots: 1, maxSequenceLength: prompt.count + maxNewTokens)
        }
        var logits = [Float](repeating: 0, count: config.vocabSize)
        var out: [Int32] = []
        let slot = try logits.withUnsafeMutableBufferPointer { try prefill(prompt, lastLogits: $0.baseAddress!) }
        defer { release([slot]) }
        for step in 0..<maxNewTokens {
            var best = 0
            for j in 1..<logits.count where logits[j] > logits[best] { best = j }
            let t = Int32(best)
            out.append(t)
            if stop.contains(t) || step == maxNewTokens - 1 { break }
            try logits.withUnsafeMutableBufferPointer { try decode(tokens: [t], slots: [slot], logits: $0.baseAddress!) }
        }
        return out
    }

    func invalidateForBackward() { lastForwardInvalidated() }
}

/// dst[0..<n] = src[0..<n] + bias (bias may be nil): one slice of a fused projection row.
@inline(__always)
private func splitRow(_ dst: UnsafeMutablePointer<Float>, _ src: UnsafePointer<Float>, _ bias: UnsafePointer<Float>?, _ n: Int) {
    dst.update(from: src, count: n)
    if let bias { axpy(dst, alpha: 1, bias, count: n) }
}
