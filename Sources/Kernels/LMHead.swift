import Foundation

/// The LM head fused with what is computed from its logits, over vocabulary chunks: z = h·Wᵀ (R, V) is never
/// materialised. Each chunk of columns [v0, v0 + chunk) is one GEMM into a scratch (R, chunk), folded into per-row
/// running statistics (`LogitRowState`, the online logsumexp) and dropped; the backward recomputes each chunk's
/// logits, turns them into dLogits in place and accumulates dh and dW chunk by chunk. Memory: O(R · chunk) instead
/// of two (R, V) buffers (logits and dLogits: 2 × 311 MB for 512 rows of Qwen2.5's 151,936-token vocabulary).
/// Cost: the backward's extra GEMM (the chunk's logits again), +1/3 of the head's FLOPs — unless the caller can
/// afford (R, V) floats of scratch: with `keep` every chunk's logits stay in the scratch for the backward (still no
/// separate dLogits buffer: they become dLogits in place), which costs the materialised path's logits memory and
/// saves the recompute.
///
/// Per row (z = untempered logits, T = temperature, t = target):
///   logp = z_t/T − logsumexp(z/T)                      (token log-prob at T; cross-entropy = −logp at T = 1)
///   selfCertainty = logsumexp(z) − mean(z) − log V     (INTUITOR's reward, raw logits)
///   entropy = −Σ softmax(z)·log softmax(z)             (raw logits)
/// with the same max-shifted, Double-accumulated sums as the materialised kernels (`tokenLogprobForward`,
/// `selfCertaintyForward`, `entropyForward`, `crossEntropyForward`): when `chunk` is a multiple of 2048 the
/// statistics of a chunk's logits are bitwise those of the whole row (`LogitRowState`), so the fused head differs
/// from the materialised path only where the GEMMs sum in another order.

/// Columns per chunk for `rows` logit rows: at most 2^23 floats (32 MB) of scratch, a multiple of 2048 (bitwise
/// the materialised statistics, see above) when that budget allows, 256 at least, 8192 at most (bigger chunks
/// gain nothing: the GEMMs are already efficient at 2048 columns).
public func lmHeadChunkColumns(rows: Int, vocab: Int) -> Int {
    let budget = (1 << 23) / max(1, rows)
    var cols = min(8192, budget)
    cols = cols >= logitSubChunk ? cols / logitSubChunk * logitSubChunk : max(256, cols / 256 * 256)
    return max(1, min(vocab, cols))
}

/// logp[i] = log softmax(z[i]/T)[targets[i]] (0 where targets[i] = −1), lse[i] = logsumexp(z[i]/T) saved for
/// backward, and optionally the untempered self-certainty and entropy of every row, with z = inp · weightᵀ
/// computed `chunk` columns at a time into `scratch` (with `keep`, chunk [v0, v0 + vc) at scratch + R·v0 as an
/// (R, vc) block, left there for `lmHeadBackward(…, keep: true)`).
public func lmHeadForward(
    _ logp: UnsafeMutablePointer<Float>,            // (R) log-prob of the target at T; 0 where target = −1
    _ lse: UnsafeMutablePointer<Float>,             // (R) saved: logsumexp(z/T)
    _ selfCertainty: UnsafeMutablePointer<Float>?,  // (R) logsumexp(z) − mean(z) − log V, or nil
    _ entropy: UnsafeMutablePointer<Float>?,        // (R) entropy of softmax(z), or nil
    _ scratch: UnsafeMutablePointer<Float>,         // (R, chunk) one chunk's logits; (R·V) with keep
    _ inp: UnsafePointer<Float>,                    // (R, C) final-norm hidden rows
    _ weight: UnsafePointer<Float>,                 // (V, C) lm_head weight (the embedding when tied)
    _ targets: UnsafePointer<Int32>,                // (R) in −1..<V, −1 = no target
    n: Int, c: Int, v: Int, chunk: Int, temperature: Float, keep: Bool = false
) {
    lmHeadForward(logp, lse, selfCertainty, entropy, scratch, inp, .f32(weight), targets,
                  n: n, c: c, v: v, chunk: chunk, temperature: temperature, keep: keep)
}

