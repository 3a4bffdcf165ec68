import Foundation

/// Causal grouped-query self-attention over packed variable-length sequences (no padding compute).
///
/// Sequence b occupies rows seqStarts[b] ..< seqStarts[b+1] of every (N, …) buffer; token t attends to tokens
/// ≤ t of its own sequence. Query head h reads kv head h / (nHeads / nKVHeads). scale = 1/sqrt(headDim).
///
/// Flash-style memory: forward saves only the per-(row, head) logsumexp `lse`; backward recomputes the
/// probabilities block by block. Scratch is allocated once per call and per worker, never per token:
/// - BLAS path (sequence length T >= `blasMinLength`, default 16: the measured crossover at HD 64):
///   forward `queryBlock · maxT` floats, backward `2 · queryBlock · maxT + queryBlock` floats per worker
///   (maxT = longest sequence).
/// - SIMD path (short sequences): `maxT` floats per worker (one row of scores).
/// `queryBlock` (default 32) bounds the scratch and the wasted upper-triangle work of the diagonal blocks.
/// Work is split over `Parallel.maxWorkers` cores across (sequence, head) pairs in forward and (sequence, kv head)
/// pairs in backward (so each worker owns its dK/dV rows); while split, OpenBLAS runs single-threaded.

/// Checks the packing and returns the longest sequence.
private func checkPacking(_ seqStarts: [Int], nHeads: Int, nKVHeads: Int, headDim: Int) -> Int {
    precondition(nHeads > 0 && nKVHeads > 0 && nHeads % nKVHeads == 0,
                 "attention: nHeads \(nHeads) must be a positive multiple of nKVHeads \(nKVHeads)")
    precondition(headDim > 0, "attention: headDim \(headDim) must be > 0")
    precondition(!seqStarts.isEmpty, "attention: seqStarts must hold B+1 offsets (got none)")
    var maxT = 0
    for b in 0..<(seqStarts.count - 1) {
        let t = seqStarts[b + 1] - seqStarts[b]
        precondition(t >= 0 && seqStarts[b] >= 0, "attention: seqStarts not ascending at \(b): \(seqStarts[b])..\(seqStarts[b + 1])")
        maxT = max(maxT, t)
    }
    return maxT
}

/// Assigns work items to workers greedily, longest first (LPT): deterministic and within 4/3 of optimal.
private func balance(costs: [Int], workers: Int) -> [[Int]] {
    if workers <= 1 { return [Array(costs.indices)] }
    var lists = [[Int]](repeating: [], count: workers)
    var load = [Int](repeating: 0, count: workers)
    for i in costs.indices.sorted(by: { costs[$0] > costs[$1] }) {
        let w = load.indices.min(by: { load[$0] < load[$1] })!
        lists[w].append(i)
        load[w] += costs[i]
    }
    return lists
}

/// Runs `body(worker, items)` on the LPT partition, with OpenBLAS single-threaded while more than one worker runs.
private func runBalanced(costs: [Int], _ body: (Int, [Int]) -> Void) {
    // Costs are in flops; these run at ~4 flops per `Parallel` work unit (which is calibrated on simple loops).
    let total = costs.reduce(0, +) / 4
    let workers = Parallel.workers(work: total, items: costs.count)
    let lists = balance(costs: costs, workers: workers)
    if workers == 1 { body(0, lists[0]); return }
    Gemm.withSingleThreadedBLAS {
        Parallel.run(workers: workers) { w in body(w, lists[w]) }
    }
}

