import Foundation
import Testing
import TestSupport
import Kernels

/// Token log-probability, cross-entropy, self-certainty and entropy: fixture comparisons (float64 torch
/// references), central finite differences of Double reference losses, and accuracy on near-uniform rows.
@Suite struct LogitKernelTests {
    // MARK: Double references (plain scalar loops, independent of the kernels)

    func lseDouble(_ z: ArraySlice<Double>) -> Double {
        let m = z.max()!
        return m + Foundation.log(z.reduce(0) { $0 + Foundation.exp($1 - m) })
    }

    /// Σ_i w_i · logp_i(z) with logp_i = z[i,t]/T − lse(z[i]/T).
    func weightedLogprob(_ z: [Double], _ t: [Int32], _ w: [Float], v: Int, temp: Double) -> Double {
        var s = 0.0
        for i in 0..<t.count {
            let row = z[(i * v)..<((i + 1) * v)].map { $0 / temp }
            s += Double(w[i]) * (row[Int(t[i])] - lseDouble(row[...]))
        }
        return s
    }

    /// Σ_i w_i · CE_i(z), rows with target −1 contribute 0.
    func weightedCE(_ z: [Double], _ t: [Int32], _ w: [Float], v: Int) -> Double {
        var s = 0.0
        for i in 0..<t.count where t[i] >= 0 {
            let row = z[(i * v)..<((i + 1) * v)]
            s += Double(w[i]) * (lseDouble(row) - row[i * v + Int(t[i])])
        }
        return s
    }

    /// Central differences of `f` at every coordinate of z, step h, all in Double.
    func finiteDifferences(_ z: [Float], h: Double, _ f: ([Double]) -> Double) -> [Double] {
        var zd = z.map(Double.init)
        var g = [Double](repeating: 0, count: z.count)
        for j in 0..<z.count {
            let z0 = zd[j]
            zd[j] = z0 + h; let fp = f(zd)
            zd[j] = z0 - h; let fm = f(zd)
            zd[j] = z0
            g[j] = (fp - fm) / (2 * h)
        }
        return g
    }

    // MARK: Tests

    @Test func tokenLogprobMatchesFixture() throws {
        let fx = try KernelFixture("logits")
        let n = 7, v = 13, temp = try fx.scalar("temperature")
        let z = try fx.buf("logits"), t = try fx.int32s("targets")
        let logp = Buf(zeros: n), lse = Buf(zeros: n)
        tokenLogprobForward(logp.p, lse.p, z.cp, t.cp, n: n, v: v, temperature: temp)
        expectClose(logp.array, try fx.floats("logp"), atol: 1e-5, rtol: 1e-5, "logp")
        expectClose(lse.array, try fx.floats("lse"), atol: 1e-5, rtol: 1e-5, "lse")
        let dLogp = try fx.buf("dLogp"), dz = Buf(zeros: n * v)
        for rep in 1...2 {
            tokenLogprobBackward(dz.p, dLogp.cp, z.cp, lse.cp, t.cp, n: n, v: v, temperature: temp)
            expectClose(dz.array, times(try fx.floats("dLogits"), Float(rep)), atol: 1e-5, rtol: 1e-4, "dLogits x\(rep)")
        }
    }

    @Test func tokenLogprobFiniteDifferences() throws {
        // Central differences (h 1e-3) of a Double reference at the fixture's float inputs; error O(h²) ≈ 1e-6.
        let fx = try KernelFixture("logits")
        let n = 7, v = 13, temp = try fx.scalar("temperature")
        let zf = try fx.floats("logits"), t = try fx.int32s("targets"), w = try fx.floats("dLogp")
        let tArr = Array(UnsafeBufferPointer(start: t.p, count: n))
        let fd = finiteDifferences(zf, h: 1e-3) { weightedLogprob($0, tArr, w, v: v, temp: Double(temp)) }
        let z = Buf(zf), logp = Buf(zeros: n), lse = Buf(zeros: n), dz = Buf(zeros: n * v), wb = Buf(w)
        tokenLogprobForward(logp.p, lse.p, z.cp, t.cp, n: n, v: v, temperature: temp)
        tokenLogprobBackward(dz.p, wb.cp, z.cp, lse.cp, t.cp, n: n, v: v, temperature: temp)
        expectClose(dz.array, fd, atol: 2e-5, rtol: 1e-4, "dLogits vs finite differences")
        let f = logp.array.enumerated().reduce(0.0) { $0 + Double($1.element) * Double(w[$1.offset]) }
        expectClose(f, weightedLogprob(zf.map(Double.init), tArr, w, v: v, temp: Double(temp)), atol: 1e-5, rtol: 1e-6,
                    "Σ w·logp vs Double")
    }

