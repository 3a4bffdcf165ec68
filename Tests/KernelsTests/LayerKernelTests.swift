import Foundation
import Testing
import TestSupport
import Kernels

/// Fixture comparisons (scripts/ref/kernel_fixtures.py, float64 torch references) for the per-layer kernels.
/// Every backward is run twice on zeroed gradient buffers: the second result must be exactly twice the reference
/// (within tolerance), which checks that it accumulates (+=) rather than overwrites.
@Suite struct LayerKernelTests {
    @Test func embedding() throws {
        let fx = try KernelFixture("embedding")
        let n = 7, c = 13, v = 11
        let table = try fx.buf("table"), tokens = try fx.int32s("tokens")
        let out = Buf(zeros: n * c)
        embeddingForward(out.p, tokens.cp, table.cp, n: n, c: c)
        expectClose(out.array, try fx.floats("out"), atol: 0, rtol: 0, "embedding out")
        embeddingForward(out.p, tokens.cp, table.cp, n: n, c: c, vocab: v)
        expectClose(out.array, try fx.floats("out"), atol: 0, rtol: 0, "embedding out (checked)")
        let dOut = try fx.buf("dOut"), dTable = Buf(zeros: v * c)
        let ref = try fx.floats("dTable")
        embeddingBackward(dTable.p, dOut.cp, tokens.cp, n: n, c: c)
        expectClose(dTable.array, ref, atol: 1e-6, rtol: 1e-6, "dTable")
        embeddingBackward(dTable.p, dOut.cp, tokens.cp, n: n, c: c)
        expectClose(dTable.array, times(ref, 2), atol: 1e-6, rtol: 1e-6, "dTable x2")
    }

    @Test func linear() throws {
        let fx = try KernelFixture("linear")
        let n = 7, c = 13, oc = 9
        let x = try fx.buf("inp"), w = try fx.buf("weight"), b = try fx.buf("bias")
        let out = Buf(zeros: n * oc)
        linearForward(out.p, x.cp, w.cp, b.cp, n: n, c: c, oc: oc)
        expectClose(out.array, try fx.floats("out"), atol: 1e-5, rtol: 1e-5, "linear out")
        let dOut = try fx.buf("dOut")
        let dx = Buf(zeros: n * c), dw = Buf(zeros: oc * c), db = Buf(zeros: oc)
        for rep in 1...2 {
            linearBackward(dx.p, dw.p, db.p, dOut.cp, x.cp, w.cp, n: n, c: c, oc: oc)
            let s = Float(rep)
            expectClose(dx.array, times(try fx.floats("dInp"), s), atol: 1e-5, rtol: 1e-5, "dInp x\(rep)")
            expectClose(dw.array, times(try fx.floats("dWeight"), s), atol: 1e-5, rtol: 1e-5, "dWeight x\(rep)")
            expectClose(db.array, times(try fx.floats("dBias"), s), atol: 1e-5, rtol: 1e-5, "dBias x\(rep)")
        }
        // nil gradients are skipped, nil bias means none.
        let dx2 = Buf(zeros: n * c)
        linearBackward(dx2.p, nil, nil, dOut.cp, x.cp, w.cp, n: n, c: c, oc: oc)
        expectClose(dx2.array, try fx.floats("dInp"), atol: 1e-5, rtol: 1e-5, "dInp alone")
        linearForward(out.p, x.cp, w.cp, nil, n: n, c: c, oc: oc)
        let noBias = zip(try fx.floats("out"), (0..<(n * oc)).map { b.array[$0 % oc] }).map { $0 - $1 }
        expectClose(out.array, noBias, atol: 1e-5, rtol: 1e-5, "linear out without bias")
    }

    @Test func rmsnorm() throws {
        let fx = try KernelFixture("rmsnorm")
        let n = 7, c = 13
        let x = try fx.buf("inp"), w = try fx.buf("weight")
        let out = Buf(zeros: n * c), rstd = Buf(zeros: n)
        rmsnormForward(out.p, rstd.p, x.cp, w.cp, n: n, c: c, eps: try fx.scalar("eps"))
        expectClose(out.array, try fx.floats("out"), atol: 1e-5, rtol: 1e-5, "rmsnorm out")
        expectClose(rstd.array, try fx.floats("rstd"), atol: 1e-6, rtol: 1e-5, "rmsnorm rstd")
        let dOut = try fx.buf("dOut"), dx = Buf(zeros: n * c), dw = Buf(zeros: c)
        for rep in 1...2 {
            rmsnormBackward(dx.p, dw.p, dOut.cp, x.cp, w.cp, rstd.cp, n: n, c: c)
            expectClose(dx.array, times(try fx.floats("dInp"), Float(rep)), atol: 1e-5, rtol: 1e-4, "dInp x\(rep)")
            expectClose(dw.array, times(try fx.floats("dWeight"), Float(rep)), atol: 1e-5, rtol: 1e-4, "dWeight x\(rep)")
        }
    }

