import Foundation
import Testing
import TestSupport
@testable import GRPO

/// A random variable-length batch in Double, kept away from every kink of the loss (clip boundaries, dual clip,
/// KL value clamp) so central differences are valid.
struct RandomBatch {
    var logp: [Double], old: [Double], ref: [Double], roll: [Double], mask: [Double]
    var advSeq: [Double], advTok: [Double]
    var offsets: [Int], lengths: [Int]

    init(seed: UInt64, config: PolicyLossConfig) {
        var rng = SeededGenerator(seed: seed)
        lengths = (0..<6).map { _ in Int.random(in: 1...9, using: &rng) }
        offsets = []
        var cursor = 0
        for (s, l) in lengths.enumerated() {
            if s == 3 { cursor += 1 }  // a gap token that belongs to no sequence
            offsets.append(cursor); cursor += l
        }
        let n = cursor
        advSeq = (0..<lengths.count).map { _ in rng.normal() }
        advTok = (0..<n).map { _ in rng.normal() }
        logp = []; old = []; ref = []; roll = []; mask = []
        let bounds = [1 - config.clipLow, 1 + config.clipHigh] + (config.dualClip.map { [$0] } ?? [])
        for _ in 0..<n {
            let lp = -rng.uniform(0.05, 3)
            var o: Double
            repeat { o = lp + rng.normal(0.3) } while bounds.contains { abs(Foundation.exp(lp - o) - $0) < 1e-3 }
            // An occasional big ratio exercises the dual clip.
            if rng.uniform(0, 1) < 0.2 { o = lp - 1.4 }
            logp.append(lp); old.append(o)
            ref.append(lp + rng.normal(0.4))
            var r: Double
            repeat { r = o + rng.normal(0.5) } while abs(Foundation.exp(o - r) - config.tisCap) < 1e-3
            roll.append(r)
            mask.append(rng.uniform(0, 1) < 0.15 ? 0 : 1)
        }
    }
}

@Suite struct PolicyLossTests {
    // MARK: hand-computed cases

    @Test func clipBranchesByHand() throws {
        // old = 0, A = +1: ratio 1.1 (inside), 1.5 (clipped at 1.2, no gradient).
        let r = try policyLoss(logp: [Foundation.log(1.1), Foundation.log(1.5)], oldLogp: [0, 0], advantages: [1],
                               offsets: [0], lengths: [2], config: PolicyLossConfig(klCoef: 0))
        expectClose(r.loss, (-1.1 - 1.2) / 2, atol: 1e-12, rtol: 0, "loss")
        expectClose(r.dLogp, [-1.1 / 2, 0], atol: 1e-12, rtol: 0, "dLogp")
        expectClose(r.clipFraction, 0.5, atol: 0, rtol: 0, "clipFraction")
        expectClose(r.stats.clipFractionHigh, 0.5, atol: 0, rtol: 0, "clip high")
        expectClose(r.meanRatio, 1.3, atol: 1e-12, rtol: 0, "meanRatio")
        expectClose(r.approxKL, -(Foundation.log(1.1) + Foundation.log(1.5)) / 2, atol: 1e-12, rtol: 0, "approxKL")

        // A = −1: ratio 0.5 → clipped low (loss 0.8, no grad); ratio 2 → unclipped (loss 2, grad −A·ρ = 2);
        // ratio 4 → PPO gives 4, dual clip c = 3 caps it at 3 with no gradient.
        let lp = [Foundation.log(0.5), Foundation.log(2.0), Foundation.log(4.0)]
        let noDual = try policyLoss(logp: lp, oldLogp: [0, 0, 0], advantages: [-1], offsets: [0], lengths: [3],
                                    config: PolicyLossConfig(klCoef: 0, aggregation: .seqMeanTokenSum))
        expectClose(noDual.loss, 0.8 + 2 + 4, atol: 1e-12, rtol: 0, "loss without dual clip")
        expectClose(noDual.dLogp, [0, 2, 4], atol: 1e-12, rtol: 0, "dLogp without dual clip")
        let dual = try policyLoss(logp: lp, oldLogp: [0, 0, 0], advantages: [-1], offsets: [0], lengths: [3],
                                  config: PolicyLossConfig(dualClip: 3, klCoef: 0, aggregation: .seqMeanTokenSum))
        expectClose(dual.loss, 0.8 + 2 + 3, atol: 1e-12, rtol: 0, "loss with dual clip")
        expectClose(dual.dLogp, [0, 2, 0], atol: 1e-12, rtol: 0, "dLogp with dual clip")
        expectClose(dual.stats.dualClipFraction, 1.0 / 3, atol: 1e-15, rtol: 0, "dual clip fraction")
        expectClose(dual.stats.clipFractionLow, 1.0 / 3, atol: 1e-15, rtol: 0, "clip low fraction")
    }

