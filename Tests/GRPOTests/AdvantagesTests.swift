import Testing
import TestSupport
@testable import GRPO

@Suite struct AdvantagesTests {
    @Test func handComputedGroup() throws {
        // Group [1, 2, 3, 6]: mean 3, unbiased var (4+1+0+9)/3 = 14/3, population var 14/4.
        let r: [Float] = [1, 2, 3, 6]
        let su = (14.0 / 3).squareRoot(), sp = (14.0 / 4).squareRoot()
        expectClose(try groupAdvantages(rewards: r, groupSize: 4, unbiasedStd: true),
                    [-2, -1, 0, 3].map { $0 / (su + 1e-6) }, atol: 1e-6, rtol: 1e-6, "unbiased")
        expectClose(try groupAdvantages(rewards: r, groupSize: 4, unbiasedStd: false),
                    [-2, -1, 0, 3].map { $0 / (sp + 1e-6) }, atol: 1e-6, rtol: 1e-6, "population")
        expectClose(try groupAdvantages(rewards: r, groupSize: 4, unbiasedStd: true, scaleByStd: false),
                    [-2.0, -1, 0, 3], atol: 0, rtol: 0, "Dr.GRPO (no std)")
    }

    @Test func constantGroupIsExactlyZero() throws {
        let r: [Float] = [0.1, 0.1, 0.1, 5, 5, 5, 1, 2, 3]
        let a = try groupAdvantages(rewards: r, groupSize: 3, unbiasedStd: true)
        #expect(Array(a[0..<6]) == [0, 0, 0, 0, 0, 0])
        #expect(a.allSatisfy { $0.isFinite })
        #expect(a[6] < 0 && a[8] > 0)
    }

    @Test func matchesTorchFixture() throws {
        struct Case: Decodable { var unbiased: Bool; var scale: Bool; var epsilon: Float; var advantages: [Double] }
        struct F: Decodable {
            var groupSize: Int; var rewards: [Float]; var cases: [Case]
            var singletonRewards: [Float]; var singletonAdvantages: [Double]
        }
        let f = try loadFixture(F.self, "advantages.json")
        for c in f.cases {
            let a = try groupAdvantages(rewards: f.rewards, groupSize: f.groupSize, epsilon: c.epsilon,
                                        unbiasedStd: c.unbiased, scaleByStd: c.scale)
            expectClose(a, c.advantages, atol: 1e-6, rtol: 1e-5, "advantages unbiased=\(c.unbiased) scale=\(c.scale)")
        }
        expectClose(try groupAdvantages(rewards: f.singletonRewards, groupSize: 1), f.singletonAdvantages,
                    atol: 1e-6, rtol: 1e-6, "singleton groups (verl: mean 0, std 1)")
    }

    @Test func rejectsBadInput() {
        #expect(throws: GRPOError.self) { try groupAdvantages(rewards: [1, 2, 3], groupSize: 2) }
        #expect(throws: GRPOError.self) { try groupAdvantages(rewards: [1, 2], groupSize: 0) }
        #expect(throws: GRPOError.self) { try groupAdvantages(rewards: [1, .nan], groupSize: 2) }
        #expect(throws: GRPOError.self) { try groupAdvantages(rewards: [1, 2], groupSize: 2, epsilon: -1) }
    }
}
