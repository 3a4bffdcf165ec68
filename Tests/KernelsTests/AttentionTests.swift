import Foundation
import Testing
import TestSupport
import Kernels

/// Packed causal GQA attention against float64 torch references (fixture "attention": case a = lengths 1, 5, 9
/// with NH 4, NKV 2, HD 8; case b = lengths 33, 2, 70 with HD 12; c = multi-head NH 2 = NKV 2, HD 16; d = multi-query
/// NH 3, NKV 1), on both the SIMD path and the blocked BLAS path (forced by `blasMinLength`), with small query
/// blocks so several blocks per sequence are exercised.
/// Tolerances: atol 1e-5, rtol 1e-4 (outputs, lse and all gradients).
@Suite struct AttentionTests {
    struct Case {
        let n: Int, nh: Int, nkv: Int, hd: Int
        let starts: [Int]
        let q: Buf, k: Buf, v: Buf, dOut: Buf
        let fx: KernelFixture, prefix: String
        init(_ prefix: String) throws {
            fx = try KernelFixture("attention")
            self.prefix = prefix
            let dims = try fx.ints(prefix + "dims")
            nh = dims[0]; nkv = dims[1]; hd = dims[2]
            starts = try fx.ints(prefix + "seqStarts")
            n = starts.last!
            q = try fx.buf(prefix + "q"); k = try fx.buf(prefix + "k"); v = try fx.buf(prefix + "v")
            dOut = try fx.buf(prefix + "dOut")
        }
        func ref(_ name: String) throws -> [Float] { try fx.floats(prefix + name) }
    }

    @Test(arguments: [("a.", 16, 32), ("a.", 1, 4), ("a.", 1, 64), ("b.", 16, 32), ("b.", 1, 16), ("b.", 1000, 64),
                      ("c.", 1, 8), ("c.", 1000, 32), ("d.", 1, 5), ("d.", 1000, 32)])
    func matchesReference(prefix: String, blasMinLength: Int, queryBlock: Int) throws {
        let c = try Case(prefix)
        let label = "\(prefix) blasMin \(blasMinLength) block \(queryBlock)"
        let out = Buf(zeros: c.n * c.nh * c.hd), lse = Buf(zeros: c.n * c.nh)
        attentionForward(out.p, lse.p, c.q.cp, c.k.cp, c.v.cp, seqStarts: c.starts,
                         nHeads: c.nh, nKVHeads: c.nkv, headDim: c.hd,
                         blasMinLength: blasMinLength, queryBlock: queryBlock)
        expectClose(out.array, try c.ref("out"), atol: 1e-5, rtol: 1e-4, "out \(label)")
        expectClose(lse.array, try c.ref("lse"), atol: 1e-5, rtol: 1e-4, "lse \(label)")
        let dQ = Buf(zeros: c.q.count), dK = Buf(zeros: c.k.count), dV = Buf(zeros: c.v.count)
        for rep in 1...2 {
            attentionBackward(dQ.p, dK.p, dV.p, c.dOut.cp, c.q.cp, c.k.cp, c.v.cp, out.cp, lse.cp,
                              seqStarts: c.starts, nHeads: c.nh, nKVHeads: c.nkv, headDim: c.hd,
                              blasMinLength: blasMinLength, queryBlock: queryBlock)
            let s = Float(rep)
            expectClose(dQ.array, times(try c.ref("dQ"), s), atol: 1e-5, rtol: 1e-4, "dQ x\(rep) \(label)")
            expectClose(dK.array, times(try c.ref("dK"), s), atol: 1e-5, rtol: 1e-4, "dK x\(rep) \(label)")
            expectClose(dV.array, times(try c.ref("dV"), s), atol: 1e-5, rtol: 1e-4, "dV x\(rep) \(label)")
        }
    }