/// `lmHeadForward` with the head weight as a `WeightMatrix` (a BF16 head is widened panel by panel inside each
/// chunk's GEMM; the per-chunk statistics are unchanged).
public func lmHeadForward(
    _ logp: UnsafeMutablePointer<Float>,            // (R)
    _ lse: UnsafeMutablePointer<Float>,             // (R)
    _ selfCertainty: UnsafeMutablePointer<Float>?,  // (R) or nil
    _ entropy: UnsafeMutablePointer<Float>?,        // (R) or nil
    _ scratch: UnsafeMutablePointer<Float>,         // (R, chunk); (R·V) with keep
    _ inp: UnsafePointer<Float>,                    // (R, C)
    _ weight: WeightMatrix,                         // (V, C)
    _ targets: UnsafePointer<Int32>,                // (R) in −1..<V
    n: Int, c: Int, v: Int, chunk: Int, temperature: Float, keep: Bool = false
) {
    precondition(temperature > 0, "lmHeadForward: temperature \(temperature) must be > 0")
    precondition(chunk > 0 && v > 0, "lmHeadForward: chunk \(chunk) and vocabulary \(v) must be > 0")
    for i in 0..<n {
        precondition(targets[i] >= -1 && Int(targets[i]) < v,
                     "lmHeadForward: target \(targets[i]) at row \(i) not in -1..<\(v)")
    }
    if n == 0 { return }
    let invT = 1 / temperature
    // Tempered sums for logp; untempered ones (with Σd for self-certainty, Σe·d for entropy) only when asked and
    // T ≠ 1 — at T = 1 the tempered state carries them (the extra sums do not change Σe).
    let wantSC = selfCertainty != nil, wantEnt = entropy != nil
    let separate = (wantSC || wantEnt) && invT != 1
    var tempered = [LogitRowState](repeating: LogitRowState(), count: n)
    var raw = [LogitRowState](repeating: LogitRowState(), count: separate ? n : 0)
    var zt = [Float](repeating: 0, count: n)   // the target's logit, caught in its chunk
    tempered.withUnsafeMutableBufferPointer { tp in
        raw.withUnsafeMutableBufferPointer { rp in
            zt.withUnsafeMutableBufferPointer { ztp in
                var v0 = 0
                while v0 < v {
                    let vc = min(chunk, v - v0)
                    let zc = keep ? scratch + n * v0 : scratch
                    // (R, vc) = (R, C) · (vc, C)ᵀ
                    Gemm.sgemm(zc, ldc: vc, inp, lda: c, weight.advanced(by: v0 * c), ldb: c, m: n, n: vc, k: c, transB: true)
                    let passes = 1 + (separate ? 1 : 0)
                    Parallel.forRanges(count: n, work: n * vc * logitElementCost * passes) { rows in
                        for i in rows {
                            let z = UnsafePointer(zc + i * vc)
                            tp[i].add(z, vc, invT: invT, wantExpD: wantEnt && !separate, wantD: wantSC && !separate)
                            if separate { rp[i].add(z, vc, invT: 1, wantExpD: wantEnt, wantD: wantSC) }
                            let t = Int(targets[i]) - v0
                            if t >= 0 && t < vc { ztp[i] = z[t] }
                        }
                    }
                    v0 += vc
                }
            }
        }
    }
    let vd = Double(v)
    for i in 0..<n {
        let s = tempered[i]
        let logS = Foundation.log(s.sumExp)
        lse[i] = Float(Double(s.max * invT) + logS)
        logp[i] = targets[i] < 0 ? 0 : Float(Double((zt[i] - s.max) * invT) - logS)
        let r = separate ? raw[i] : s
        // lse − mean = log Σe^d − Σd/V (the shift cancels); subtracting log V inside the log keeps it small.
        if let selfCertainty { selfCertainty[i] = Float(Foundation.log(r.sumExp / vd) - r.sumD / vd) }
        if let entropy { entropy[i] = Float(Foundation.log(r.sumExp) - r.sumExpD / r.sumExp) }
    }
}

/// Accumulates the gradient of a loss whose gradient w.r.t. `lmHeadForward`'s logp is dLogp:
/// dz[i, j] = dLogp[i] · (1[j = target] − softmax(z[i]/T)_j) / T, recomputed chunk by chunk (rows with
/// dLogp = 0 or target −1 contribute nothing), then dInp += dz · W and dWeight += dzᵀ · inp per chunk.
/// Either gradient may be nil (skipped). Cross-entropy: pass dLogp = −dLoss at T = 1. With `keep` the logits are
/// the forward's (it must have run with `keep` on this scratch) and are not recomputed; they are overwritten.
public func lmHeadBackward(
    _ dInp: UnsafeMutablePointer<Float>?,           // (R, C) accumulate
    _ dWeight: UnsafeMutablePointer<Float>?,        // (V, C) accumulate (the embedding's gradient when tied)
    _ scratch: UnsafeMutablePointer<Float>,         // (R, chunk) one chunk's logits, then its dLogits; (R·V) with keep
    _ dLogp: UnsafePointer<Float>,                  // (R)
    _ inp: UnsafePointer<Float>,                    // (R, C)
    _ weight: UnsafePointer<Float>,                 // (V, C)
    _ lse: UnsafePointer<Float>,                    // (R) from forward
    _ targets: UnsafePointer<Int32>,                // (R) in −1..<V
    n: Int, c: Int, v: Int, chunk: Int, temperature: Float, keep: Bool = false
) {
    lmHeadBackward(dInp, dWeight, scratch, dLogp, inp, .f32(weight), lse, targets,
                   n: n, c: c, v: v, chunk: chunk, temperature: temperature, keep: keep)
}

