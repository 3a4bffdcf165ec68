import Foundation
import Kernels
import Testing
import TestSupport

/// `loraForward` / `loraBackward` against the definition computed in Double (y = s·B·A·x; the gradients of
/// L = Σ y ⊙ G written out by hand), with shapes that take both Gemm routes (one row: sgemv; 5 and 40 rows:
/// skinny / BLAS). The whole-model check against PEFT is LoRAParityTests.
@Suite struct LoRAKernelTests {
    @Test(arguments: [1, 5, 40])
    func forwardAndBackwardMatchTheDefinition(_ n: Int) {
        let c = 24, oc = 20, r = 3, s: Float = 2.5
        var rng = SeededGenerator(seed: UInt64(n))
        func rand(_ k: Int) -> [Float] { (0..<k).map { _ in Float.random(in: -1...1, using: &rng) } }
        let x = rand(n * c), a = rand(r * c), b = rand(oc * r), base = rand(n * oc), g = rand(n * oc)
        let dx0 = rand(n * c), da0 = rand(r * c), db0 = rand(oc * r)   // accumulate: start non-zero

        // Definition in Double.
        var u = [Double](repeating: 0, count: n * r), y = base.map(Double.init)
        for i in 0..<n { for k in 0..<r { for j in 0..<c { u[i * r + k] += Double(x[i * c + j]) * Double(a[k * c + j]) } } }
        for i in 0..<n { for o in 0..<oc { for k in 0..<r { y[i * oc + o] += Double(s) * u[i * r + k] * Double(b[o * r + k]) } } }
        var du = [Double](repeating: 0, count: n * r)
        for i in 0..<n { for k in 0..<r { for o in 0..<oc { du[i * r + k] += Double(s) * Double(g[i * oc + o]) * Double(b[o * r + k]) } } }
        var dB = db0.map(Double.init), dA = da0.map(Double.init), dX = dx0.map(Double.init)
        for o in 0..<oc { for k in 0..<r { for i in 0..<n { dB[o * r + k] += Double(s) * Double(g[i * oc + o]) * u[i * r + k] } } }
        for k in 0..<r { for j in 0..<c { for i in 0..<n { dA[k * c + j] += du[i * r + k] * Double(x[i * c + j]) } } }
        for i in 0..<n { for j in 0..<c { for k in 0..<r { dX[i * c + j] += du[i * r + k] * Double(a[k * c + j]) } } }

        let out = Buf(base), uB = Buf(zeros: n * r)
        let xB = Buf(x), aB = Buf(a), bB = Buf(b), gB = Buf(g)
        loraForward(out.p, uB.p, xB.cp, aB.cp, bB.cp, n: n, c: c, oc: oc, r: r, scale: s)
        expectClose(out.array, y, atol: 1e-5, rtol: 1e-5, "y (n \(n))")
        expectClose(uB.array, u, atol: 1e-5, rtol: 1e-5, "u = A·x (n \(n))")
        let dxB = Buf(dx0), daB = Buf(da0), dbB = Buf(db0), scratch = Buf(zeros: n * r)
        loraBackward(dxB.p, daB.p, dbB.p, scratch.p, gB.cp, xB.cp, uB.cp, aB.cp, bB.cp, n: n, c: c, oc: oc, r: r, scale: s)
        expectClose(dbB.array, dB, atol: 1e-4, rtol: 1e-5, "dB (n \(n))")
        expectClose(daB.array, dA, atol: 1e-4, rtol: 1e-5, "dA (n \(n))")
        expectClose(dxB.array, dX, atol: 1e-4, rtol: 1e-5, "dx (n \(n))")

        // A strided output (decode's fused gate|up rows): only the addressed columns change.
        let wide = Buf(zeros: n * 2 * oc)
        for i in 0..<n { for o in 0..<oc { wide.p[i * 2 * oc + oc + o] = base[i * oc + o] } }
        loraForward(wide.p + oc, uB.p, xB.cp, aB.cp, bB.cp, n: n, c: c, oc: oc, r: r, scale: s, ldOut: 2 * oc)
        let w = wide.array
        expectClose((0..<(n * oc)).map { w[($0 / oc) * 2 * oc + oc + $0 % oc] }, y, atol: 1e-5, rtol: 1e-5, "strided y (n \(n))")
        #expect((0..<(n * oc)).allSatisfy { w[($0 / oc) * 2 * oc + $0 % oc] == 0 }, "strided write touched the other half")
    }
}
