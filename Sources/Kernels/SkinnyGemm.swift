/// C = A · Wᵀ for few rows of A (the decode step's M = batch rows) with the weight in nn.Linear's (N, K) layout.
///
/// Why not BLAS: for M ≤ 32 OpenBLAS re-packs all of W on every call (`sgemm_incopy`, ~27% of a 16-sequence
/// decode step in a perf profile) and then runs a kernel tuned for large M; on the 2-core Zen3 box it reaches
/// ~47 GFLOP/s at M = 16 with 2 threads. Here every output is a length-K dot product computed straight from the
/// rows of A and W, both contiguous in K, so nothing is packed: a register tile holds 4 rows of A × 3 rows of W
/// (12 SIMD8 accumulators + 3 weight vectors + 1 row vector = 16 ymm registers), and per 8 values of K it does
/// 7 loads and 12 FMAs. The 3 weight rows of a tile stay in L1 while all M rows pass over them, so W is read
/// from memory once per call. The N columns are split over the cores when the call is big enough.
import CKernelSupport
import Foundation

extension Gemm {
    /// Largest M that `sgemm` (and the decode step) sends to the skinny kernel (when B is transposed and beta is 0
    /// or 1). Above it the BLAS packing cost is amortised and OpenBLAS's large-M kernel wins. `RLIF_SKINNY_MAX_ROWS=1`
    /// sends the linear layers to OpenBLAS (A/B comparisons; decode attention keeps its own small kernels); set once
    /// at startup (not synchronised).
    nonisolated(unsafe) public static var skinnyMaxRows: Int =
        Int(ProcessInfo.processInfo.environment["RLIF_SKINNY_MAX_ROWS"] ?? "") ?? 32

    /// Work (M·N·K multiply-adds) from which the skinny kernel splits its columns over the cores.
    @usableFromInline static let skinnySplitWork = 1 << 19

    /// C (M, N) (row stride ldc) = alpha · A (M, K) (row stride lda) · W (N, K)ᵀ (row stride ldw) + beta · C,
    /// beta 0 (C is not read) or 1 (accumulate).
    /// Splits N over `Parallel.maxWorkers` when OpenBLAS itself would be multi-threaded (so callers inside
    /// `withSingleThreadedBLAS`, which split their own work, stay single-threaded here too) and the call is big
    /// enough; `workers` overrides that choice (tests use it to exercise the split at any size).
    public static func skinnyTransB(
        _ c: UnsafeMutablePointer<Float>, ldc: Int,     // (M, N)
        _ a: UnsafePointer<Float>, lda: Int,            // (M, K)
        _ w: UnsafePointer<Float>, ldw: Int,            // (N, K)
        m: Int, n: Int, k: Int, alpha: Float = 1, beta: Float = 0, workers requested: Int? = nil
    ) {
        skinnyTransBGeneric(c, ldc: ldc, a, lda: lda, w, ldw: ldw, m: m, n: n, k: k, alpha: alpha, beta: beta,
                            workers: requested)
    }

    /// `skinnyTransB` with W held as BF16 (`w` (N, K) of bfloat16 bit patterns, row stride ldw elements): each
    /// 8-value weight load is 16 bytes widened in registers (zero-extend, shift left 16 = the exact F32 value),
    /// so W's memory traffic — what bounds the decode step — is halved and nothing is converted to a buffer.
    /// Same register tile and summation order as the F32 kernel: for BF16-representable weights the result is
    /// bitwise the F32 kernel's on the widened matrix (SkinnyGemmTests.bf16MatchesF32OnWidenedWeights).
    public static func skinnyTransB(
        _ c: UnsafeMutablePointer<Float>, ldc: Int,     // (M, N)
        _ a: UnsafePointer<Float>, lda: Int,            // (M, K)
        bf16 w: UnsafePointer<UInt16>, ldw: Int,        // (N, K) bfloat16 bits
        m: Int, n: Int, k: Int, alpha: Float = 1, beta: Float = 0, workers requested: Int? = nil
    ) {
        skinnyTransBGeneric(c, ldc: ldc, a, lda: lda, w, ldw: ldw, m: m, n: n, k: k, alpha: alpha, beta: beta,
                            workers: requested)
    }