    @Test func klAndTISByHand() throws {
        // A = 0 removes the policy term. ref − logp = ln 2: k3 = 2 − ln 2 − 1, d/dlogp = 1 − 2 = −1.
        let k3 = 1 - Foundation.log(2.0)
        let r = try policyLoss(logp: [-1.0], oldLogp: nil, refLogp: [-1 + Foundation.log(2.0)], advantages: [0],
                               offsets: [0], lengths: [1], config: PolicyLossConfig(klCoef: 0.1))
        expectClose(r.loss, 0.1 * k3, atol: 1e-12, rtol: 0, "β·k3")
        expectClose(r.klLoss, k3, atol: 1e-12, rtol: 0, "k3")
        expectClose(r.meanKL, k3, atol: 1e-12, rtol: 0, "meanKL")
        expectClose(r.dLogp, [-0.1], atol: 1e-12, rtol: 0, "dk3")

        // ref far above logp: k3 = e^3 − 4 ≈ 16 is clamped to 10 (verl) and passes no gradient.
        let c = try policyLoss(logp: [-4.0], oldLogp: nil, refLogp: [-1.0], advantages: [0], offsets: [0], lengths: [1],
                               config: PolicyLossConfig(klCoef: 1))
        expectClose(c.loss, 10, atol: 1e-12, rtol: 0, "clamped k3")
        expectClose(c.dLogp, [0], atol: 0, rtol: 0, "no gradient through the clamp")

        // TIS: old − rollout = ln 3 → w = min(3, 2) = 2; ln 1.5 → w = 1.5. On-policy ratio 1, A = 1: ℓ = −w, grad −w.
        let t = try policyLoss(logp: [-1, -2], oldLogp: [-1, -2], rolloutLogp: [-1 - Foundation.log(3.0), -2 - Foundation.log(1.5)],
                               advantages: [1], offsets: [0], lengths: [2],
                               config: PolicyLossConfig(klCoef: 0, aggregation: .seqMeanTokenSum))
        expectClose(t.loss, -3.5, atol: 1e-12, rtol: 0, "TIS loss")
        expectClose(t.dLogp, [-2, -1.5], atol: 1e-12, rtol: 0, "TIS dLogp")
        expectClose(t.stats.tisCappedFraction, 0.5, atol: 0, rtol: 0, "TIS capped fraction")
        expectClose(t.stats.meanTISWeight, 1.75, atol: 1e-12, rtol: 0, "TIS mean weight")
    }

