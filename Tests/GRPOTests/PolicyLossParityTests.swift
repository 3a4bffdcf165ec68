import Testing
import TestSupport
@testable import GRPO

/// Compares `policyLoss` with the PyTorch/verl reference in Tests/Fixtures/grpo/policy_loss.json
/// (scripts/ref/grpo_fixtures.py: float64 autograd on the padded (S, Tmax) layout).
///
/// Tolerances: the Double path must agree to ~1e-12 (same formulas, different summation order); the Float path
/// to float32 rounding (loss atol 1e-6; dLogp atol 1e-7 + rtol 1e-4 on values of order 1/N).
@Suite struct PolicyLossParityTests {
    struct Cfg: Decodable { var clipLow, clipHigh, klCoef, tisCap: Double; var dualClip: Double?; var tis, onPolicy: Bool }
    struct Case: Decodable {
        var aggregation, variant: String; var config: Cfg
        var loss, pgLoss, klLoss, clipFraction, approxKL, meanKL, meanRatio: Double
        var dLogp: [Double]
    }
    struct F: Decodable {
        var tokenCount: Int; var offsets, lengths: [Int]; var constantNormalizer: Double
        var logp, oldLogp, refLogp, rolloutLogp, mask, advantages: [Double]
        var cases: [Case]
    }

    static func config(_ c: Case, _ f: F) -> PolicyLossConfig {
        let agg: LossAggregation
        switch c.aggregation {
        case "tokenMean": agg = .tokenMean
        case "seqMeanTokenMean": agg = .seqMeanTokenMean
        case "seqMeanTokenSum": agg = .seqMeanTokenSum
        default: agg = .constantNormalizer(f.constantNormalizer)
        }
        return PolicyLossConfig(clipLow: c.config.clipLow, clipHigh: c.config.clipHigh, dualClip: c.config.dualClip,
                                klCoef: c.config.klCoef, tisCap: c.config.tisCap, aggregation: agg)
    }

    @Test func doublePathMatchesTorch() throws {
        let f = try loadFixture(F.self, "policy_loss.json")
        #expect(f.cases.count == 20)
        for c in f.cases {
            let name = "\(c.aggregation)/\(c.variant)"
            let r = try policyLoss(logp: f.logp, oldLogp: c.config.onPolicy ? nil : f.oldLogp, refLogp: f.refLogp,
                                   rolloutLogp: c.config.tis ? f.rolloutLogp : nil, advantages: f.advantages,
                                   offsets: f.offsets, lengths: f.lengths, mask: f.mask, config: Self.config(c, f))
            expectClose(r.loss, c.loss, atol: 1e-12, rtol: 1e-10, "\(name) loss")
            expectClose(r.pgLoss, c.pgLoss, atol: 1e-12, rtol: 1e-10, "\(name) pgLoss")
            expectClose(r.klLoss, c.klLoss, atol: 1e-12, rtol: 1e-10, "\(name) klLoss")
            expectClose(r.dLogp, c.dLogp, atol: 1e-13, rtol: 1e-10, "\(name) dLogp")
            expectClose(r.clipFraction, c.clipFraction, atol: 1e-12, rtol: 0, "\(name) clipFraction")
            expectClose(r.approxKL, c.approxKL, atol: 1e-12, rtol: 1e-10, "\(name) approxKL")
            expectClose(r.meanKL, c.meanKL, atol: 1e-12, rtol: 1e-10, "\(name) meanKL")
            expectClose(r.meanRatio, c.meanRatio, atol: 1e-12, rtol: 1e-10, "\(name) meanRatio")
        }
    }

    @Test func floatPathMatchesTorch() throws {
        let f = try loadFixture(F.self, "policy_loss.json")
        let fl = { (a: [Double]) in a.map(Float.init) }
        for c in f.cases {
            let name = "\(c.aggregation)/\(c.variant) (Float)"
            let r = try policyLoss(logp: fl(f.logp), oldLogp: c.config.onPolicy ? nil : fl(f.oldLogp),
                                   refLogp: fl(f.refLogp), rolloutLogp: c.config.tis ? fl(f.rolloutLogp) : nil,
                                   advantages: fl(f.advantages), offsets: f.offsets, lengths: f.lengths, mask: fl(f.mask),
                                   config: Self.config(c, f))
            expectClose(r.loss, c.loss, atol: 1e-6, rtol: 1e-5, "\(name) loss")
            expectClose(r.dLogp, c.dLogp, atol: 1e-7, rtol: 1e-4, "\(name) dLogp")
            expectClose(r.clipFraction, c.clipFraction, atol: 1e-12, rtol: 0, "\(name) clipFraction")
            expectClose(r.meanKL, c.meanKL, atol: 1e-6, rtol: 1e-5, "\(name) meanKL")
        }
    }
}