/// out[i, h] = Σ_{j ≤ i} softmax_j(q_i·k_j·scale) v_j;  lse[i, h] = logsumexp_j(q_i·k_j·scale) (saved).
public func attentionForward(
    _ out: UnsafeMutablePointer<Float>,      // (N, NH, HD)
    _ lse: UnsafeMutablePointer<Float>,      // (N, NH) saved
    _ q: UnsafePointer<Float>,               // (N, NH, HD)
    _ k: UnsafePointer<Float>,               // (N, NKV, HD)
    _ v: UnsafePointer<Float>,               // (N, NKV, HD)
    seqStarts: [Int],                        // (B+1)
    nHeads: Int, nKVHeads: Int, headDim: Int,
    blasMinLength: Int = 16, queryBlock: Int = 32
) {
    let maxT = checkPacking(seqStarts, nHeads: nHeads, nKVHeads: nKVHeads, headDim: headDim)
    let nSeq = seqStarts.count - 1
    if nSeq == 0 || maxT == 0 { return }
    let hd = headDim, qs = nHeads * hd, kvs = nKVHeads * hd, group = nHeads / nKVHeads
    let scale = Float(1 / Double(hd).squareRoot())
    let qb = max(1, queryBlock)
    var costs = [Int](repeating: 0, count: nSeq * nHeads)
    for b in 0..<nSeq { let t = seqStarts[b + 1] - seqStarts[b]; for h in 0..<nHeads { costs[b * nHeads + h] = 2 * t * t * hd + 20 * t * t } }
    runBalanced(costs: costs) { _, items in
        let scratch = UnsafeMutablePointer<Float>.allocate(capacity: qb * maxT)
        defer { scratch.deallocate() }
        for item in items {
            let b = item / nHeads, h = item % nHeads, g = h / group
            let s0 = seqStarts[b], t = seqStarts[b + 1] - s0
            if t == 0 { continue }
            let qh = q + s0 * qs + h * hd, kh = k + s0 * kvs + g * hd, vh = v + s0 * kvs + g * hd
            let oh = out + s0 * qs + h * hd, lh = lse + s0 * nHeads + h
            if t >= blasMinLength {
                var i0 = 0
                while i0 < t {
                    let i1 = min(t, i0 + qb), rows = i1 - i0, cols = i1
                    // S (rows, cols) = scale · Q[i0..<i1] · K[0..<i1]ᵀ
                    Gemm.sgemm(scratch, ldc: cols, qh + i0 * qs, lda: qs, kh, ldb: kvs,
                               m: rows, n: cols, k: hd, transB: true, alpha: scale)
                    for r in 0..<rows {
                        let row = scratch + r * cols, valid = i0 + r + 1
                        lh[(i0 + r) * nHeads] = softmaxInPlace(row, valid)
                        (row + valid).update(repeating: 0, count: cols - valid)   // causal mask
                    }
                    // O[i0..<i1] = P · V[0..<i1]
                    gemmChunkedK(oh + i0 * qs, ldc: qs, scratch, lda: cols, vh, ldb: kvs,
                                 m: rows, n: hd, k: cols, beta: 0)
                    i0 = i1
                }
            } else {
                for i in 0..<t {
                    let qi = qh + i * qs, oi = oh + i * qs
                    for j in 0...i { scratch[j] = dot(qi, kh + j * kvs, hd) * scale }
                    lh[i * nHeads] = softmaxInPlace(scratch, i + 1)
                    oi.update(repeating: 0, count: hd)
                    for j in 0...i { axpy(oi, scratch[j], vh + j * kvs, hd) }
                }
            }
        }
    }
}

/// C (M, N) = A (M, K) · B (K, N) + beta·C with K split into chunks of <= 128 (accumulating).
/// OpenBLAS is 2-3x slower on these small shapes once K exceeds ~200 (measured 11 vs 31 GFLOP/s for
/// 32x64x256 vs 32x64x128), and K here is the number of keys.
@inline(__always)
private func gemmChunkedK(
    _ c: UnsafeMutablePointer<Float>, ldc: Int, _ a: UnsafePointer<Float>, lda: Int,
    _ b: UnsafePointer<Float>, ldb: Int, m: Int, n: Int, k: Int, beta: Float
) {
    var k0 = 0, bt = beta
    repeat {
        let kc = min(128, k - k0)
        Gemm.sgemm(c, ldc: ldc, a + k0, lda: lda, b + k0 * ldb, ldb: ldb, m: m, n: n, k: kc, beta: bt)
        bt = 1
        k0 += kc
    } while k0 < k
}

