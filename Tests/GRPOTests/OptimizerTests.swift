import Foundation
import Testing
import TestSupport
@testable import GRPO

/// AdamW, clip_grad_norm_ and LR schedules against torch / transformers (Tests/Fixtures/grpo/*.json).
@Suite struct OptimizerTests {
    struct AdamFixture: Decodable {
        struct Cfg: Decodable { var beta1, beta2, eps, weightDecay: Double }
        var parameterCount: Int; var noDecayRange: [Int]; var config: Cfg; var lrs: [Double]
        var params0: [Float]; var grads: [[Float]]
        var paramsAfterStep, paramsAfterStepAllDecay: [[Float]]
        var expAvg, expAvgSq: [Float]; var step: Int
    }

    /// Tolerance: float32 elementwise ops in torch's order; allow a few ulps (1e-6 relative, 1e-7 absolute).
    @Test func adamWMatchesTorch() throws {
        let f = try loadFixture(AdamFixture.self, "adamw.json")
        let cfg = AdamWConfig(lr: 1, beta1: f.config.beta1, beta2: f.config.beta2, eps: f.config.eps,
                              weightDecay: f.config.weightDecay)
        let grouped = try AdamW(parameterCount: f.parameterCount, config: cfg,
                                noDecayRanges: [f.noDecayRange[0]..<f.noDecayRange[1]])
        let all = try AdamW(parameterCount: f.parameterCount, config: cfg)
        var p = f.params0, q = f.params0
        for k in 0..<f.grads.count {
            try grouped.update(params: &p, grads: f.grads[k], lr: f.lrs[k])
            try all.update(params: &q, grads: f.grads[k], lr: f.lrs[k])
            expectClose(p, f.paramsAfterStep[k], atol: 1e-7, rtol: 1e-6, "params after step \(k + 1) (no-decay range)")
            expectClose(q, f.paramsAfterStepAllDecay[k], atol: 1e-7, rtol: 1e-6, "params after step \(k + 1) (all decayed)")
        }
        expectClose(all.m, f.expAvg, atol: 1e-9, rtol: 1e-6, "exp_avg")
        expectClose(all.v, f.expAvgSq, atol: 1e-12, rtol: 1e-6, "exp_avg_sq")
        #expect(all.stepCount == f.step)
        // The no-decay group really differs from decaying everything.
        #expect(p != q)
    }

    @Test func adamWStateRoundTripsThroughCodable() throws {
        let f = try loadFixture(AdamFixture.self, "adamw.json")
        let cfg = AdamWConfig(lr: 1e-3, weightDecay: f.config.weightDecay)
        let a = try AdamW(parameterCount: f.parameterCount, config: cfg)
        var p = f.params0
        try a.update(params: &p, grads: f.grads[0])
        let data = try JSONEncoder().encode(a.state())
        let b = try AdamW(parameterCount: f.parameterCount, config: cfg)
        try b.restore(JSONDecoder().decode(AdamW.State.self, from: data))
        var p2 = p
        try a.update(params: &p, grads: f.grads[1])
        try b.update(params: &p2, grads: f.grads[1])
        #expect(p == p2)
        #expect(b.stepCount == 2)
        #expect(throws: GRPOError.self) { try b.restore(AdamW.State(stepCount: 1, m: [0], v: [0])) }
        #expect(throws: GRPOError.self) { try AdamW(parameterCount: 4, noDecayRanges: [2..<6]) }
        #expect(throws: GRPOError.self) { try AdamW(parameterCount: 4, noDecayRanges: [0..<3, 2..<4]) }
        #expect(throws: GRPOError.self) { try AdamW(parameterCount: 4, config: AdamWConfig(beta2: 1)) }
        var short: [Float] = [0]
        #expect(throws: GRPOError.self) { try b.update(params: &short, grads: [0]) }
    }

    @Test func adamWLargeBufferSplitMatchesSerial() throws {
        // Above the threshold the update runs on two workers; it must equal the element-wise result.
        let n = 300_000
        var rng = SeededGenerator(seed: 9)
        let p0 = (0..<n).map { _ in Float(rng.normal()) }
        let g = (0..<n).map { _ in Float(rng.normal()) }
        let big = try AdamW(parameterCount: n, noDecayRanges: [1000..<2000])
        var p = p0
        try big.update(params: &p, grads: g, lr: 1e-3)
        // Reference: the same optimizer applied on small independent slices (serial path).
        for (lo, hi) in [(0, 10), (1500, 1510), (n - 10, n)] {
            let small = try AdamW(parameterCount: hi - lo, noDecayRanges: lo >= 1000 && hi <= 2000 ? [0..<(hi - lo)] : [])
            var ps = Array(p0[lo..<hi])
            try small.update(params: &ps, grads: Array(g[lo..<hi]), lr: 1e-3)
            #expect(Array(p[lo..<hi]) == ps, "slice \(lo)..<\(hi)")
        }
    }