    @Test func aggregationsByHand() throws {
        // Two sequences, lengths 1 and 3, ratio 1, A = [1, 2] → per-token loss −A.
        let logp: [Double] = [-1, -1, -1, -1]
        func run(_ agg: LossAggregation) throws -> PolicyLossResult<Double> {
            try policyLoss(logp: logp, oldLogp: nil, advantages: [1, 2], offsets: [0, 1], lengths: [1, 3],
                           config: PolicyLossConfig(klCoef: 0, aggregation: agg))
        }
        let tm = try run(.tokenMean), smm = try run(.seqMeanTokenMean), sms = try run(.seqMeanTokenSum)
        let cn = try run(.constantNormalizer(8))
        expectClose(tm.loss, -7.0 / 4, atol: 1e-15, rtol: 0, "token-mean")
        expectClose(tm.dLogp, [-0.25, -0.5, -0.5, -0.5], atol: 1e-15, rtol: 0, "token-mean grad")
        expectClose(smm.loss, -1.5, atol: 1e-15, rtol: 0, "seq-mean-token-mean")
        expectClose(smm.dLogp, [-0.5, -1.0 / 3, -1.0 / 3, -1.0 / 3], atol: 1e-15, rtol: 0, "seq-mean-token-mean grad")
        expectClose(sms.loss, -3.5, atol: 1e-15, rtol: 0, "seq-mean-token-sum")
        expectClose(sms.dLogp, [-0.5, -1, -1, -1], atol: 1e-15, rtol: 0, "seq-mean-token-sum grad")
        expectClose(cn.loss, -7.0 / 8, atol: 1e-15, rtol: 0, "constant normalizer")
        expectClose(cn.dLogp, [-0.125, -0.25, -0.25, -0.25], atol: 1e-15, rtol: 0, "constant normalizer grad")
        #expect(tm.normalizer == 4 && smm.normalizer == 2 && sms.normalizer == 2 && cn.normalizer == 8)

        // A masked token drops out of both numerator and token counts.
        let masked = try policyLoss(logp: logp, oldLogp: nil, advantages: [1, 2], offsets: [0, 1], lengths: [1, 3],
                                    mask: [1, 1, 0, 1], config: PolicyLossConfig(klCoef: 0, aggregation: .seqMeanTokenMean))
        expectClose(masked.loss, (-1 + -2) / 2, atol: 1e-15, rtol: 0, "masked seq-mean-token-mean")
        expectClose(masked.dLogp, [-0.5, -0.5, 0, -0.5], atol: 1e-15, rtol: 0, "masked grad")
        #expect(masked.stats.tokenWeight == 3)
    }

    // MARK: finite differences (Double)

    static let variants: [(String, PolicyLossConfig, useTIS: Bool, perToken: Bool, onPolicy: Bool)] = [
        ("pg", PolicyLossConfig(klCoef: 0), false, false, false),
        ("kl", PolicyLossConfig(klCoef: 0.3), false, false, false),
        ("kl+tis", PolicyLossConfig(klCoef: 0.3), true, false, false),
        ("dual+kl+tis", PolicyLossConfig(clipHigh: 0.28, dualClip: 3, klCoef: 0.3), true, false, false),
        ("perToken+kl", PolicyLossConfig(klCoef: 0.3), false, true, false),
        ("onPolicy+kl+tis", PolicyLossConfig(klCoef: 0.3), true, false, true),
    ]
    static let aggregations: [LossAggregation] = [.tokenMean, .seqMeanTokenMean, .seqMeanTokenSum, .constantNormalizer(37)]