/// row[0..<n] ← softmax(row) in place (max-subtracted); returns logsumexp of the original row. The training
/// attention's rows and the decode step's (`decodeAttentionForward`) both go through it.
@inline(__always)
func softmaxInPlace(_ row: UnsafeMutablePointer<Float>, _ n: Int) -> Float {
    let m = maxOf(row, n)
    let mv = SIMD8<Float>(repeating: m)
    var acc = SIMD8<Float>()
    var j = 0
    while j + 8 <= n { let e = VectorMath.exp(load8(row + j) - mv); store8(row + j, e); acc += e; j += 8 }
    var s = acc.sum()
    while j < n { let e = VectorMath.exp(row[j] - m); row[j] = e; s += e; j += 1 }
    let inv = 1 / s
    let iv = SIMD8<Float>(repeating: inv)
    j = 0
    while j + 8 <= n { store8(row + j, load8(row + j) * iv); j += 8 }
    while j < n { row[j] *= inv; j += 1 }
    return m + Foundation.log(s)
}

/// row[0..<n] ← exp(row − lse) (probabilities recomputed from the saved logsumexp).
@inline(__always)
private func expShifted(_ row: UnsafeMutablePointer<Float>, _ n: Int, _ lse: Float) {
    let lv = SIMD8<Float>(repeating: lse)
    var j = 0
    while j + 8 <= n { store8(row + j, VectorMath.exp(load8(row + j) - lv)); j += 8 }
    if j < n { storePartial8(row + j, VectorMath.exp(loadPartial8(row + j, n - j, fill: 0) - lv), n - j) }
}

