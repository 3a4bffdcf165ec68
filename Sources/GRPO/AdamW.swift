import Foundation
import Kernels

/// Hyper-parameters of `AdamW`; defaults are `torch.optim.AdamW`'s.
public struct AdamWConfig: Sendable, Equatable, Codable {
    /// Learning rate used when `step` is called without one (a scheduler normally passes it each step).
    public var lr: Double = 1e-3
    public var beta1: Double = 0.9
    public var beta2: Double = 0.999
    public var eps: Double = 1e-8
    public var weightDecay: Double = 0.01

    public init(lr: Double = 1e-3, beta1: Double = 0.9, beta2: Double = 0.999, eps: Double = 1e-8,
                weightDecay: Double = 0.01) {
        self.lr = lr; self.beta1 = beta1; self.beta2 = beta2; self.eps = eps; self.weightDecay = weightDecay
    }
}

/// AdamW over one flat Float parameter buffer, with exactly `torch.optim.AdamW`'s (single-tensor, CPU) update
/// (amsgrad off, maximize off). With step count k (incremented first), per element:
///
///     p ← p·(1 − lr·wd)                              decoupled weight decay, BEFORE the moment update
///     m ← lerp(m, g, 1 − β1)  = m + (1−β1)(g − m)
///     v ← v·β2 + (1 − β2)·g·g
///     p ← p − (lr / (1 − β1^k)) · m / (√v / √(1 − β2^k) + eps)
///
/// Scalars (1 − lr·wd, step size, √bias-correction) are computed in Double and rounded to Float, as torch does
/// with Python-float hyper-parameters; the elementwise operations run in Float in torch's order.
///
/// Weight decay applies to every parameter by default — like `torch.optim.AdamW(model.parameters())` with one
/// param group. `noDecayRanges` (e.g. norm weights, biases) exempt flat index ranges, like a second param group
/// with `weight_decay=0`.
///
/// m, v and the step count are the whole state: `state()` / `restore(_:)` for checkpoints.
public final class AdamW {
    public let parameterCount: Int
    public var config: AdamWConfig
    /// Flat index ranges excluded from weight decay (sorted, non-overlapping after init).
    public let noDecayRanges: [Range<Int>]
    /// First and second moments (exp_avg, exp_avg_sq), one per parameter.
    public private(set) var m: [Float]
    public private(set) var v: [Float]
    /// Number of steps taken (torch `state['step']`).
    public private(set) var stepCount: Int = 0

    /// Serialisable optimizer state.
    public struct State: Sendable, Codable, Equatable {
        public var stepCount: Int
        public var m: [Float]
        public var v: [Float]
        public init(stepCount: Int, m: [Float], v: [Float]) { self.stepCount = stepCount; self.m = m; self.v = v }
    }

    public init(parameterCount: Int, config: AdamWConfig = AdamWConfig(), noDecayRanges: [Range<Int>] = []) throws {
        guard parameterCount >= 0 else {
            throw GRPOError.invalidValue(argument: "parameterCount", value: Double(parameterCount), why: "must be >= 0")
        }
        for (name, value, ok) in [("beta1", config.beta1, config.beta1 >= 0 && config.beta1 < 1),
                                  ("beta2", config.beta2, config.beta2 >= 0 && config.beta2 < 1),
                                  ("eps", config.eps, config.eps >= 0), ("weightDecay", config.weightDecay, config.weightDecay >= 0),
                                  ("lr", config.lr, config.lr >= 0)] where !ok || !value.isFinite {
            throw GRPOError.invalidValue(argument: "AdamWConfig.\(name)", value: value, why: "out of range (torch rejects it too)")
        }
        let sorted = noDecayRanges.filter { !$0.isEmpty }.sorted { $0.lowerBound < $1.lowerBound }
        for (i, r) in sorted.enumerated() {
            if r.lowerBound < 0 || r.upperBound > parameterCount {
                throw GRPOError.invalidValue(argument: "noDecayRanges[\(r)]", value: Double(r.upperBound),
                                             why: "outside 0..<\(parameterCount)")
            }
            if i > 0 && sorted[i - 1].upperBound > r.lowerBound {
                throw GRPOError.invalidValue(argument: "noDecayRanges[\(r)]", value: Double(r.lowerBound),
                                             why: "overlaps \(sorted[i - 1])")
            }
        }
        self.parameterCount = parameterCount
        self.config = config
        self.noDecayRanges = sorted
        self.m = [Float](repeating: 0, count: parameterCount)
        self.v = [Float](repeating: 0, count: parameterCount)
    }

    public func state() -> State { State(stepCount: stepCount, m: m, v: v) }

    /// Restores a checkpointed state; throws (leaving this optimizer unchanged) if the sizes do not match.
    public func restore(_ s: State) throws {
        guard s.m.count == parameterCount else {
            throw GRPOError.stateMismatch(field: "m", why: "\(s.m.count) moments for \(parameterCount) parameters")
        }
        guard s.v.count == parameterCount else {
            throw GRPOError.stateMismatch(field: "v", why: "\(s.v.count) moments for \(parameterCount) parameters")
        }
        guard s.stepCount >= 0 else { throw GRPOError.stateMismatch(field: "stepCount", why: "negative (\(s.stepCount))") }
        stepCount = s.stepCount; m = s.m; v = s.v
    }

