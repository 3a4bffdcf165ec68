import Shared
import Foundation
import Kernels
import SafeTensors
import Testing
import TestSupport

/// BF16 weights read by the F32 kernels (`WeightMatrix`, `Gemm.skinnyTransB(bf16:)`, the panel GEMM, the
/// embedding and the fused LM head) against the F32 kernels on the widened weights. Weights drawn as BF16
/// values, so the widened matrix is exactly what the BF16 kernels compute with.
@Suite struct BF16KernelTests {
    /// n values rounded to BF16: (bit patterns, their exact F32 values).
    func bf16Normals(_ rng: inout TestRNG, _ n: Int) -> ([UInt16], [Float]) {
        let bits = rng.normals(n).map { BFloat16.from($0) }
        return (bits, bits.map(BFloat16.toFloat))
    }

    @Test func widenIsExact() {
        var rng = TestRNG(seed: 1)
        for n in [0, 1, 7, 8, 9, 33] {
            let (bits, values) = bf16Normals(&rng, n)
            var out = [Float](repeating: -1, count: n)
            bits.withUnsafeBufferPointer { b in out.withUnsafeMutableBufferPointer { o in
                if n > 0 { widenBF16(o.baseAddress!, b.baseAddress!, count: n) }
            } }
            #expect(out == values)
        }
        // Specials survive widening: ±0, ±inf, NaN, the smallest subnormal.
        let specials: [UInt16] = [0x0000, 0x8000, 0x7F80, 0xFF80, 0x7FC0, 0x0001]
        var out = [Float](repeating: 0, count: specials.count)
        specials.withUnsafeBufferPointer { b in out.withUnsafeMutableBufferPointer { widenBF16($0.baseAddress!, b.baseAddress!, count: 6) } }
        #expect(out[0] == 0 && out[0].sign == .plus && out[1] == 0 && out[1].sign == .minus)
        #expect(out[2] == .infinity && out[3] == -.infinity && out[4].isNaN && out[5] == Float(bitPattern: 0x10000))
    }

    /// The decode kernel: bitwise the F32 skinny kernel on the widened matrix (same tiles, same order), for every
    /// tile tail, strides, alpha / beta and the column split.
    @Test(arguments: [1, 2, 3, 4, 5, 8, 17, 32])
    func skinnyBF16IsBitwiseTheF32KernelOnWidenedWeights(m: Int) {
        var rng = TestRNG(seed: UInt64(m))
        for (n, k, pad) in [(1, 1, 0), (3, 8, 0), (7, 17, 3), (48, 64, 0), (97, 33, 5), (200, 160, 0)] {
            for (alpha, beta, workers) in [(Float(1), Float(0), 1), (0.5, 1, 1), (1, 0, 2)] {
                let lda = k + pad, ldw = k + 2 * pad, ldc = n + pad
                let a = Buf(rng.normals(m * lda)), c0 = rng.normals(m * ldc)
                let (bits, widened) = bf16Normals(&rng, n * ldw)
                let w = Buf(widened), cF = Buf(c0), cB = Buf(c0)
                Gemm.skinnyTransB(cF.p, ldc: ldc, a.cp, lda: lda, w.cp, ldw: ldw, m: m, n: n, k: k,
                                  alpha: alpha, beta: beta, workers: workers)
                bits.withUnsafeBufferPointer { b in
                    Gemm.skinnyTransB(cB.p, ldc: ldc, a.cp, lda: lda, bf16: b.baseAddress!, ldw: ldw, m: m, n: n, k: k,
                                      alpha: alpha, beta: beta, workers: workers)
                }
                #expect(cB.array == cF.array, "m=\(m) n=\(n) k=\(k) pad=\(pad) alpha=\(alpha) beta=\(beta) workers=\(workers)")
            }
        }
    }