    @Test func crossEntropyMatchesFixture() throws {
        let fx = try KernelFixture("cross_entropy")
        let n = 7, v = 13
        let z = try fx.buf("logits"), t = try fx.int32s("targets")
        let losses = Buf(zeros: n), lse = Buf(zeros: n)
        crossEntropyForward(losses.p, lse.p, z.cp, t.cp, n: n, v: v)
        expectClose(losses.array, try fx.floats("losses"), atol: 1e-5, rtol: 1e-5, "losses")
        expectClose(lse.array, try fx.floats("lse"), atol: 1e-5, rtol: 1e-5, "lse")
        #expect(crossEntropyCount(t.cp, n: n) == 5)
        let dL = try fx.buf("dLosses"), dz = Buf(zeros: n * v)
        for rep in 1...2 {
            crossEntropyBackward(dz.p, dL.cp, z.cp, lse.cp, t.cp, n: n, v: v)
            expectClose(dz.array, times(try fx.floats("dLogits"), Float(rep)), atol: 1e-5, rtol: 1e-4, "dLogits x\(rep)")
        }
    }

    @Test func crossEntropyFiniteDifferences() throws {
        let fx = try KernelFixture("cross_entropy")
        let n = 7, v = 13
        let zf = try fx.floats("logits"), t = try fx.int32s("targets"), w = try fx.floats("dLosses")
        let tArr = Array(UnsafeBufferPointer(start: t.p, count: n))
        let fd = finiteDifferences(zf, h: 1e-3) { weightedCE($0, tArr, w, v: v) }
        let z = Buf(zf), losses = Buf(zeros: n), lse = Buf(zeros: n), dz = Buf(zeros: n * v), wb = Buf(w)
        crossEntropyForward(losses.p, lse.p, z.cp, t.cp, n: n, v: v)
        crossEntropyBackward(dz.p, wb.cp, z.cp, lse.cp, t.cp, n: n, v: v)
        expectClose(dz.array, fd, atol: 2e-5, rtol: 1e-4, "dLogits vs finite differences")
    }

    @Test func selfCertaintyAndEntropyMatchFixture() throws {
        let fx = try KernelFixture("logits")
        let n = 7, v = 13
        let z = try fx.buf("logits"), sc = Buf(zeros: n), ent = Buf(zeros: n)
        selfCertaintyForward(sc.p, z.cp, n: n, v: v)
        entropyForward(ent.p, z.cp, n: n, v: v)
        expectClose(sc.array, try fx.floats("selfCertainty"), atol: 1e-6, rtol: 1e-5, "self-certainty")
        expectClose(ent.array, try fx.floats("entropy"), atol: 1e-6, rtol: 1e-5, "entropy")
    }

    /// Near-uniform rows (V 16384, z ~ N(0, 1e-3)): self-certainty ≈ var/2 ≈ 5e-7 is a tiny difference of two
    /// numbers near log V; it must match a float64 computation within 1e-6 absolute. Also offset and peaked rows.
    @Test func selfCertaintyAccurateOnNearUniformRows() {
        let v = 16384
        var rng = TestRNG(seed: 42)
        var rows: [[Float]] = []
        rows.append(rng.normals(v, scale: 1e-3))
        rows.append(rng.normals(v, scale: 1e-3, mean: 40))      // large common offset
        rows.append(rng.normals(v, scale: 1e-4, mean: -7))
        rows.append([Float](repeating: 0.25, count: v))          // exactly uniform: 0
        var peaked = rng.normals(v, scale: 2); peaked[123] = 30   // confident
        rows.append(peaked)
        let n = rows.count
        let z = Buf(rows.flatMap { $0 }), sc = Buf(zeros: n), ent = Buf(zeros: n)
        selfCertaintyForward(sc.p, z.cp, n: n, v: v)
        entropyForward(ent.p, z.cp, n: n, v: v)
        var refSC: [Double] = [], refEnt: [Double] = []
        for r in rows {
            let d = r.map(Double.init)
            let lse = lseDouble(d[...])
            refSC.append(lse - d.reduce(0, +) / Double(v) - Foundation.log(Double(v)))
            refEnt.append(-d.reduce(0) { $0 + Foundation.exp($1 - lse) * ($1 - lse) })
        }
        expectClose(sc.array, refSC, atol: 1e-6, rtol: 0, "self-certainty vs float64")
        expectClose(ent.array, refEnt, atol: 2e-5, rtol: 1e-6, "entropy vs float64")
        #expect(sc.array[3] == 0, "uniform row: \(sc.array[3])")
    }