    @Test(arguments: aggregations)
    func finiteDifferences(aggregation: LossAggregation) throws {
        for (vi, v) in Self.variants.enumerated() {
            var config = v.1
            config.aggregation = aggregation
            let b = RandomBatch(seed: 1000 + UInt64(vi), config: config)
            let adv = v.perToken ? b.advTok : b.advSeq
            func loss(_ lp: [Double], analyticOld: Bool) throws -> PolicyLossResult<Double> {
                // On-policy: analytic uses old = nil (logp detached); the FD holds old fixed at the base point.
                let old: [Double]? = v.onPolicy ? (analyticOld ? nil : b.logp) : b.old
                return try policyLoss(logp: lp, oldLogp: old, refLogp: b.ref, rolloutLogp: v.useTIS ? b.roll : nil,
                                      advantages: adv, advantagesPerToken: v.perToken, offsets: b.offsets,
                                      lengths: b.lengths, mask: b.mask, config: config)
            }
            let base = try loss(b.logp, analyticOld: true)
            var fd = [Double](repeating: 0, count: b.logp.count)
            let h = 1e-6
            for t in 0..<b.logp.count {
                var p = b.logp, m = b.logp
                p[t] += h; m[t] -= h
                fd[t] = (try loss(p, analyticOld: false).loss - loss(m, analyticOld: false).loss) / (2 * h)
            }
            expectClose(base.dLogp, fd, atol: 1e-8, rtol: 1e-6, "dLogp vs central differences [\(v.0), \(aggregation)]")
            // The gradient must not be trivially zero, and (off-policy) some tokens must actually be clipped.
            #expect(base.dLogp.contains { abs($0) > 1e-4 }, "[\(v.0)] gradient is all zero")
            if !v.onPolicy { #expect(base.clipFraction > 0, "[\(v.0)] batch has no clipped tokens") }
            if config.dualClip != nil { #expect(base.stats.dualClipFraction > 0, "[\(v.0)] no dual-clipped tokens") }
        }
    }

    // MARK: gradient accumulation

    @Test(arguments: aggregations)
    func microBatchesSumToMinibatch(aggregation: LossAggregation) throws {
        var config = PolicyLossConfig(dualClip: 3, klCoef: 0.2)
        config.aggregation = aggregation
        let b = RandomBatch(seed: 77, config: config)
        let full = try policyLoss(logp: b.logp, oldLogp: b.old, refLogp: b.ref, rolloutLogp: b.roll,
                                  advantages: b.advSeq, offsets: b.offsets, lengths: b.lengths, mask: b.mask, config: config)
        // Split the sequences in two micro-batches (each keeps the flat arrays; only its sequences are listed).
        let split = [0..<2, 2..<b.offsets.count]
        let D = aggregation.normalizer(totalTokenWeight: b.mask.enumerated().filter { i, _ in
            zip(b.offsets, b.lengths).contains { $0 <= i && i < $0 + $1 } }.reduce(0) { $0 + $1.1 },
                                       sequenceCount: b.offsets.count)
        #expect(D == full.normalizer)
        var loss = 0.0
        var grad = [Double](repeating: 0, count: b.logp.count)
        var stats = PolicyLossStats()
        for r in split {
            let part = try policyLoss(logp: b.logp, oldLogp: b.old, refLogp: b.ref, rolloutLogp: b.roll,
                                      advantages: Array(b.advSeq[r]), offsets: Array(b.offsets[r]),
                                      lengths: Array(b.lengths[r]), mask: b.mask, config: config,
                                      normalizer: full.normalizer)
            loss += part.loss
            for i in grad.indices { grad[i] += part.dLogp[i] }
            stats.merge(part.stats)
        }
        expectClose(loss, full.loss, atol: 1e-14, rtol: 1e-12, "accumulated loss [\(aggregation)]")
        expectClose(grad, full.dLogp, atol: 1e-15, rtol: 1e-12, "accumulated dLogp [\(aggregation)]")
        expectClose(stats.clipFraction, full.clipFraction, atol: 1e-15, rtol: 1e-12, "merged clip fraction")
        expectClose(stats.meanKL, full.meanKL, atol: 1e-15, rtol: 1e-12, "merged mean KL")
        #expect(stats.sequenceCount == full.stats.sequenceCount)
    }

    @Test func accumulatingVariantAddsIntoCallerBuffer() throws {
        let b = RandomBatch(seed: 5, config: PolicyLossConfig())
        let logp = b.logp.map(Float.init), old = b.old.map(Float.init), ref = b.ref.map(Float.init)
        let adv = b.advSeq.map(Float.init), mask = b.mask.map(Float.init)
        let r = try policyLoss(logp: logp, oldLogp: old, refLogp: ref, advantages: adv, offsets: b.offsets,
                               lengths: b.lengths, mask: mask)
        var buf = [Float](repeating: 0.5, count: logp.count)
        let r2 = try buf.withUnsafeMutableBufferPointer {
            try policyLoss(accumulatingInto: $0, logp: logp, oldLogp: old, refLogp: ref, advantages: adv,
                           offsets: b.offsets, lengths: b.lengths, mask: mask)
        }
        #expect(r2.loss == r.loss)
        #expect(r2.dLogp.isEmpty)
        expectClose(buf, r.dLogp.map { $0 + 0.5 }, atol: 0, rtol: 0, "accumulated into caller buffer")
    }

    // MARK: degenerate and bad input

    @Test func emptyAndFullyMaskedBatchesGiveZeroNotNaN() throws {
        let e = try policyLoss(logp: [Float](), oldLogp: nil, advantages: [], offsets: [], lengths: [],
                               config: PolicyLossConfig(klCoef: 0))
        #expect(e.loss == 0 && e.dLogp.isEmpty)
        for agg in Self.aggregations {
            let m = try policyLoss(logp: [-1, -2] as [Float], oldLogp: [-1.5, -2] as [Float], advantages: [1],
                                   offsets: [0], lengths: [2], mask: [0, 0], config: PolicyLossConfig(klCoef: 0, aggregation: agg))
            #expect(m.loss == 0 && m.dLogp == [0, 0], "\(agg)")
            #expect(m.clipFraction == 0 && m.approxKL == 0)
        }
    }

    @Test func nonFiniteInputPropagatesToLoss() throws {
        let r = try policyLoss(logp: [Float.nan, -1], oldLogp: nil, advantages: [1], offsets: [0], lengths: [2],
                               config: PolicyLossConfig(klCoef: 0))
        #expect(!r.loss.isFinite)
    }

    @Test func rejectsBadInput() {
        let lp: [Float] = [-1, -2, -3]
        #expect(throws: GRPOError.self) {  // β > 0 needs a reference
            try policyLoss(logp: lp, oldLogp: nil, advantages: [1], offsets: [0], lengths: [3])
        }
        #expect(throws: GRPOError.self) {  // sequence past the end
            try policyLoss(logp: lp, oldLogp: nil, advantages: [1], offsets: [1], lengths: [3], config: PolicyLossConfig(klCoef: 0))
        }
        #expect(throws: GRPOError.self) {  // advantages count
            try policyLoss(logp: lp, oldLogp: nil, advantages: [1, 2], offsets: [0], lengths: [3], config: PolicyLossConfig(klCoef: 0))
        }
        #expect(throws: GRPOError.self) {  // oldLogp count
            try policyLoss(logp: lp, oldLogp: [0], advantages: [1], offsets: [0], lengths: [3], config: PolicyLossConfig(klCoef: 0))
        }
        #expect(throws: GRPOError.self) {  // offsets/lengths count
            try policyLoss(logp: lp, oldLogp: nil, advantages: [1], offsets: [0], lengths: [1, 2], config: PolicyLossConfig(klCoef: 0))
        }
        #expect(throws: GRPOError.self) {  // dual clip must be > 1
            try policyLoss(logp: lp, oldLogp: nil, advantages: [1], offsets: [0], lengths: [3],
                           config: PolicyLossConfig(dualClip: 0.5, klCoef: 0))
        }
        #expect(throws: GRPOError.self) {  // constant normalizer must be > 0
            try policyLoss(logp: lp, oldLogp: nil, advantages: [1], offsets: [0], lengths: [3],
                           config: PolicyLossConfig(klCoef: 0, aggregation: .constantNormalizer(0)))
        }
        #expect(throws: GRPOError.self) {  // normalizer override must be > 0
            try policyLoss(logp: lp, oldLogp: nil, advantages: [1], offsets: [0], lengths: [3],
                           config: PolicyLossConfig(klCoef: 0), normalizer: -1)
        }
    }
}

extension LossAggregation: CustomTestStringConvertible {
    public var testDescription: String {
        switch self {
        case .tokenMean: return "tokenMean"
        case .seqMeanTokenMean: return "seqMeanTokenMean"
        case .seqMeanTokenSum: return "seqMeanTokenSum"
        case let .constantNormalizer(c): return "constantNormalizer(\(c))"
        }
    }
}
