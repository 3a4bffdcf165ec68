import Foundation
import Kernels
import Testing
import TestSupport

/// `Gemm.skinnyTransB` (the decode step's small-M products) against a Double triple loop, over every tile tail
/// (M mod 4, N mod 3, K mod 8 and mod 16), strided rows, alpha, beta 0 / 1 and the column split.
@Suite struct SkinnyGemmTests {
    /// C (M, N) = alpha · A · Wᵀ + beta · C0 in Double, with the same strides.
    func reference(_ a: [Float], lda: Int, _ w: [Float], ldw: Int, _ c0: [Float], ldc: Int,
                   m: Int, n: Int, k: Int, alpha: Float, beta: Float) -> [Float] {
        var c = c0
        for i in 0..<m {
            for j in 0..<n {
                var s = 0.0
                for p in 0..<k { s += Double(a[i * lda + p]) * Double(w[j * ldw + p]) }
                c[i * ldc + j] = Float(Double(alpha) * s + Double(beta) * Double(c0[i * ldc + j]))
            }
        }
        return c
    }

    func check(m: Int, n: Int, k: Int, pad: Int, alpha: Float, beta: Float, workers: Int?,
               sourceLocation: SourceLocation = #_sourceLocation) {
        var rng = TestRNG(seed: UInt64(m * 1_000_003 + n * 1009 + k * 7 + pad))
        let lda = k + pad, ldw = k + 2 * pad, ldc = n + pad
        let a = rng.normals(m * lda), w = rng.normals(n * ldw), c0 = rng.normals(m * ldc)
        let expected = reference(a, lda: lda, w, ldw: ldw, c0, ldc: ldc, m: m, n: n, k: k, alpha: alpha, beta: beta)
        let ab = Buf(a), wb = Buf(w), cb = Buf(c0)
        Gemm.skinnyTransB(cb.p, ldc: ldc, ab.cp, lda: lda, wb.cp, ldw: ldw, m: m, n: n, k: k,
                          alpha: alpha, beta: beta, workers: workers)
        // Float accumulation of K products of unit normals: error grows like sqrt(K)·ulp.
        expectClose(cb.array, expected, atol: 2e-5 * Double(k).squareRoot() + 1e-6, rtol: 1e-5,
                    "skinny m=\(m) n=\(n) k=\(k) pad=\(pad) alpha=\(alpha) beta=\(beta) workers=\(workers ?? 0)",
                    sourceLocation: sourceLocation)
        // Padding between rows of C must be untouched.
        let got = cb.array
        for i in 0..<m { for j in n..<ldc where got[i * ldc + j] != c0[i * ldc + j] {
            Issue.record("skinny wrote padding at row \(i) col \(j)", sourceLocation: sourceLocation); return
        } }
    }

    @Test(arguments: [1, 2, 3, 4, 5, 7, 8, 16, 17, 32])
    func everyTileTail(m: Int) {
        for n in [1, 2, 3, 4, 5, 7, 48] {
            for k in [1, 7, 8, 9, 15, 16, 17, 24, 33, 64] {
                check(m: m, n: n, k: k, pad: 0, alpha: 1, beta: 0, workers: 1)
            }
        }
    }

    @Test func stridesAlphaBeta() {
        for (m, n, k) in [(4, 6, 16), (5, 7, 19), (16, 30, 40), (3, 3, 8)] {
            for pad in [1, 5] {
                check(m: m, n: n, k: k, pad: pad, alpha: 0.5, beta: 1, workers: 1)
                check(m: m, n: n, k: k, pad: pad, alpha: -2, beta: 0, workers: 1)
            }
        }
    }

    /// The column split: ranges in multiples of 3, the tail on the last worker, more workers than cores.
    @Test func columnSplit() {
        for workers in [2, 3, 4] {
            for n in [3, 4, 7, 31, 100, 301] {
                check(m: 16, n: n, k: 72, pad: 1, alpha: 1, beta: 1, workers: workers)
                check(m: 6, n: n, k: 33, pad: 0, alpha: 1, beta: 0, workers: workers)
            }
        }
    }

    /// `Gemm.sgemm` routes small-M, B-transposed products here; the result must match cblas for the same call
    /// (M = 33 goes to BLAS, M = 32 to the skinny kernel, both checked against Double).
    @Test func sgemmRoutingAgreesWithReference() {
        for m in [2, Gemm.skinnyMaxRows, Gemm.skinnyMaxRows + 1] {
            var rng = TestRNG(seed: UInt64(m))
            let n = 40, k = 70
            let a = rng.normals(m * k), w = rng.normals(n * k)
            let expected = reference(a, lda: k, w, ldw: k, [Float](repeating: 0, count: m * n), ldc: n,
                                     m: m, n: n, k: k, alpha: 1, beta: 0)
            let ab = Buf(a), wb = Buf(w), cb = Buf([Float](repeating: .nan, count: m * n))
            Gemm.sgemm(cb.p, ab.cp, wb.cp, m: m, n: n, k: k, transB: true)   // beta 0 must not read C (NaN)
            expectClose(cb.array, expected, atol: 2e-4, rtol: 1e-5, "sgemm m=\(m)")
        }
    }
}
