import CBLAS
import Testing

/// cblas_sgemm against a naive triple loop, for all four transpose combinations and odd shapes.
@Suite struct BLASShimTests {
    func naive(_ a: [Float], _ b: [Float], m: Int, n: Int, k: Int, ta: Bool, tb: Bool) -> [Float] {
        var c = [Float](repeating: 0, count: m * n)
        for i in 0..<m { for j in 0..<n {
            var s: Double = 0
            for p in 0..<k {
                let av = ta ? a[p * m + i] : a[i * k + p]
                let bv = tb ? b[j * k + p] : b[p * n + j]
                s += Double(av) * Double(bv)
            }
            c[i * n + j] = Float(s)
        } }
        return c
    }

    @Test(arguments: [(false, false), (true, false), (false, true), (true, true)])
    func sgemmMatchesNaive(ta: Bool, tb: Bool) {
        let m = 7, n = 13, k = 29
        var rng = SystemRandomNumberGenerator()
        let a = (0..<(m * k)).map { _ in Float.random(in: -1...1, using: &rng) }
        let b = (0..<(k * n)).map { _ in Float.random(in: -1...1, using: &rng) }
        var c = [Float](repeating: 0, count: m * n)
        cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
                    Int32(m), Int32(n), Int32(k), 1, a, Int32(ta ? m : k), b, Int32(tb ? k : n), 0, &c, Int32(n))
        let ref = naive(a, b, m: m, n: n, k: k, ta: ta, tb: tb)
        var maxDiff: Float = 0
        for i in 0..<(m * n) { maxDiff = max(maxDiff, abs(c[i] - ref[i])) }
        #expect(maxDiff < 1e-4, "max abs diff \(maxDiff)")
    }
}