    /// The fused update split over 2 and 3 workers (slices on 64-byte lines, no-decay ranges crossing the slice
    /// boundaries, a length that is not a multiple of 8 or 16) gives bitwise the single-threaded params, m and v
    /// over three steps.
    @Test func multiThreadedStepIsBitwiseSingleThreaded() throws {
        let n = 100_003
        var rng = SeededGenerator(seed: 21)
        let p0 = (0..<n).map { _ in Float(rng.normal()) }
        let grads = (0..<3).map { _ in (0..<n).map { _ in Float(rng.normal()) } }
        let noDecay = [7..<9, 33_320..<33_350, 49_990..<50_030, 66_660..<66_700, 99_990..<100_003]
        func run(workers: Int) throws -> (p: [Float], opt: AdamW) {
            let opt = try AdamW(parameterCount: n, config: AdamWConfig(weightDecay: 0.1), noDecayRanges: noDecay)
            var p = p0
            for (k, g) in grads.enumerated() {
                p.withUnsafeMutableBufferPointer { pb in
                    g.withUnsafeBufferPointer { opt.step(params: pb.baseAddress!, grads: $0.baseAddress!, lr: 1e-3 * Double(k + 1), workers: workers) }
                }
            }
            return (p, opt)
        }
        /// First index where the two differ in any bit (nil: bitwise equal).
        func firstDifference(_ a: [Float], _ b: [Float]) -> Int? {
            a.count != b.count ? -1 : a.indices.first { a[$0].bitPattern != b[$0].bitPattern }
        }
        let one = try run(workers: 1)
        #expect(firstDifference(one.p, p0) != nil)
        for w in [2, 3] {
            let many = try run(workers: w)
            #expect(firstDifference(many.p, one.p) == nil, "params, \(w) workers")
            #expect(firstDifference(many.opt.m, one.opt.m) == nil, "exp_avg, \(w) workers")
            #expect(firstDifference(many.opt.v, one.opt.v) == nil, "exp_avg_sq, \(w) workers")
        }
    }

    struct ClipFixture: Decodable {
        struct Case: Decodable { var grads: [Float]; var maxNorm, torchNorm, norm64: Double; var clipped: [Float] }
        var cases: [Case]
    }

    @Test func clipGradNormMatchesTorch() throws {
        let f = try loadFixture(ClipFixture.self, "clip_grad_norm.json")
        for (i, c) in f.cases.enumerated() {
            var g = c.grads
            let norm = clipGradNorm(&g, maxNorm: c.maxNorm)
            expectClose(norm, c.norm64, atol: 0, rtol: 1e-12, "case \(i) norm (Double)")
            expectClose(norm, c.torchNorm, atol: 0, rtol: 1e-6, "case \(i) norm vs torch float32")
            expectClose(g, c.clipped, atol: 1e-8, rtol: 1e-6, "case \(i) clipped grads")
        }
        #expect(f.cases.contains { $0.norm64 > 10 * $0.maxNorm } && f.cases.contains { $0.norm64 < $0.maxNorm })
        #expect(f.cases.contains { $0.norm64 > $0.maxNorm && $0.norm64 < 2 * $0.maxNorm })  // mild clipping
    }

    @Test func clipGradNormLeavesNonFiniteGradsUntouched() {
        for bad in [Float.nan, .infinity, -.infinity] {
            var g: [Float] = [3, 4, bad, 1]
            let norm = clipGradNorm(&g, maxNorm: 1)
            #expect(!norm.isFinite)
            #expect(g[0] == 3 && g[1] == 4 && g[3] == 1)
        }
        var g: [Float] = [3, 4]
        #expect(clipGradNorm(&g, maxNorm: 0) == 5 && g == [3, 4])
    }

    @Test func updateGuardRefusesNonFinite() {
        var guard_ = UpdateGuard()
        #expect(guard_.check(loss: 0.5, gradNorm: 2) == .apply)
        #expect(!guard_.check(loss: .nan, gradNorm: 2).shouldApply)
        #expect(guard_.check(loss: 1, gradNorm: .infinity) == .refuse(.nonFiniteGradNorm(.infinity)))
        #expect(!guard_.check(loss: 1, gradNorm: .nan).shouldApply)
        #expect(guard_.refused == 3 && guard_.consecutiveRefusals == 3 && guard_.accepted == 1)
        #expect(guard_.check(loss: 1, gradNorm: 1).shouldApply)
        #expect(guard_.consecutiveRefusals == 0 && guard_.accepted == 2)
        var spiky = UpdateGuard(refuseGradNormAbove: 100)
        #expect(spiky.check(loss: 1, gradNorm: 1000) == .refuse(.gradNormTooLarge(norm: 1000, limit: 100)))
        #expect(spiky.lastReason != nil)
    }

    struct ScheduleFixture: Decodable {
        struct Case: Decodable { var kind: String; var totalSteps: Int; var warmupRatio: Double; var warmupSteps: Int
                                 var baseLR: Double; var lrs: [Double] }
        var cases: [Case]
    }

    @Test func schedulesMatchTransformers() throws {
        let f = try loadFixture(ScheduleFixture.self, "schedules.json")
        #expect(f.cases.count == 16)
        for c in f.cases {
            let kind: LRSchedule.Kind
            switch c.kind {
            case "cosine": kind = .cosine()
            case "cosine_min0.1": kind = .cosine(numCycles: 0.5, minLRRatio: 0.1)
            case "linear": kind = .linear
            default: kind = .constant
            }
            let s = try LRSchedule(kind: kind, baseLR: c.baseLR, totalSteps: c.totalSteps, warmupRatio: c.warmupRatio)
            #expect(s.warmupSteps == c.warmupSteps, "\(c.kind) T=\(c.totalSteps) warmup")
            let lrs = (0...c.totalSteps).map { s.lr(step: $0) }
            expectClose(lrs, c.lrs, atol: 1e-20, rtol: 1e-12, "\(c.kind) T=\(c.totalSteps) lr(step)")
        }
    }

    @Test func scheduleRejectsBadInput() {
        #expect(throws: GRPOError.self) { try LRSchedule(baseLR: 1, totalSteps: -1) }
        #expect(throws: GRPOError.self) { try LRSchedule(baseLR: 1, totalSteps: 10, warmupRatio: 2) }
        #expect(throws: GRPOError.self) { try LRSchedule(kind: .cosine(minLRRatio: 2), baseLR: 1, totalSteps: 10) }
    }
}