    @inline(__always)
    private static func skinnyTransBGeneric<W: SkinnyWeight>(
        _ c: UnsafeMutablePointer<Float>, ldc: Int, _ a: UnsafePointer<Float>, lda: Int,
        _ w: UnsafePointer<W>, ldw: Int, m: Int, n: Int, k: Int, alpha: Float, beta: Float, workers requested: Int?
    ) {
        precondition(beta == 0 || beta == 1, "skinnyTransB: beta must be 0 or 1")
        if m == 0 || n == 0 { return }
        let threads = min(Parallel.maxWorkers, activeBLASThreads)
        let automatic = (threads > 1 && m * n * k >= skinnySplitWork && n >= 32 * threads) ? threads : 1
        let workers = max(1, min(requested ?? automatic, (n + 2) / 3))
        if workers == 1 {
            skinnyColumns(c, ldc, a, lda, w, ldw, m, k, 0, n, alpha, beta)
            return
        }
        let p = SkinnyPointers(c: c, a: a, w: w)
        Parallel.run(workers: workers) { wi in
            // Balanced column ranges in multiples of the 3-column tile, so only the last worker has a tail.
            let tiles = (n + 2) / 3
            let lo = min(n, tiles * wi / workers * 3), hi = wi == workers - 1 ? n : min(n, tiles * (wi + 1) / workers * 3)
            if lo < hi { skinnyColumns(p.c, ldc, p.a, lda, p.w, ldw, m, k, lo, hi, alpha, beta) }
        }
    }
}

/// A weight element the skinny kernel reads: Float, or UInt16 holding a bfloat16 (widened exactly on load).
/// Generic so that both variants share one tile code (specialised: no dynamic dispatch in the loops).
protocol SkinnyWeight {
    /// 8 consecutive weights as Float.
    static func load8(_ p: UnsafePointer<Self>) -> SIMD8<Float>
    /// One weight as Float.
    static func float(_ p: UnsafePointer<Self>) -> Float
}

extension Float: SkinnyWeight {
    @inline(__always) static func load8(_ p: UnsafePointer<Float>) -> SIMD8<Float> { Kernels.load8(p) }
    @inline(__always) static func float(_ p: UnsafePointer<Float>) -> Float { p.pointee }
}

extension UInt16: SkinnyWeight {
    @inline(__always) static func load8(_ p: UnsafePointer<UInt16>) -> SIMD8<Float> { loadBF16x8(p) }
    @inline(__always) static func float(_ p: UnsafePointer<UInt16>) -> Float { Float(bitPattern: UInt32(p.pointee) << 16) }
}

/// Raw pointers for the column workers; safe because `Parallel.run` joins before returning and each worker
/// writes a disjoint column range of C.
private struct SkinnyPointers<W>: @unchecked Sendable {
    let c: UnsafeMutablePointer<Float>
    let a: UnsafePointer<Float>
    let w: UnsafePointer<W>
}