/// `lmHeadBackward` with the head weight as a `WeightMatrix`; `dWeight` must be nil for a BF16 (frozen) head.
public func lmHeadBackward(
    _ dInp: UnsafeMutablePointer<Float>?,           // (R, C) accumulate
    _ dWeight: UnsafeMutablePointer<Float>?,        // (V, C) accumulate; nil for BF16
    _ scratch: UnsafeMutablePointer<Float>,         // (R, chunk); (R·V) with keep
    _ dLogp: UnsafePointer<Float>,                  // (R)
    _ inp: UnsafePointer<Float>,                    // (R, C)
    _ weight: WeightMatrix,                         // (V, C)
    _ lse: UnsafePointer<Float>,                    // (R)
    _ targets: UnsafePointer<Int32>,                // (R) in −1..<V
    n: Int, c: Int, v: Int, chunk: Int, temperature: Float, keep: Bool = false
) {
    if case .bf16 = weight { precondition(dWeight == nil, "lmHeadBackward: a BF16 head weight is frozen (dWeight must be nil)") }
    precondition(temperature > 0, "lmHeadBackward: temperature \(temperature) must be > 0")
    precondition(chunk > 0, "lmHeadBackward: chunk \(chunk) must be > 0")
    for i in 0..<n {
        precondition(targets[i] >= -1 && Int(targets[i]) < v,
                     "lmHeadBackward: target \(targets[i]) at row \(i) not in -1..<\(v)")
    }
    if n == 0 || (dInp == nil && dWeight == nil) { return }
    if !(0..<n).contains(where: { dLogp[$0] != 0 && targets[$0] >= 0 }) { return }
    let invT = 1 / temperature
    var v0 = 0
    while v0 < v {
        let vc = min(chunk, v - v0)
        let w = weight.advanced(by: v0 * c)
        let zc = keep ? scratch + n * v0 : scratch
        // (R, vc) = (R, C) · (vc, C)ᵀ unless kept, then dLogits of the chunk in place.
        if !keep { Gemm.sgemm(zc, ldc: vc, inp, lda: c, w, ldb: c, m: n, n: vc, k: c, transB: true) }
        Parallel.forRanges(count: n, work: n * vc * logitElementCost) { rows in
            for i in rows {
                let dz = zc + i * vc
                let g = dLogp[i], t = Int(targets[i])
                if g == 0 || t < 0 { dz.update(repeating: 0, count: vc); continue }
                softmaxScaleRow(dz, vc, invT: invT, lse: lse[i], coef: -g * invT)
                if t >= v0 && t < v0 + vc { dz[t - v0] += g * invT }
            }
        }
        if let dInp {
            // (R, C) += (R, vc) · (vc, C)
            Gemm.sgemm(dInp, ldc: c, zc, lda: vc, w, ldb: c, m: n, n: c, k: vc, transB: false, beta: 1)
        }
        if let dWeight {
            // (vc, C) += (R, vc)ᵀ · (R, C)
            Gemm.sgemm(dWeight + v0 * c, zc, inp, m: vc, n: c, k: n, transA: true, beta: 1)
        }
        v0 += vc
    }
}

/// z[j] ← coef · exp(z[j]·invT − lse) in place: the softmax part of a log-softmax gradient, written over the
/// logits it is computed from (bitwise `softmaxGradRow` into a zeroed row).
@inline(__always)
func softmaxScaleRow(_ z: UnsafeMutablePointer<Float>, _ v: Int, invT: Float, lse: Float, coef: Float) {
    let tv = SIMD8<Float>(repeating: invT), nl = SIMD8<Float>(repeating: -lse), cv = SIMD8<Float>(repeating: coef)
    var j = 0
    while j + 8 <= v {
        store8(z + j, cv * VectorMath.exp(nl.addingProduct(load8(z + j), tv)))
        j += 8
    }
    if j < v {
        let k = v - j
        storePartial8(z + j, cv * VectorMath.exp(nl.addingProduct(loadPartial8(z + j, k, fill: 0), tv)), k)
    }
}
