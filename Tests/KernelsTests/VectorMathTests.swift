import Foundation
import Testing
import TestSupport
@testable import Kernels

@Suite struct VectorMathTests {
    /// Error of `got` in units in the last place of the correctly rounded float result.
    func ulps(_ got: Float, _ x: Float) -> Double {
        let exact = Foundation.exp(Double(x))
        let ref = Float(exact)
        return abs(Double(got) - exact) / Double(ref.ulp)
    }

    @Test func expWithinTwoUlpOverNormalRange() {
        // Dense sweep of [-87.33, 88.72] plus random points; x values hit every range-reduction interval.
        var worst = 0.0, worstX: Float = 0
        var xs: [Float] = []
        let lo: Float = -87.33, hi: Float = 88.72
        let steps = 400_000
        for i in 0...steps { xs.append(lo + (hi - lo) * Float(i) / Float(steps)) }
        var rng = TestRNG(seed: 7)
        for _ in 0..<100_000 { xs.append(Float(rng.uniform() * 20 - 10)) }
        xs += [0, -0.0, 1e-8, -1e-8, 0.5, -0.5, 88.3, 88.4, 88.5, 88.7, 88.72, -87.3]
        let out = UnsafeMutablePointer<Float>.allocate(capacity: xs.count)
        defer { out.deallocate() }
        xs.withUnsafeBufferPointer { VectorMath.exp(out, $0.baseAddress!, count: xs.count) }
        for (i, x) in xs.enumerated() {
            let u = ulps(out[i], x)
            if u > worst { worst = u; worstX = x }
        }
        #expect(worst <= 2.0, "max ulp error \(worst) at x=\(worstX)")
    }

    @Test func expLimits() {
        // Below ln(FLT_MIN) the true result is subnormal: flushed, so absolute error < FLT_MIN.
        for x: Float in [-87.34, -88, -100, -103.9, -104, -1000, -Float.greatestFiniteMagnitude] {
            let e = VectorMath.exp(x)
            #expect(e >= 0 && Double(e) <= Double(Float.leastNormalMagnitude), "exp(\(x)) = \(e)")
            #expect(abs(Double(e) - Foundation.exp(Double(x))) < Double(Float.leastNormalMagnitude))
        }
        #expect(VectorMath.exp(-Float.infinity) == 0)
        #expect(VectorMath.exp(Float.infinity) == .infinity)
        #expect(VectorMath.exp(89) == .infinity)
        #expect(VectorMath.exp(Float.nan).isNaN)
        // Mixed lanes, incl. one near overflow (2ⁿ split in two halves) and one flushed.
        let v = VectorMath.exp(SIMD8<Float>(1, -1, 88.6, 0, -50, 2, -87.5, 10))
        for (i, x) in [Float(1), -1, 88.6, 0, -50, 2, -87.5, 10].enumerated() where x > -87.3 {
            #expect(ulps(v[i], x) <= 2, "lane \(i) x=\(x): \(v[i])")
        }
    }
}