/// Columns n0..<n1 of C: 3-column tiles (4-row tiles, then single rows), then single leftover columns.
@inline(__always)
private func skinnyColumns<W: SkinnyWeight>(
    _ c: UnsafeMutablePointer<Float>, _ ldc: Int,
    _ a: UnsafePointer<Float>, _ lda: Int,
    _ w: UnsafePointer<W>, _ ldw: Int,
    _ m: Int, _ k: Int, _ n0: Int, _ n1: Int, _ alpha: Float, _ beta: Float
) {
    var j = n0
    while j + 3 <= n1 {
        let w0 = w + j * ldw
        // The row tiles also prefetch the next column tile's 3 weight rows, spread over the row tiles (row r
        // during tile r when there are ≥ 3), so that their first use does not wait on memory: W is streamed from
        // DRAM once per call. Measured on the small shape's lm_head (M = 16, 2 threads): 51.6 GFLOP/s without,
        // 58.5 all in the first row tile, 65.8 spread; 16-sequence decode 745 → 805 tokens/s.
        let hasNext = j + 6 <= n1
        let rowTiles = m / 4
        var i = 0
        while i + 4 <= m {
            let t = i / 4
            let r0 = hasNext ? (3 * t + rowTiles - 1) / rowTiles : 3, r1 = hasNext ? (3 * (t + 1) + rowTiles - 1) / rowTiles : 3
            tile4x3(c + i * ldc + j, ldc, a + i * lda, lda, w0, ldw, k, alpha, beta,
                    prefetch: w0 + (3 + min(r0, 3)) * ldw, prefetchRows: max(0, min(r1, 3) - min(r0, 3)))
            i += 4
        }
        while i < m {
            tile1x3(c + i * ldc + j, a + i * lda, w0, ldw, k, alpha, beta)
            i += 1
        }
        j += 3
    }
    while j < n1 {
        for i in 0..<m {
            let s = dotWeights(a + i * lda, w + j * ldw, k)
            store(c + i * ldc + j, s, alpha, beta)
        }
        j += 1
    }
}

@inline(__always)
private func store(_ p: UnsafeMutablePointer<Float>, _ s: Float, _ alpha: Float, _ beta: Float) {
    p.pointee = beta == 0 ? alpha * s : p.pointee + alpha * s
}

/// C[0..<4, 0..<3] (row stride ldc) from rows a[0..<4] (stride lda) and weight rows w[0..<3] (stride ldw).
@inline(__always)
private func tile4x3<W: SkinnyWeight>(
    _ c: UnsafeMutablePointer<Float>, _ ldc: Int,
    _ a: UnsafePointer<Float>, _ lda: Int,
    _ w: UnsafePointer<W>, _ ldw: Int,
    _ k: Int, _ alpha: Float, _ beta: Float, prefetch next: UnsafePointer<W>, prefetchRows: Int
) {
    let a0 = a, a1 = a + lda, a2 = a + 2 * lda, a3 = a + 3 * lda
    let w0 = w, w1 = w + ldw, w2 = w + 2 * ldw
    var c00 = SIMD8<Float>(), c01 = SIMD8<Float>(), c02 = SIMD8<Float>()
    var c10 = SIMD8<Float>(), c11 = SIMD8<Float>(), c12 = SIMD8<Float>()
    var c20 = SIMD8<Float>(), c21 = SIMD8<Float>(), c22 = SIMD8<Float>()
    var c30 = SIMD8<Float>(), c31 = SIMD8<Float>(), c32 = SIMD8<Float>()
    @inline(__always) func step(_ p: Int) {
        let b0 = W.load8(w0 + p), b1 = W.load8(w1 + p), b2 = W.load8(w2 + p)
        var x = load8(a0 + p)
        c00 = c00.addingProduct(x, b0); c01 = c01.addingProduct(x, b1); c02 = c02.addingProduct(x, b2)
        x = load8(a1 + p)
        c10 = c10.addingProduct(x, b0); c11 = c11.addingProduct(x, b1); c12 = c12.addingProduct(x, b2)
        x = load8(a2 + p)
        c20 = c20.addingProduct(x, b0); c21 = c21.addingProduct(x, b1); c22 = c22.addingProduct(x, b2)
        x = load8(a3 + p)
        c30 = c30.addingProduct(x, b0); c31 = c31.addingProduct(x, b1); c32 = c32.addingProduct(x, b2)
    }
    var p = 0
    if prefetchRows > 0 {
        // 16 weights = one 64-byte line (F32) or half of one (BF16) per prefetched weight row per iteration.
        // (Prefetch is a hint: rows past the end of W are never asked for, since the caller only prefetches a
        // following tile that exists.)
        let n0 = next, n1 = next + ldw, n2 = next + 2 * ldw
        while p + 16 <= k {
            rlif_prefetch(n0 + p)
            if prefetchRows > 1 { rlif_prefetch(n1 + p) }
            if prefetchRows > 2 { rlif_prefetch(n2 + p) }
            step(p); step(p &+ 8)
            p &+= 16
        }
    } else {
        while p + 16 <= k { step(p); step(p &+ 8); p &+= 16 }
    }
    if p + 8 <= k { step(p); p &+= 8 }
    var s = (c00.sum(), c01.sum(), c02.sum(), c10.sum(), c11.sum(), c12.sum(),
             c20.sum(), c21.sum(), c22.sum(), c30.sum(), c31.sum(), c32.sum())
    while p < k {  // K tail (< 8)
        let v0 = W.float(w0 + p), v1 = W.float(w1 + p), v2 = W.float(w2 + p)
        s.0 += a0[p] * v0; s.1 += a0[p] * v1; s.2 += a0[p] * v2
        s.3 += a1[p] * v0; s.4 += a1[p] * v1; s.5 += a1[p] * v2
        s.6 += a2[p] * v0; s.7 += a2[p] * v1; s.8 += a2[p] * v2
        s.9 += a3[p] * v0; s.10 += a3[p] * v1; s.11 += a3[p] * v2
        p += 1
    }
    store(c, s.0, alpha, beta); store(c + 1, s.1, alpha, beta); store(c + 2, s.2, alpha, beta)
    store(c + ldc, s.3, alpha, beta); store(c + ldc + 1, s.4, alpha, beta); store(c + ldc + 2, s.5, alpha, beta)
    let r2 = c + 2 * ldc, r3 = c + 3 * ldc
    store(r2, s.6, alpha, beta); store(r2 + 1, s.7, alpha, beta); store(r2 + 2, s.8, alpha, beta)
    store(r3, s.9, alpha, beta); store(r3 + 1, s.10, alpha, beta); store(r3 + 2, s.11, alpha, beta)
}

