import Foundation
import Testing
import TestSupport
@testable import Sampling

@Suite struct TokenSamplerTests {
    func logSoftmax(_ z: [Float], t: Double) -> [Double] {
        let m = z.map { Double($0) / t }.max()!
        let lse = m + log(z.map { exp(Double($0) / t - m) }.reduce(0, +))
        return z.map { Double($0) / t - lse }
    }

    func draws(_ z: [Float], _ p: SamplingParameters, n: Int, seed: UInt64 = 7) -> [Int] {
        let s = TokenSampler(vocabularySize: z.count)
        var rng = RandomSource(seed: seed)
        var counts = [Int](repeating: 0, count: z.count)
        for _ in 0..<n { counts[Int(s.sample(z, params: p, rng: &rng)!.token)] += 1 }
        return counts
    }

    @Test func greedyTakesFirstMaximumAndLogprobAtTemperatureOne() throws {
        let z: [Float] = [0.5, 2.0, -1.0, 2.0, 0.0]
        let s = TokenSampler(vocabularySize: z.count)
        var rng = RandomSource(seed: 1)
        let r = try #require(s.sample(z, params: SamplingParameters(temperature: 0), rng: &rng))
        #expect(r.token == 1)
        expectClose(Double(r.logprob), logSoftmax(z, t: 1)[1], atol: 1e-6, "greedy logprob")
    }

    @Test func logprobUsesTemperatureOverTheUnfilteredVocabulary() throws {
        let z: [Float] = [1.0, 3.0, -2.0, 0.25, 2.5]
        let s = TokenSampler(vocabularySize: z.count)
        var rng = RandomSource(seed: 3)
        for params in [SamplingParameters(temperature: 0.7), SamplingParameters(temperature: 0.7, topK: 2),
                       SamplingParameters(temperature: 0.7, topP: 0.5)] {
            for _ in 0..<50 {
                let r = try #require(s.sample(z, params: params, rng: &rng))
                expectClose(Double(r.logprob), logSoftmax(z, t: 0.7)[Int(r.token)], atol: 1e-6, "logprob \(params)")
            }
        }
    }

    @Test func unfilteredFrequenciesFollowSoftmax() {
        let z: [Float] = [0.0, 1.0, 2.0, -1.0]
        let n = 40_000
        let counts = draws(z, SamplingParameters(temperature: 1.3), n: n)
        let p = logSoftmax(z, t: 1.3).map { exp($0) }
        for j in 0..<z.count {
            let sd = (p[j] * (1 - p[j]) / Double(n)).squareRoot()
            #expect(abs(Double(counts[j]) / Double(n) - p[j]) < 5 * sd, "token \(j): \(counts[j]) vs p \(p[j])")
        }
    }

    @Test func topKKeepsOnlyTheKMostLikelyRenormalised() {
        let z: [Float] = [0.0, 3.0, 1.0, 2.9, -5.0]
        let n = 20_000
        let counts = draws(z, SamplingParameters(temperature: 1, topK: 2), n: n)
        #expect(counts[0] == 0 && counts[2] == 0 && counts[4] == 0)
        let p1 = 1 / (1 + exp(Double(2.9 - 3.0)))
        let sd = (p1 * (1 - p1) / Double(n)).squareRoot()
        #expect(abs(Double(counts[1]) / Double(n) - p1) < 5 * sd)
        // k = 1 is greedy at any temperature.
        #expect(draws(z, SamplingParameters(temperature: 5, topK: 1), n: 500)[1] == 500)
    }

    @Test func topPKeepsTheSmallestPrefixReachingP() {
        // Probabilities 0.4, 0.3, 0.2, 0.1: top_p 0.5 keeps {0, 1} (0.4 < 0.5 <= 0.7); 0.4 keeps {0} only.
        let z: [Float] = [0.4, 0.3, 0.2, 0.1].map { Float(log($0)) }
        let c = draws(z, SamplingParameters(temperature: 1, topP: 0.5), n: 20_000)
        #expect(c[2] == 0 && c[3] == 0)
        let p0 = 0.4 / 0.7, sd = (p0 * (1 - p0) / 20_000).squareRoot()
        #expect(abs(Double(c[0]) / 20_000 - p0) < 5 * sd)
        #expect(draws(z, SamplingParameters(temperature: 1, topP: 0.35), n: 1000)[0] == 1000)
        // top-k then top-p, as HF applies them: k = 3 keeps {0,1,2} (mass 0.9); p = 0.8 of that = 0.72 → {0,1,2}.
        let ck = draws(z, SamplingParameters(temperature: 1, topP: 0.8, topK: 3), n: 5000)
        #expect(ck[3] == 0 && ck[2] > 0)
    }

    @Test func sameSeedSameTokensDifferentStreamsDiffer() {
        let z: [Float] = (0..<50).map { Float(sin(Double($0))) }
        let p = SamplingParameters(temperature: 1, topP: 0.95, topK: 40)
        let s = TokenSampler(vocabularySize: z.count)
        func run(_ stream: UInt64) -> [Int32] {
            var rng = RandomSource(seed: 99, stream: stream)
            return (0..<64).map { _ in s.sample(z, params: p, rng: &rng)!.token }
        }
        #expect(run(0) == run(0))
        #expect(run(0) != run(1))
    }

    @Test func nonFiniteLogitsAreRefused() {
        let s = TokenSampler(vocabularySize: 3)
        var rng = RandomSource(seed: 1)
        #expect(s.sample([0, .nan, 1], params: SamplingParameters(), rng: &rng) == nil)
        #expect(s.sample([0, .infinity, 1], params: SamplingParameters(), rng: &rng) == nil)
        #expect(s.sample([.nan, .nan, .nan], params: SamplingParameters(temperature: 0), rng: &rng) == nil)
    }

    @Test func invalidParametersNameTheField() {
        #expect(throws: SamplingError.self) { try SamplingParameters(temperature: -1).validate() }
        do { try SamplingParameters(topP: 0).validate(); Issue.record("top_p 0 accepted") } catch {
            #expect(error.description.contains("top_p"))
        }
    }

    @Test func partialSortMatchesFullSort() {
        var rng = RandomSource(seed: 5)
        for _ in 0..<50 {
            let n = Int(rng.next() % 200) + 1, k = Int(rng.next() % UInt64(n)) + 1
            let vals = (0..<n).map { _ in Int32(rng.next() % 50) }
            var idx = (0..<Int32(n)).map { $0 }
            let less: (Int32, Int32) -> Bool = { a, b in vals[Int(a)] > vals[Int(b)] || (vals[Int(a)] == vals[Int(b)] && a < b) }
            idx.withUnsafeMutableBufferPointer { partialSortPrefix($0.baseAddress!, count: n, k: k, by: less) }
            let full = (0..<Int32(n)).sorted(by: less)
            #expect(Array(idx[0..<k]) == Array(full[0..<k]))
        }
    }
}

private extension TokenSampler {
    func sample(_ z: [Float], params: SamplingParameters, rng: inout RandomSource) -> (token: Int32, logprob: Float)? {
        z.withUnsafeBufferPointer { sample($0.baseAddress!, params: params, rng: &rng) }
    }
}