/// Accumulates dQ, dK, dV (+=) given dOut and the forward's q, k, v, out and lse.
public func attentionBackward(
    _ dQ: UnsafeMutablePointer<Float>,       // (N, NH, HD) accumulate
    _ dK: UnsafeMutablePointer<Float>,       // (N, NKV, HD) accumulate
    _ dV: UnsafeMutablePointer<Float>,       // (N, NKV, HD) accumulate
    _ dOut: UnsafePointer<Float>,            // (N, NH, HD)
    _ q: UnsafePointer<Float>,               // (N, NH, HD)
    _ k: UnsafePointer<Float>,               // (N, NKV, HD)
    _ v: UnsafePointer<Float>,               // (N, NKV, HD)
    _ out: UnsafePointer<Float>,             // (N, NH, HD) from forward
    _ lse: UnsafePointer<Float>,             // (N, NH) from forward
    seqStarts: [Int],                        // (B+1)
    nHeads: Int, nKVHeads: Int, headDim: Int,
    blasMinLength: Int = 16, queryBlock: Int = 32
) {
    let maxT = checkPacking(seqStarts, nHeads: nHeads, nKVHeads: nKVHeads, headDim: headDim)
    let nSeq = seqStarts.count - 1
    if nSeq == 0 || maxT == 0 { return }
    let hd = headDim, qs = nHeads * hd, kvs = nKVHeads * hd, group = nHeads / nKVHeads
    let scale = Float(1 / Double(hd).squareRoot())
    let qb = max(1, queryBlock)
    var costs = [Int](repeating: 0, count: nSeq * nKVHeads)
    for b in 0..<nSeq {
        let t = seqStarts[b + 1] - seqStarts[b]
        for g in 0..<nKVHeads { costs[b * nKVHeads + g] = group * (5 * t * t * hd + 30 * t * t) }
    }
    runBalanced(costs: costs) { _, items in
        let pBuf = UnsafeMutablePointer<Float>.allocate(capacity: qb * maxT)
        let dpBuf = UnsafeMutablePointer<Float>.allocate(capacity: qb * maxT)
        let dBuf = UnsafeMutablePointer<Float>.allocate(capacity: qb)
        defer { pBuf.deallocate(); dpBuf.deallocate(); dBuf.deallocate() }
        for item in items {
            let b = item / nKVHeads, g = item % nKVHeads
            let s0 = seqStarts[b], t = seqStarts[b + 1] - s0
            if t == 0 { continue }
            let kh = k + s0 * kvs + g * hd, vh = v + s0 * kvs + g * hd
            let dkh = dK + s0 * kvs + g * hd, dvh = dV + s0 * kvs + g * hd
            for h in (g * group)..<((g + 1) * group) {
                let qh = q + s0 * qs + h * hd, oh = out + s0 * qs + h * hd, doh = dOut + s0 * qs + h * hd
                let dqh = dQ + s0 * qs + h * hd, lh = lse + s0 * nHeads + h
                if t >= blasMinLength {
                    var i0 = 0
                    while i0 < t {
                        let i1 = min(t, i0 + qb), rows = i1 - i0, cols = i1
                        // P (rows, cols) = exp(scale · Q Kᵀ − lse), causal entries zeroed.
                        Gemm.sgemm(pBuf, ldc: cols, qh + i0 * qs, lda: qs, kh, ldb: kvs,
                                   m: rows, n: cols, k: hd, transB: true, alpha: scale)
                        for r in 0..<rows {
                            let row = pBuf + r * cols, valid = i0 + r + 1
                            expShifted(row, valid, lh[(i0 + r) * nHeads])
                            (row + valid).update(repeating: 0, count: cols - valid)
                            dBuf[r] = dot(doh + (i0 + r) * qs, oh + (i0 + r) * qs, hd)
                        }
                        // dV[0..<cols] += Pᵀ · dO[i0..<i1]
                        Gemm.sgemm(dvh, ldc: kvs, pBuf, lda: cols, doh + i0 * qs, ldb: qs,
                                   m: cols, n: hd, k: rows, transA: true, beta: 1)
                        // dP (rows, cols) = dO[i0..<i1] · V[0..<cols]ᵀ
                        Gemm.sgemm(dpBuf, ldc: cols, doh + i0 * qs, lda: qs, vh, ldb: kvs,
                                   m: rows, n: cols, k: hd, transB: true)
                        // dS = P ∘ (dP − D) · scale  (masked entries have P = 0)
                        for r in 0..<rows {
                            let p = pBuf + r * cols, dp = dpBuf + r * cols
                            let dv = SIMD8<Float>(repeating: dBuf[r]), sv = SIMD8<Float>(repeating: scale)
                            let valid = i0 + r + 1
                            var j = 0
                            while j + 8 <= valid { store8(dp + j, load8(p + j) * (load8(dp + j) - dv) * sv); j += 8 }
                            while j < valid { dp[j] = p[j] * (dp[j] - dBuf[r]) * scale; j += 1 }
                            (dp + valid).update(repeating: 0, count: cols - valid)
                        }
                        // dQ[i0..<i1] += dS · K[0..<cols];  dK[0..<cols] += dSᵀ · Q[i0..<i1]
                        gemmChunkedK(dqh + i0 * qs, ldc: qs, dpBuf, lda: cols, kh, ldb: kvs,
                                     m: rows, n: hd, k: cols, beta: 1)
                        Gemm.sgemm(dkh, ldc: kvs, dpBuf, lda: cols, qh + i0 * qs, ldb: qs,
                                   m: cols, n: hd, k: rows, transA: true, beta: 1)
                        i0 = i1
                    }
                } else {
                    let p = pBuf
                    for i in 0..<t {
                        let qi = qh + i * qs, doi = doh + i * qs, dqi = dqh + i * qs
                        let li = lh[i * nHeads]
                        for j in 0...i { p[j] = dot(qi, kh + j * kvs, hd) * scale }
                        expShifted(p, i + 1, li)
                        let di = dot(doi, oh + i * qs, hd)
                        for j in 0...i {
                            let ds = p[j] * (dot(doi, vh + j * kvs, hd) - di) * scale
                            axpy(dqi, ds, kh + j * kvs, hd)
                            axpy(dkh + j * kvs, ds, qi, hd)
                            axpy(dvh + j * kvs, p[j], doi, hd)
                        }
                    }
                }
            }
        }
    }
}
