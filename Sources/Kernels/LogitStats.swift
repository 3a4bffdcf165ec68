import Foundation

/// Per-row statistics of logits (N, V): the sampled token's log-probability under temperature, self-certainty
/// (INTUITOR's reward) and entropy (RENT). Every row is shifted by its max before exp, and every sum over V is
/// accumulated in Double (Float lanes widened exactly), so e.g. self-certainty — a tiny difference of two numbers
/// near log V — keeps ~1e-7 absolute accuracy even for near-uniform rows.

/// Sums over one row of d_j = (z_j − shift)·invT: Σ exp(d), Σ exp(d)·d, Σ d (the last two only when asked).
@inline(__always)
func logitRowSums(
    _ z: UnsafePointer<Float>, _ v: Int, shift: Float, invT: Float, wantExpD: Bool, wantD: Bool
) -> (sumExp: Double, sumExpD: Double, sumD: Double) {
    var e0 = SIMD4<Double>(), e1 = SIMD4<Double>()
    var ed0 = SIMD4<Double>(), ed1 = SIMD4<Double>()
    var d0 = SIMD4<Double>(), d1 = SIMD4<Double>()
    let mv = SIMD8<Float>(repeating: shift), tv = SIMD8<Float>(repeating: invT)
    var j = 0
    while j + 8 <= v {
        let d = (load8(z + j) - mv) * tv
        let e = VectorMath.exp(d)
        accumulate(&e0, &e1, e)
        if wantExpD { accumulate(&ed0, &ed1, e * d) }
        if wantD { accumulate(&d0, &d1, d) }
        j += 8
    }
    if j < v {
        let k = v - j
        let keep = SIMD8<Int32>(0, 1, 2, 3, 4, 5, 6, 7) .< SIMD8<Int32>(repeating: Int32(k))
        var d = (loadPartial8(z + j, k, fill: shift) - mv) * tv
        d.replace(with: 0, where: .!keep)
        var e = VectorMath.exp(d)
        e.replace(with: 0, where: .!keep)
        accumulate(&e0, &e1, e)
        if wantExpD { accumulate(&ed0, &ed1, e * d) }
        if wantD { accumulate(&d0, &d1, d) }
    }
    return ((e0 + e1).sum(), (ed0 + ed1).sum(), (d0 + d1).sum())
}

/// Running max-shifted sums of one logits row fed in consecutive pieces (the online logsumexp). Each piece is
/// processed in L1-sized sub-chunks (max of the sub-chunk, then the exp pass while it is still cached); when a
/// sub-chunk raises the running max the Double sums are rescaled (exact identities: S' = S·e^(−δ),
/// Σe·d' = e^(−δ)(Σe·d − δS), Σd' = Σd − δ·count). Feeding a row whole or in pieces whose lengths are multiples
/// of `logitSubChunk` gives bitwise the same sums (same sub-chunk boundaries), which is what lets the fused LM head
/// (`lmHeadForward`, vocabulary chunks of 2048·k columns) reproduce the materialised-logits statistics exactly.
struct LogitRowState {
    var max = -Float.infinity
    var sumExp = 0.0, sumExpD = 0.0, sumD = 0.0
    /// Elements consumed so far.
    var count = 0

    @inline(__always)
    mutating func add(_ z: UnsafePointer<Float>, _ len: Int, invT: Float, wantExpD: Bool, wantD: Bool) {
        var c0 = 0
        while c0 < len {
            let l = min(logitSubChunk, len - c0)
            let cm = maxOf(z + c0, l)
            if cm > max {
                if count > 0 {
                    let delta = Double(cm - max) * Double(invT)
                    let f = Foundation.exp(-delta)
                    if wantExpD { sumExpD = f * (sumExpD - delta * sumExp) }
                    if wantD { sumD -= delta * Double(count) }
                    sumExp *= f
                }
                max = cm
            }
            let s = logitRowSums(z + c0, l, shift: max, invT: invT, wantExpD: wantExpD, wantD: wantD)
            sumExp += s.sumExp; sumExpD += s.sumExpD; sumD += s.sumD
            c0 += l
            count += l
        }
    }
}

/// Sub-chunk of `LogitRowState.add`: 2048 floats = 8 KB, stays in L1 between the max and the exp pass.
let logitSubChunk = 2048

/// Max-shifted sums over a whole row in ONE pass over memory (see `LogitRowState`).
/// Returns the row max and the sums relative to it, as `logitRowSums` with shift = max would.
@inline(__always)
func logitRowStats(
    _ z: UnsafePointer<Float>, _ v: Int, invT: Float, wantExpD: Bool, wantD: Bool
) -> (max: Float, sumExp: Double, sumExpD: Double, sumD: Double) {
    var st = LogitRowState()
    st.add(z, v, invT: invT, wantExpD: wantExpD, wantD: wantD)
    return (st.max, st.sumExp, st.sumExpD, st.sumD)
}

/// Rough cost of one exp-pass element, for the parallel threshold.
let logitElementCost = 12