    /// The panel GEMM (large M, both orientations, a panel size that splits the matrix) against the F32 GEMM on
    /// the widened matrix: transposed, each output is the same K-long product (equal up to BLAS's blocking);
    /// not transposed, C accumulates panel by panel (K split): float tolerance.
    @Test func panelGemmMatchesF32OnWidenedWeights() {
        var rng = TestRNG(seed: 7)
        let m = 70, n = 1500, k = 900   // n·k > bf16PanelFloats: at least two panels each way
        let (wbits, wf) = bf16Normals(&rng, n * k)
        let w = Buf(wf)
        // transB: C (M, N) = A (M, K) · Wᵀ, beta 1 onto C0.
        let a = Buf(rng.normals(m * k)), c0 = rng.normals(m * n)
        let cF = Buf(c0), cB = Buf(c0)
        Gemm.sgemm(cF.p, ldc: n, a.cp, lda: k, w.cp, ldb: k, m: m, n: n, k: k, transB: true, alpha: 0.5, beta: 1)
        wbits.withUnsafeBufferPointer { b in
            Gemm.sgemm(cB.p, ldc: n, a.cp, lda: k, .bf16(b.baseAddress!), ldb: k, m: m, n: n, k: k, transB: true,
                       alpha: 0.5, beta: 1)
        }
        expectClose(cB.array, cF.array, atol: 1e-4, rtol: 1e-5, "transB")
        // !transB: dX (M, K) += dY (M, N) · W (N, K) (a linear layer's input gradient).
        let dy = Buf(rng.normals(m * n)), x0 = rng.normals(m * k)
        let xF = Buf(x0), xB = Buf(x0)
        Gemm.sgemm(xF.p, ldc: k, dy.cp, lda: n, w.cp, ldb: k, m: m, n: k, k: n, beta: 1)
        wbits.withUnsafeBufferPointer { b in
            Gemm.sgemm(xB.p, ldc: k, dy.cp, lda: n, .bf16(b.baseAddress!), ldb: k, m: m, n: k, k: n, transB: false, beta: 1)
        }
        expectClose(xB.array, xF.array, atol: 2e-4, rtol: 1e-5, "!transB")
        // Small M, B transposed: the skinny path (bitwise).
        let cs = Buf(zeros: 4 * n), csF = Buf(zeros: 4 * n)
        Gemm.skinnyTransB(csF.p, ldc: n, a.cp, lda: k, w.cp, ldw: k, m: 4, n: n, k: k)
        wbits.withUnsafeBufferPointer { b in
            Gemm.sgemm(cs.p, ldc: n, a.cp, lda: k, .bf16(b.baseAddress!), ldb: k, m: 4, n: n, k: k, transB: true)
        }
        #expect(cs.array == csF.array)
    }

    @Test func embeddingAndLinearFromBF16() {
        var rng = TestRNG(seed: 3)
        let v = 50, c = 24, oc = 40, n = 5
        let (tbits, tf) = bf16Normals(&rng, v * c)
        let tokens = IBuf([3, 0, 49, 3, 17])
        let eF = Buf(zeros: n * c), eB = Buf(zeros: n * c)
        let table = Buf(tf)
        embeddingForward(eF.p, tokens.cp, table.cp, n: n, c: c)
        tbits.withUnsafeBufferPointer { embeddingForward(eB.p, tokens.cp, .bf16($0.baseAddress!), n: n, c: c) }
        #expect(eB.array == eF.array)
        let (wbits, wf) = bf16Normals(&rng, oc * c)
        let bias = Buf(rng.normals(oc)), x = Buf(rng.normals(40 * c))
        let yF = Buf(zeros: 40 * oc), yB = Buf(zeros: 40 * oc)
        let wF = Buf(wf)
        linearForward(yF.p, x.cp, wF.cp, bias.cp, n: 40, c: c, oc: oc)
        wbits.withUnsafeBufferPointer { linearForward(yB.p, x.cp, .bf16($0.baseAddress!), bias.cp, n: 40, c: c, oc: oc) }
        expectClose(yB.array, yF.array, atol: 1e-5, rtol: 1e-6, "linearForward")
    }

    /// The fused LM head with a BF16 weight: the same statistics and gradients as with the widened F32 weight.
    @Test func lmHeadFromBF16() {
        var rng = TestRNG(seed: 11)
        let r = 9, c = 32, v = 3000, chunk = 1024
        let (wbits, wf) = bf16Normals(&rng, v * c)
        let w = Buf(wf), inp = Buf(rng.normals(r * c))
        let targets = IBuf((0..<r).map { Int32(($0 * 331) % v) })
        func run(_ weight: WeightMatrix) -> ([Float], [Float], [Float]) {
            var logp = [Float](repeating: 0, count: r), lse = logp, sc = logp
            let scratch = Buf(zeros: r * chunk), dInp = Buf(zeros: r * c)
            lmHeadForward(&logp, &lse, &sc, nil, scratch.p, inp.cp, weight, targets.cp,
                          n: r, c: c, v: v, chunk: chunk, temperature: 0.7)
            let dLogp = (0..<r).map { Float($0) - 4 }
            lmHeadBackward(dInp.p, nil, scratch.p, dLogp, inp.cp, weight, lse, targets.cp,
                           n: r, c: c, v: v, chunk: chunk, temperature: 0.7)
            return (logp, sc, dInp.array)
        }
        let f = run(.f32(w.cp))
        let b = wbits.withUnsafeBufferPointer { run(.bf16($0.baseAddress!)) }
        expectClose(b.0, f.0, atol: 1e-5, rtol: 1e-6, "logp")
        expectClose(b.1, f.1, atol: 1e-5, rtol: 1e-6, "self-certainty")
        expectClose(b.2, f.2, atol: 1e-5, rtol: 1e-5, "dInp")
    }
}