    /// Restores a checkpoint in place: `read` fills m and v (parameterCount floats each) directly, so a resume
    /// holds one copy of the moments, not two. If `read` throws, the moments are reset to zero and the step count
    /// to 0 (a fresh optimizer) before the error is rethrown, so no half-read state is ever stepped with.
    public func restore(stepCount: Int,
                        reading read: (UnsafeMutableBufferPointer<Float>, UnsafeMutableBufferPointer<Float>) throws -> Void) throws {
        guard stepCount >= 0 else { throw GRPOError.stateMismatch(field: "stepCount", why: "negative (\(stepCount))") }
        do {
            try m.withUnsafeMutableBufferPointer { mb in try v.withUnsafeMutableBufferPointer { vb in try read(mb, vb) } }
        } catch {
            m.withUnsafeMutableBufferPointer { $0.update(repeating: 0) }
            v.withUnsafeMutableBufferPointer { $0.update(repeating: 0) }
            self.stepCount = 0
            throw error
        }
        self.stepCount = stepCount
    }

    /// One AdamW update of `params` (parameterCount,) with `grads` (parameterCount,), in place.
    /// `lr` overrides `config.lr` for this step (pass the scheduler's value). The caller is responsible for
    /// refusing non-finite gradients first (`clipGradNorm` + `UpdateGuard`).
    ///
    /// One fused pass: each element's w, g, m, v are read once and w, m, v written once (16 bytes read + 12
    /// written per parameter; the step is memory-bound). The index range is cut into `workers` contiguous slices
    /// (boundaries on 16-float = 64-byte cache lines, so no two workers write one line), one `Parallel.run`
    /// region; each worker walks the decayed / undecayed runs that intersect its slice. The update is elementwise,
    /// so the result is bitwise the same for any worker count (OptimizerTests.multiThreadedStepIsBitwiseSingleThreaded).
    /// `workers`: nil = `Parallel.workers` for ~28 bytes of traffic per element (2 on the target machine for any
    /// real model; 1 below ~15K parameters).
    public func step(params: UnsafeMutablePointer<Float>, grads: UnsafePointer<Float>, lr: Double? = nil,
                     workers: Int? = nil) {
        let lr = lr ?? config.lr
        stepCount += 1
        let k = Double(stepCount)
        let c = config
        let bc1 = 1 - pow(c.beta1, k)
        let bc2 = 1 - pow(c.beta2, k)
        let s = AdamWKernel.Scalars(decay: Float(1 - lr * c.weightDecay), w1: Float(1 - c.beta1), beta2: Float(c.beta2),
                        oneMinusBeta2: Float(1 - c.beta2), negStepSize: Float(-(lr / bc1)),
                        bc2Sqrt: Float(bc2.squareRoot()), eps: Float(c.eps))
        let applyDecay = c.weightDecay != 0
        let n = parameterCount
        // Decayed / undecayed runs in index order.
        var runs: [(Range<Int>, Bool)] = []
        var cursor = 0
        for r in noDecayRanges {
            if cursor < r.lowerBound { runs.append((cursor..<r.lowerBound, applyDecay)) }
            runs.append((r, false)); cursor = r.upperBound
        }
        if cursor < n { runs.append((cursor..<n, applyDecay)) }
        let lines = (n + 15) / 16
        let w = max(1, min(workers ?? Parallel.workers(work: 28 * n, items: lines), max(1, lines)))

        m.withUnsafeMutableBufferPointer { mb in
            v.withUnsafeMutableBufferPointer { vb in
                let ptrs = AdamWKernel.Pointers(p: params, g: grads, m: mb.baseAddress!, v: vb.baseAddress!)
                Parallel.run(workers: w) { i in
                    let slice = min(n, 16 * (lines * i / w))..<min(n, 16 * (lines * (i + 1) / w))
                    for (range, decay) in runs where range.overlaps(slice) {
                        AdamWKernel.update(ptrs, range.clamped(to: slice), decay, s)
                    }
                }
            }
        }
    }

    /// Array convenience for `step`; throws on a size mismatch. (A separate name: with the same labels Swift would
    /// silently pick the pointer overload through array-to-pointer conversion and skip the size check.)
    public func update(params: inout [Float], grads: [Float], lr: Double? = nil) throws {
        guard params.count == parameterCount else {
            throw GRPOError.countMismatch(argument: "params", count: params.count, expected: parameterCount, why: "AdamW size")
        }
        guard grads.count == parameterCount else {
            throw GRPOError.countMismatch(argument: "grads", count: grads.count, expected: parameterCount, why: "AdamW size")
        }
        params.withUnsafeMutableBufferPointer { p in
            grads.withUnsafeBufferPointer { g in step(params: p.baseAddress!, grads: g.baseAddress!, lr: lr) }
        }
    }
}