    /// Rows longer than the 2048-float chunk whose max moves to later chunks (ramps, a late peak): the running-max
    /// rescaling must reproduce float64 logsumexp, log-prob, self-certainty and entropy.
    @Test func rowStatsAcrossChunks() {
        let v = 9003, temp: Float = 0.7   // 4 chunks + a partial SIMD tail
        var rng = TestRNG(seed: 77)
        var rows: [[Float]] = []
        rows.append((0..<v).map { Float($0) * 2e-3 })                       // max rises in every chunk
        rows.append((0..<v).map { Float(v - $0) * 2e-3 })                   // max in the first chunk
        var late = rng.normals(v, scale: 1.5); late[v - 3] = 25; rows.append(late)
        var mid = rng.normals(v, scale: 1e-3); mid[4100] = 0.5; rows.append(mid)
        let n = rows.count
        let targets: [Int32] = [Int32(v - 1), 5, Int32(v - 3), 17]
        let z = Buf(rows.flatMap { $0 }), t = IBuf(targets)
        let logp = Buf(zeros: n), lse = Buf(zeros: n), sc = Buf(zeros: n), ent = Buf(zeros: n)
        let ce = Buf(zeros: n), ceLse = Buf(zeros: n)
        tokenLogprobForward(logp.p, lse.p, z.cp, t.cp, n: n, v: v, temperature: temp)
        selfCertaintyForward(sc.p, z.cp, n: n, v: v)
        entropyForward(ent.p, z.cp, n: n, v: v)
        crossEntropyForward(ce.p, ceLse.p, z.cp, t.cp, n: n, v: v)
        var rLogp: [Double] = [], rLse: [Double] = [], rSC: [Double] = [], rEnt: [Double] = [], rCE: [Double] = []
        for (i, r) in rows.enumerated() {
            let d = r.map(Double.init)
            let scaled = d.map { $0 / Double(temp) }
            let l1 = lseDouble(d[...]), lt = lseDouble(scaled[...])
            rLse.append(lt)
            rLogp.append(scaled[Int(targets[i])] - lt)
            rCE.append(l1 - d[Int(targets[i])])
            rSC.append(l1 - d.reduce(0, +) / Double(v) - Foundation.log(Double(v)))
            rEnt.append(-d.reduce(0) { $0 + Foundation.exp($1 - l1) * ($1 - l1) })
        }
        expectClose(logp.array, rLogp, atol: 1e-5, rtol: 1e-6, "logp")
        expectClose(lse.array, rLse, atol: 1e-5, rtol: 1e-6, "lse")
        expectClose(ce.array, rCE, atol: 1e-5, rtol: 1e-6, "cross-entropy")
        expectClose(sc.array, rSC, atol: 1e-6, rtol: 1e-6, "self-certainty")
        expectClose(ent.array, rEnt, atol: 1e-5, rtol: 1e-6, "entropy")
    }

    /// Many rows at a realistic vocabulary: the parallel split must give the same per-row results as row by row.
    @Test func parallelRowsMatchSingleRows() {
        let n = 6, v = 50_000
        var rng = TestRNG(seed: 9)
        let z = Buf(rng.normals(n * v, scale: 3)), t = IBuf((0..<n).map { Int32($0 * 7919 % v) })
        let logp = Buf(zeros: n), lse = Buf(zeros: n), sc = Buf(zeros: n)
        tokenLogprobForward(logp.p, lse.p, z.cp, t.cp, n: n, v: v, temperature: 0.9)
        selfCertaintyForward(sc.p, z.cp, n: n, v: v)
        let one = Buf(zeros: 1), oneL = Buf(zeros: 1), oneS = Buf(zeros: 1)
        for i in 0..<n {
            tokenLogprobForward(one.p, oneL.p, z.cp + i * v, t.cp + i, n: 1, v: v, temperature: 0.9)
            selfCertaintyForward(oneS.p, z.cp + i * v, n: 1, v: v)
            #expect(one.array[0] == logp.array[i] && oneL.array[0] == lse.array[i] && oneS.array[0] == sc.array[i])
        }
    }

    /// Opt-in timing (RLIF_BENCH=1) at Qwen2.5's vocabulary.
    @Test(.enabled(if: ProcessInfo.processInfo.environment["RLIF_BENCH"] == "1", "set RLIF_BENCH=1"))
    func benchmark() {
        let n = 64, v = 151_936
        var rng = TestRNG(seed: 1)
        let z = Buf(rng.normals(n * v, scale: 3)), t = IBuf((0..<n).map { Int32($0 * 31) })
        let a = Buf(zeros: n), b = Buf(zeros: n), dz = Buf(zeros: n * v), g = Buf([Float](repeating: 1, count: n))
        func time(_ f: () -> Void) -> Double {
            var best = Double.infinity
            for _ in 0..<3 {
                let t0 = DispatchTime.now().uptimeNanoseconds; f()
                best = min(best, Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e6)
            }
            return best
        }
        let lp = time { tokenLogprobForward(a.p, b.p, z.cp, t.cp, n: n, v: v, temperature: 1) }
        let lpb = time { tokenLogprobBackward(dz.p, g.cp, z.cp, b.cp, t.cp, n: n, v: v, temperature: 1) }
        let sc = time { selfCertaintyForward(a.p, z.cp, n: n, v: v) }
        let en = time { entropyForward(a.p, z.cp, n: n, v: v) }
        print("logits 64x151936: logprob fwd \(lp) ms, bwd \(lpb) ms, self-certainty \(sc) ms, entropy \(en) ms")
    }
}