/// logp[i] = z[i, target]/T − logsumexp(z[i]/T); lse[i] = logsumexp(z[i]/T) is saved for backward.
/// Targets must be in 0..<V (checked). `temperature` must be > 0.
public func tokenLogprobForward(
    _ logp: UnsafeMutablePointer<Float>,     // (N)
    _ lse: UnsafeMutablePointer<Float>,      // (N) saved: logsumexp(z/T)
    _ logits: UnsafePointer<Float>,          // (N, V)
    _ targets: UnsafePointer<Int32>,         // (N)
    n: Int, v: Int, temperature: Float
) {
    precondition(temperature > 0, "tokenLogprobForward: temperature \(temperature) must be > 0")
    for i in 0..<n {
        precondition(targets[i] >= 0 && Int(targets[i]) < v,
                     "tokenLogprobForward: target \(targets[i]) at row \(i) not in 0..<\(v)")
    }
    let invT = 1 / temperature
    Parallel.forRanges(count: n, work: n * v * logitElementCost) { rows in
        for i in rows {
            let z = logits + i * v
            let s = logitRowStats(z, v, invT: invT, wantExpD: false, wantD: false)
            let m = s.max
            let logS = Foundation.log(s.sumExp)
            let zt = Double((z[Int(targets[i])] - m) * invT)
            logp[i] = Float(zt - logS)
            lse[i] = Float(Double(m * invT) + logS)
        }
    }
}

/// dLogits[i, j] += dLogp[i] · (1[j = target] − softmax(z[i]/T)_j) / T.
public func tokenLogprobBackward(
    _ dLogits: UnsafeMutablePointer<Float>,  // (N, V) accumulate
    _ dLogp: UnsafePointer<Float>,           // (N)
    _ logits: UnsafePointer<Float>,          // (N, V)
    _ lse: UnsafePointer<Float>,             // (N) from forward
    _ targets: UnsafePointer<Int32>,         // (N)
    n: Int, v: Int, temperature: Float
) {
    precondition(temperature > 0, "tokenLogprobBackward: temperature \(temperature) must be > 0")
    let invT = 1 / temperature
    Parallel.forRanges(count: n, work: n * v * logitElementCost) { rows in
        for i in rows {
            let g = dLogp[i]
            if g == 0 { continue }
            let t = Int(targets[i])
            precondition(t >= 0 && t < v, "tokenLogprobBackward: target \(t) at row \(i) not in 0..<\(v)")
            softmaxGradRow(dLogits + i * v, logits + i * v, v, invT: invT, lse: lse[i], coef: -g * invT)
            dLogits[i * v + t] += g * invT
        }
    }
}

/// dz[j] += coef · exp(z[j]·invT − lse)  (the softmax part of a log-softmax gradient).
@inline(__always)
func softmaxGradRow(_ dz: UnsafeMutablePointer<Float>, _ z: UnsafePointer<Float>, _ v: Int,
                    invT: Float, lse: Float, coef: Float) {
    let tv = SIMD8<Float>(repeating: invT), nl = SIMD8<Float>(repeating: -lse), cv = SIMD8<Float>(repeating: coef)
    var j = 0
    while j + 8 <= v {
        // fma: z·invT − lse rounds once.
        let p = VectorMath.exp(nl.addingProduct(load8(z + j), tv))
        store8(dz + j, load8(dz + j).addingProduct(cv, p))
        j += 8
    }
    if j < v {
        let k = v - j
        let p = VectorMath.exp(nl.addingProduct(loadPartial8(z + j, k, fill: 0), tv))
        storePartial8(dz + j, loadPartial8(dz + j, k, fill: 0).addingProduct(cv, p), k)
    }
}

/// Self-certainty of raw logits (no temperature): KL(Uniform ‖ softmax(z)) = logsumexp(z) − mean(z) − log V.
public func selfCertaintyForward(
    _ out: UnsafeMutablePointer<Float>,      // (N)
    _ logits: UnsafePointer<Float>,          // (N, V)
    n: Int, v: Int
) {
    Parallel.forRanges(count: n, work: n * v * logitElementCost) { rows in
        for i in rows {
            let z = logits + i * v
            let s = logitRowStats(z, v, invT: 1, wantExpD: false, wantD: true)
            // lse − mean = log Σe^d − Σd/V (the shift cancels); subtracting log V inside the log keeps it small.
            out[i] = Float(Foundation.log(s.sumExp / Double(v)) - s.sumD / Double(v))
        }
    }
}

/// Entropy of softmax(z): −Σ p log p = logsumexp(z) − Σ p·z = log S − Σ e^d·d / S with d = z − max.
public func entropyForward(
    _ out: UnsafeMutablePointer<Float>,      // (N)
    _ logits: UnsafePointer<Float>,          // (N, V)
    n: Int, v: Int
) {
    Parallel.forRanges(count: n, work: n * v * logitElementCost) { rows in
        for i in rows {
            let z = logits + i * v
            let s = logitRowStats(z, v, invT: 1, wantExpD: true, wantD: false)
            out[i] = Float(Foundation.log(s.sumExp) - s.sumExpD / s.sumExp)
        }
    }
}