    @Test func rmsnormParallelMatchesSerialRows() {
        // Big enough to split over workers: every row must equal the same row normalised alone.
        let n = 64, c = 2048
        var rng = TestRNG(seed: 3)
        let x = Buf(rng.normals(n * c)), w = Buf(rng.normals(c, scale: 0.1, mean: 1)), dy = Buf(rng.normals(n * c))
        let out = Buf(zeros: n * c), rstd = Buf(zeros: n)
        rmsnormForward(out.p, rstd.p, x.cp, w.cp, n: n, c: c, eps: 1e-6)
        let dx = Buf(zeros: n * c), dw = Buf(zeros: c)
        rmsnormBackward(dx.p, dw.p, dy.cp, x.cp, w.cp, rstd.cp, n: n, c: c)
        let out1 = Buf(zeros: c), rstd1 = Buf(zeros: 1), dx1 = Buf(zeros: c), dwSum = Buf(zeros: c)
        for i in [0, 31, 63] {
            rmsnormForward(out1.p, rstd1.p, x.cp + i * c, w.cp, n: 1, c: c, eps: 1e-6)
            expectClose(out1.array, Array(out.array[(i * c)..<((i + 1) * c)]), atol: 0, rtol: 0, "row \(i)")
            dx1.zero()
            rmsnormBackward(dx1.p, dwSum.p, dy.cp + i * c, x.cp + i * c, w.cp, rstd1.cp, n: 1, c: c)
            expectClose(dx1.array, Array(dx.array[(i * c)..<((i + 1) * c)]), atol: 0, rtol: 0, "dx row \(i)")
        }
        dwSum.zero()
        for i in 0..<n { rmsnormBackward(dx1.p, dwSum.p, dy.cp + i * c, x.cp + i * c, w.cp, rstd.cp + i, n: 1, c: c) }
        expectClose(dw.array, dwSum.array, atol: 1e-4, rtol: 1e-5, "dWeight split vs row by row")
    }

    @Test(arguments: ["a.", "b."]) func rope(prefix: String) throws {
        let fx = try KernelFixture("rope")
        let dims = fx.file.shape(of: prefix + "x")!
        let n = dims[0], h = dims[1], d = dims[2]
        let table = RopeTable(headDim: d, maxPositions: 128, theta: Double(try fx.scalar(prefix + "theta")))
        let x = try fx.buf(prefix + "x"), pos = try fx.int32s(prefix + "positions")
        ropeForward(x.p, pos.cp, table, n: n, nHeads: h)
        expectClose(x.array, try fx.floats(prefix + "out"), atol: 1e-5, rtol: 1e-5, "\(prefix) rope out")
        let g = try fx.buf(prefix + "dOut")
        ropeBackward(g.p, pos.cp, table, n: n, nHeads: h)
        expectClose(g.array, try fx.floats(prefix + "dx"), atol: 1e-5, rtol: 1e-5, "\(prefix) rope dx")
        // Backward is the inverse: applied to the output it restores the input.
        ropeBackward(x.p, pos.cp, table, n: n, nHeads: h)
        expectClose(x.array, try fx.floats(prefix + "x"), atol: 1e-5, rtol: 1e-5, "\(prefix) inverse")
    }

    @Test func swiglu() throws {
        let fx = try KernelFixture("swiglu")
        let count = 7 * 13
        let g = try fx.buf("gate"), u = try fx.buf("up"), out = Buf(zeros: count)
        swigluForward(out.p, g.cp, u.cp, count: count)
        expectClose(out.array, try fx.floats("out"), atol: 1e-5, rtol: 1e-5, "swiglu out")
        let dOut = try fx.buf("dOut"), dg = Buf(zeros: count), du = Buf(zeros: count)
        for rep in 1...2 {
            swigluBackward(dg.p, du.p, dOut.cp, g.cp, u.cp, count: count)
            expectClose(dg.array, times(try fx.floats("dGate"), Float(rep)), atol: 1e-5, rtol: 1e-5, "dGate x\(rep)")
            expectClose(du.array, times(try fx.floats("dUp"), Float(rep)), atol: 1e-5, rtol: 1e-5, "dUp x\(rep)")
        }
    }

    @Test func singleThreadedBLASSectionsRestoreThreadCount() {
        let before = Gemm.threads
        Gemm.withSingleThreadedBLAS {
            #expect(Gemm.activeBLASThreads == 1)
            #expect(Gemm.threads == before)   // reports the value to restore
            Gemm.withSingleThreadedBLAS {}      // a nested section must not restore early
            #expect(Gemm.activeBLASThreads == 1)
        }
        // (Other tests may be inside their own section now, so only the value to restore is checked.)
        #expect(Gemm.threads == before)
    }

    @Test func elementwise() {
        let a = Buf((0..<13).map { Float($0) }), b = Buf((0..<13).map { Float($0) * 0.5 }), out = Buf(zeros: 13)
        addForward(out.p, a.cp, b.cp, count: 13)
        expectClose(out.array, (0..<13).map { Float($0) * 1.5 }, atol: 0, rtol: 0, "add")
        accumulate(out.p, a.cp, count: 13)
        expectClose(out.array, (0..<13).map { Float($0) * 2.5 }, atol: 0, rtol: 0, "accumulate")
        axpy(out.p, alpha: -2, b.cp, count: 13)
        expectClose(out.array, (0..<13).map { Float($0) * 1.5 }, atol: 0, rtol: 0, "axpy")
        scale(out.p, by: 2, count: 13)
        expectClose(out.array, (0..<13).map { Float($0) * 3 }, atol: 0, rtol: 0, "scale")
        fill(out.p, 7, count: 13)
        expectClose(out.array, [Float](repeating: 7, count: 13), atol: 0, rtol: 0, "fill")
    }
}