    /// Realistic head size (HD 64, NKV 2 of NH 8) over uneven lengths: the BLAS and SIMD paths must agree, and
    /// with enough work the split over cores runs (results do not depend on the split: items are disjoint).
    @Test func blasAndSimdPathsAgree() {
        let lengths = [1, 3, 17, 31, 32, 33, 64, 65, 100]
        var starts = [0]
        for l in lengths { starts.append(starts.last! + l) }
        let n = starts.last!, nh = 8, nkv = 2, hd = 64
        var rng = TestRNG(seed: 11)
        let q = Buf(rng.normals(n * nh * hd)), k = Buf(rng.normals(n * nkv * hd)), v = Buf(rng.normals(n * nkv * hd))
        let dOut = Buf(rng.normals(n * nh * hd))
        var results: [[[Float]]] = []
        for minLen in [1, 1_000_000] {
            let out = Buf(zeros: n * nh * hd), lse = Buf(zeros: n * nh)
            attentionForward(out.p, lse.p, q.cp, k.cp, v.cp, seqStarts: starts, nHeads: nh, nKVHeads: nkv,
                             headDim: hd, blasMinLength: minLen, queryBlock: 24)
            let dQ = Buf(zeros: q.count), dK = Buf(zeros: k.count), dV = Buf(zeros: v.count)
            attentionBackward(dQ.p, dK.p, dV.p, dOut.cp, q.cp, k.cp, v.cp, out.cp, lse.cp, seqStarts: starts,
                              nHeads: nh, nKVHeads: nkv, headDim: hd, blasMinLength: minLen, queryBlock: 24)
            results.append([out.array, lse.array, dQ.array, dK.array, dV.array])
        }
        for (i, name) in ["out", "lse", "dQ", "dK", "dV"].enumerated() {
            expectClose(results[0][i], results[1][i], atol: 2e-5, rtol: 1e-4, "BLAS vs SIMD \(name)")
        }
        // First token of every sequence attends only to itself: out = v, lse = q·k·scale.
        let out = results[1][0]
        for (b, s0) in starts.dropLast().enumerated() {
            for h in [0, 5] {
                let g = h / (nh / nkv)
                let o = Array(out[(s0 * nh + h) * hd ..< (s0 * nh + h + 1) * hd])
                let vv = Array(v.array[(s0 * nkv + g) * hd ..< (s0 * nkv + g + 1) * hd])
                expectClose(o, vv, atol: 1e-6, rtol: 1e-6, "seq \(b) head \(h) first token")
            }
        }
    }

    @Test func emptySequencesAreSkipped() throws {
        // A zero-length sequence in the packing changes nothing.
        let c = try Case("a.")
        let starts = [0, 0] + c.starts.dropFirst().map { $0 } + [c.n]
        let out = Buf(zeros: c.n * c.nh * c.hd), lse = Buf(zeros: c.n * c.nh)
        attentionForward(out.p, lse.p, c.q.cp, c.k.cp, c.v.cp, seqStarts: starts,
                         nHeads: c.nh, nKVHeads: c.nkv, headDim: c.hd)
        expectClose(out.array, try c.ref("out"), atol: 1e-5, rtol: 1e-4, "out with empty sequences")
    }

    /// Opt-in timing (RLIF_BENCH=1): 8 sequences of T 256, NH 8, NKV 2, HD 64.
    @Test(.enabled(if: ProcessInfo.processInfo.environment["RLIF_BENCH"] == "1", "set RLIF_BENCH=1"))
    func benchmark() {
        let b = 8, t = 256, nh = 8, nkv = 2, hd = 64, n = b * t
        let starts = (0...b).map { $0 * t }
        var rng = TestRNG(seed: 5)
        let q = Buf(rng.normals(n * nh * hd)), k = Buf(rng.normals(n * nkv * hd)), v = Buf(rng.normals(n * nkv * hd))
        let out = Buf(zeros: n * nh * hd), lse = Buf(zeros: n * nh)
        let dQ = Buf(zeros: q.count), dK = Buf(zeros: k.count), dV = Buf(zeros: v.count)
        var fw = Double.infinity, bw = Double.infinity
        for _ in 0..<5 {
            let t0 = DispatchTime.now().uptimeNanoseconds
            attentionForward(out.p, lse.p, q.cp, k.cp, v.cp, seqStarts: starts, nHeads: nh, nKVHeads: nkv, headDim: hd)
            let t1 = DispatchTime.now().uptimeNanoseconds
            attentionBackward(dQ.p, dK.p, dV.p, out.cp, q.cp, k.cp, v.cp, out.cp, lse.cp, seqStarts: starts,
                              nHeads: nh, nKVHeads: nkv, headDim: hd)
            let t2 = DispatchTime.now().uptimeNanoseconds
            fw = min(fw, Double(t1 - t0) / 1e6); bw = min(bw, Double(t2 - t1) / 1e6)
        }
        print("attention 8x256 NH8 NKV2 HD64: forward \(fw) ms, backward \(bw) ms")
    }
}