/// C[0, 0..<3] from one row of A and weight rows w[0..<3].
@inline(__always)
private func tile1x3<W: SkinnyWeight>(
    _ c: UnsafeMutablePointer<Float>, _ a: UnsafePointer<Float>,
    _ w: UnsafePointer<W>, _ ldw: Int, _ k: Int, _ alpha: Float, _ beta: Float
) {
    let w0 = w, w1 = w + ldw, w2 = w + 2 * ldw
    var c0 = SIMD8<Float>(), c1 = SIMD8<Float>(), c2 = SIMD8<Float>()
    var p = 0
    while p + 8 <= k {
        let x = load8(a + p)
        c0 = c0.addingProduct(x, W.load8(w0 + p))
        c1 = c1.addingProduct(x, W.load8(w1 + p))
        c2 = c2.addingProduct(x, W.load8(w2 + p))
        p += 8
    }
    var s0 = c0.sum(), s1 = c1.sum(), s2 = c2.sum()
    while p < k { s0 += a[p] * W.float(w0 + p); s1 += a[p] * W.float(w1 + p); s2 += a[p] * W.float(w2 + p); p += 1 }
    store(c, s0, alpha, beta); store(c + 1, s1, alpha, beta); store(c + 2, s2, alpha, beta)
}

extension Gemm {
    /// C (M, N) (row stride ldc) = A (M, K) (row stride lda) · B (K, N) (row stride ldb) (`accumulate`: C +=),
    /// small M, no transposes:
    /// the decode step's attention output (query group × head dim = probabilities × cached values).
    /// Register tile: 4 rows × 16 columns (8 accumulators), per k 2 loads of B and 4 broadcasts of A; single-
    /// threaded (its callers split over sequences). OpenBLAS packs both operands for such calls.
    public static func skinnyNN(
        _ c: UnsafeMutablePointer<Float>, ldc: Int,     // (M, N)
        _ a: UnsafePointer<Float>, lda: Int,            // (M, K)
        _ b: UnsafePointer<Float>, ldb: Int,            // (K, N)
        m: Int, n: Int, k: Int, accumulate: Bool = false
    ) {
        /// C row chunk ← acc, or += acc when accumulating.
        @inline(__always) func put(_ p: UnsafeMutablePointer<Float>, _ v: SIMD8<Float>) {
            store8(p, accumulate ? load8(p) + v : v)
        }
        var j = 0
        while j + 16 <= n {
            var i = 0
            while i + 4 <= m {
                let a0 = a + i * lda, a1 = a0 + lda, a2 = a1 + lda, a3 = a2 + lda
                var c00 = SIMD8<Float>(), c01 = SIMD8<Float>(), c10 = SIMD8<Float>(), c11 = SIMD8<Float>()
                var c20 = SIMD8<Float>(), c21 = SIMD8<Float>(), c30 = SIMD8<Float>(), c31 = SIMD8<Float>()
                var bp = b + j
                for p in 0..<k {
                    let b0 = load8(bp), b1 = load8(bp + 8)
                    var x = SIMD8<Float>(repeating: a0[p])
                    c00 = c00.addingProduct(x, b0); c01 = c01.addingProduct(x, b1)
                    x = SIMD8<Float>(repeating: a1[p])
                    c10 = c10.addingProduct(x, b0); c11 = c11.addingProduct(x, b1)
                    x = SIMD8<Float>(repeating: a2[p])
                    c20 = c20.addingProduct(x, b0); c21 = c21.addingProduct(x, b1)
                    x = SIMD8<Float>(repeating: a3[p])
                    c30 = c30.addingProduct(x, b0); c31 = c31.addingProduct(x, b1)
                    bp += ldb
                }
                let r0 = c + i * ldc + j, r1 = r0 + ldc, r2 = r1 + ldc, r3 = r2 + ldc
                put(r0, c00); put(r0 + 8, c01); put(r1, c10); put(r1 + 8, c11)
                put(r2, c20); put(r2 + 8, c21); put(r3, c30); put(r3 + 8, c31)
                i += 4
            }
            while i < m {
                let a0 = a + i * lda
                var c00 = SIMD8<Float>(), c01 = SIMD8<Float>()
                var bp = b + j
                for p in 0..<k {
                    let x = SIMD8<Float>(repeating: a0[p])
                    c00 = c00.addingProduct(x, load8(bp)); c01 = c01.addingProduct(x, load8(bp + 8))
                    bp += ldb
                }
                put(c + i * ldc + j, c00); put(c + i * ldc + j + 8, c01)
                i += 1
            }
            j += 16
        }
        if j < n {  // column tail (< 16): plain loops
            for i in 0..<m {
                let row = c + i * ldc
                if !accumulate { for jj in j..<n { row[jj] = 0 } }
                for p in 0..<k {
                    let x = a[i * lda + p], bp = b + p * ldb
                    for jj in j..<n { row[jj] += x * bp[jj] }
                }
            }
        }
    }
}

/// Σ a[i]·w[i] in the order of `dot` (two 8-lane accumulators), so the F32 variant is bitwise `dot`.
@inline(__always)
private func dotWeights<W: SkinnyWeight>(_ a: UnsafePointer<Float>, _ b: UnsafePointer<W>, _ n: Int) -> Float {
    var acc0 = SIMD8<Float>(), acc1 = SIMD8<Float>()
    var i = 0
    while i + 16 <= n {
        acc0 = acc0.addingProduct(load8(a + i), W.load8(b + i))
        acc1 = acc1.addingProduct(load8(a + i + 8), W.load8(b + i + 8))
        i += 16
    }
    if i + 8 <= n { acc0 = acc0.addingProduct(load8(a + i), W.load8(b + i)); i += 8 }
    var s = (acc0 + acc1).sum()
    while i < n { s = s.addingProduct(a[i], W.float(b + i)); i += 1 }
    return s
}
