import Foundation
import Testing
import TestSupport
@testable import Kernels

/// The fused LM head (`lmHeadForward` / `lmHeadBackward`): against a float64 PyTorch fixture (chunks that do not
/// divide V, target −1 rows, a pre-filled dWeight as with tied embeddings), against the materialised path
/// (linear + logit kernels) at a vocabulary larger than the 2048-float sub-chunk, and the online-logsumexp state
/// fed in pieces.
@Suite struct LMHeadTests {
    /// Runs forward and backward with `chunk` columns; dInp and dWeight start from `dInp0`/`dWeight0`.
    struct Run {
        var logp: [Float], lse: [Float], sc: [Float], ent: [Float], dInp: [Float], dWeight: [Float]
    }

    func run(_ inp: Buf, _ w: Buf, _ t: IBuf, _ dLogp: Buf, n: Int, c: Int, v: Int, chunk: Int, temperature: Float,
             dInp0: [Float]? = nil, dWeight0: [Float]? = nil, keep: Bool = false) -> Run {
        let logp = Buf(zeros: n), lse = Buf(zeros: n), sc = Buf(zeros: n), ent = Buf(zeros: n)
        let scratch = Buf(zeros: keep ? n * v : n * chunk)
        lmHeadForward(logp.p, lse.p, sc.p, ent.p, scratch.p, inp.cp, w.cp, t.cp, n: n, c: c, v: v, chunk: chunk,
                      temperature: temperature, keep: keep)
        let dInp = Buf(dInp0 ?? [Float](repeating: 0, count: n * c))
        let dW = Buf(dWeight0 ?? [Float](repeating: 0, count: v * c))
        lmHeadBackward(dInp.p, dW.p, scratch.p, dLogp.cp, inp.cp, w.cp, lse.cp, t.cp, n: n, c: c, v: v, chunk: chunk,
                       temperature: temperature, keep: keep)
        return Run(logp: logp.array, lse: lse.array, sc: sc.array, ent: ent.array, dInp: dInp.array, dWeight: dW.array)
    }

    /// V = 37: chunks of 5 and 8 leave a partial last chunk, 16 a partial SIMD tail, 37 and 64 are one chunk;
    /// logits recomputed in the backward, and kept from the forward.
    @Test(arguments: [5, 8, 16, 37, 64], [false, true])
    func matchesTorchFixture(chunk: Int, keep: Bool) throws {
        let fx = try KernelFixture("lm_head")
        let n = 6, c = 16, v = 37, temp = try fx.scalar("temperature")
        let inp = try fx.buf("inp"), w = try fx.buf("weight"), t = try fx.int32s("targets"), dLogp = try fx.buf("dLogp")
        // dWeight pre-filled as it is when the head is tied to the embedding (its gradient is already there):
        // the head must add to it.
        var rng = TestRNG(seed: 5)
        let embeddingGrad = rng.normals(v * c, scale: 0.1), dInp0 = rng.normals(n * c, scale: 0.1)
        let r = run(inp, w, t, dLogp, n: n, c: c, v: v, chunk: chunk, temperature: temp,
                    dInp0: dInp0, dWeight0: embeddingGrad, keep: keep)
        expectClose(r.logp, try fx.floats("logp"), atol: 1e-5, rtol: 1e-5, "logp (chunk \(chunk))")
        #expect(r.logp[2] == 0, "target −1 row has logp 0")
        expectClose(r.lse, try fx.floats("lse"), atol: 1e-5, rtol: 1e-5, "lse (chunk \(chunk))")
        expectClose(r.sc, try fx.floats("selfCertainty"), atol: 1e-6, rtol: 1e-5, "self-certainty (chunk \(chunk))")
        expectClose(r.ent, try fx.floats("entropy"), atol: 1e-5, rtol: 1e-5, "entropy (chunk \(chunk))")
        let dInp = zip(r.dInp, dInp0).map { $0 - $1 }, dW = zip(r.dWeight, embeddingGrad).map { $0 - $1 }
        expectClose(dInp, try fx.floats("dInp"), atol: 1e-6, rtol: 1e-4, "dInp (chunk \(chunk))")
        expectClose(dW, try fx.floats("dWeight"), atol: 1e-6, rtol: 1e-4, "dWeight (chunk \(chunk))")
        // Cross-entropy = −logp at T = 1.
        let ce = run(inp, w, t, dLogp, n: n, c: c, v: v, chunk: chunk, temperature: 1)
        expectClose(ce.logp.map { -$0 }, try fx.floats("crossEntropy"), atol: 1e-5, rtol: 1e-5, "cross-entropy")
    }

    /// Against linear + tokenLogprob/selfCertainty/entropy (forward) and tokenLogprobBackward + linearBackward,
    /// at V = 5000 (two full 2048-float sub-chunks and a partial one), for chunks that are a multiple of 2048,
    /// that do not divide V, and the whole vocabulary; at T = 0.8 and T = 1 (where the tempered and raw sums are
    /// one state); cross-entropy at T = 1 against crossEntropyForward/Backward.
    @Test(arguments: [(2048, Float(0.8)), (1000, Float(0.8)), (5000, Float(1)), (777, Float(1))])
    func matchesMaterialisedPath(chunk: Int, temperature: Float) {
        let n = 13, c = 40, v = 5000
        var rng = TestRNG(seed: UInt64(chunk))
        let inp = Buf(rng.normals(n * c)), w = Buf(rng.normals(v * c, scale: 0.4))
        var targets = (0..<n).map { Int32(($0 * 1543) % v) }
        targets[4] = -1
        let t = IBuf(targets), dLogp = Buf(rng.normals(n))
        let r = run(inp, w, t, dLogp, n: n, c: c, v: v, chunk: chunk, temperature: temperature)
        // Keeping the forward's logits instead of recomputing them: the same GEMM on the same operands.
        let kept = run(inp, w, t, dLogp, n: n, c: c, v: v, chunk: chunk, temperature: temperature, keep: true)
        #expect(kept.logp == r.logp && kept.lse == r.lse && kept.sc == r.sc && kept.ent == r.ent)
        #expect(kept.dInp == r.dInp && kept.dWeight == r.dWeight)

        let z = Buf(zeros: n * v)
        linearForward(z.p, inp.cp, w.cp, nil, n: n, c: c, oc: v)
        let safe = IBuf(targets.map { max(0, $0) })
        let logp = Buf(zeros: n), lse = Buf(zeros: n), sc = Buf(zeros: n), ent = Buf(zeros: n)
        tokenLogprobForward(logp.p, lse.p, z.cp, safe.cp, n: n, v: v, temperature: temperature)
        selfCertaintyForward(sc.p, z.cp, n: n, v: v)
        entropyForward(ent.p, z.cp, n: n, v: v)
        var refLogp = logp.array
        refLogp[4] = 0
        expectClose(r.logp, refLogp, atol: 2e-6, rtol: 1e-6, "logp")
        expectClose(r.lse, lse.array, atol: 2e-6, rtol: 1e-6, "lse")
        expectClose(r.sc, sc.array, atol: 1e-6, rtol: 1e-6, "self-certainty")
        expectClose(r.ent, ent.array, atol: 2e-6, rtol: 1e-6, "entropy")

        var g = dLogp.array
        g[4] = 0   // no target, no gradient
        let dz = Buf(zeros: n * v), gBuf = Buf(g)
        tokenLogprobBackward(dz.p, gBuf.cp, z.cp, lse.cp, safe.cp, n: n, v: v, temperature: temperature)
        let dInp = Buf(zeros: n * c), dW = Buf(zeros: v * c)
        linearBackward(dInp.p, dW.p, nil, dz.cp, inp.cp, w.cp, n: n, c: c, oc: v)
        expectClose(r.dInp, dInp.array, atol: 1e-6, rtol: 1e-4, "dInp")
        expectClose(r.dWeight, dW.array, atol: 1e-7, rtol: 1e-4, "dWeight")

        if temperature == 1 {
            let losses = Buf(zeros: n), ceLse = Buf(zeros: n)
            crossEntropyForward(losses.p, ceLse.p, z.cp, t.cp, n: n, v: v)
            expectClose(r.logp.map { -$0 }, losses.array, atol: 2e-6, rtol: 1e-6, "cross-entropy")
            // dLoss = −dLogp.
            let dLoss = Buf(g.map { -$0 }), dzCE = Buf(zeros: n * v)
            crossEntropyBackward(dzCE.p, dLoss.cp, z.cp, ceLse.cp, t.cp, n: n, v: v)
            let dInpCE = Buf(zeros: n * c), dWCE = Buf(zeros: v * c)
            linearBackward(dInpCE.p, dWCE.p, nil, dzCE.cp, inp.cp, w.cp, n: n, c: c, oc: v)
            expectClose(r.dInp, dInpCE.array, atol: 1e-6, rtol: 1e-4, "CE dInp")
            expectClose(r.dWeight, dWCE.array, atol: 1e-7, rtol: 1e-4, "CE dWeight")
        }
    }

    /// The online-logsumexp state fed a row whole or in pieces that are multiples of the 2048-float sub-chunk
    /// gives bitwise the same sums (what makes the fused statistics those of the materialised kernels); other
    /// piece lengths agree to rounding.
    @Test func rowStateIsIndependentOfPieces() {
        let v = 9003
        var rng = TestRNG(seed: 3)
        var row = rng.normals(v, scale: 2)
        row[7000] = 12   // the max moves in a late piece
        func fed(_ piece: Int, invT: Float) -> LogitRowState {
            var st = LogitRowState()
            row.withUnsafeBufferPointer { p in
                var j = 0
                while j < v { let l = min(piece, v - j); st.add(p.baseAddress! + j, l, invT: invT, wantExpD: true, wantD: true); j += l }
            }
            return st
        }
        for invT: Float in [1, 1 / 0.7] {
            let whole = fed(v, invT: invT)
            for piece in [2048, 4096, 8192] {
                let p = fed(piece, invT: invT)
                #expect(p.max == whole.max && p.sumExp == whole.sumExp && p.sumExpD == whole.sumExpD && p.sumD == whole.sumD,
                        "pieces of \(piece) at 1/T = \(invT)")
            }
            // Other sub-chunk maxima shift each Float d = (z − m)/T by another rounding: ~1e-9 relative.
            let odd = fed(1000, invT: invT)
            #expect(abs(odd.sumExp - whole.sumExp) <= 1e-8 * whole.sumExp)
            #expect(abs(odd.sumExpD - whole.sumExpD) <= 1e-8 * abs(whole.sumExpD) + 1e-8)
            #expect(abs(odd.sumD - whole.sumD) <= 1e-8 * abs(whole.sumD) + 1e-8)
        }
    }

    /// Chunk sizes: a multiple of 2048 within the 2^23-float budget, never above V.
    @Test func chunkColumns() {
        #expect(lmHeadChunkColumns(rows: 512, vocab: 151_936) == 8192)
        #expect(lmHeadChunkColumns(rows: 2048, vocab: 151_936) == 4096)
        #expect(lmHeadChunkColumns(rows: 4096, vocab: 151_936) == 2048)
        #expect(lmHeadChunkColumns(rows: 16384, vocab: 151_936) == 512)
        #expect(lmHeadChunkColumns(rows: 1 << 20, vocab: 151_936) == 256)
        #expect(lmHeadChunkColumns(rows: 10, vocab: 97) == 97)
    }
}
