import CKernelSupport

/// AdamW's elementwise update (torch.optim.AdamW's single-tensor path, operation for operation), the kernel behind
/// GRPO's `AdamW.step`: it lives in Kernels because it uses the C shim's vector square root (`rlif_sqrt8`), and only
/// Kernels imports the shims (ModuleBoundaryTests). Tests: OptimizerTests (torch fixtures, bitwise multi-threaded).
public enum AdamWKernel {
    public struct Scalars: Sendable {
        public var decay, w1, beta2, oneMinusBeta2, negStepSize, bc2Sqrt, eps: Float
        public init(decay: Float, w1: Float, beta2: Float, oneMinusBeta2: Float, negStepSize: Float, bc2Sqrt: Float, eps: Float) {
            self.decay = decay; self.w1 = w1; self.beta2 = beta2; self.oneMinusBeta2 = oneMinusBeta2
            self.negStepSize = negStepSize; self.bc2Sqrt = bc2Sqrt; self.eps = eps
        }
    }

    /// Raw pointers into the parameter/grad/state buffers. @unchecked Sendable: the workers write disjoint
    /// index ranges, and the buffers outlive the `Parallel.run` call that uses them.
    public struct Pointers: @unchecked Sendable {
        public let p: UnsafeMutablePointer<Float>, g: UnsafePointer<Float>
        public let m: UnsafeMutablePointer<Float>, v: UnsafeMutablePointer<Float>
        public init(p: UnsafeMutablePointer<Float>, g: UnsafePointer<Float>, m: UnsafeMutablePointer<Float>, v: UnsafeMutablePointer<Float>) {
            self.p = p; self.g = g; self.m = m; self.v = v
        }
    }

    /// The elementwise update over `range`: SIMD8 for the bulk, scalar for the tail. Both run the identical IEEE
    /// operation sequence (no FMA contraction), so results do not depend on alignment or the worker split.
    public static func update(_ x: Pointers, _ range: Range<Int>, _ decay: Bool, _ s: Scalars) {
        typealias V = SIMD8<Float>
        var i = range.lowerBound
        let lerpLow = s.w1 < 0.5
        while i + 8 <= range.upperBound {
            let g = UnsafeRawPointer(x.g + i).loadUnaligned(as: V.self)
            var p = UnsafeRawPointer(x.p + i).loadUnaligned(as: V.self)
            var m = UnsafeRawPointer(x.m + i).loadUnaligned(as: V.self)
            var v = UnsafeRawPointer(x.v + i).loadUnaligned(as: V.self)
            if decay { p = p * s.decay }
            m = lerpLow ? m + s.w1 * (g - m) : g - (g - m) * (1 - s.w1)
            v = v * s.beta2
            v = v + s.oneMinusBeta2 * g * g
            let denom = rlif_sqrt8(v) / s.bc2Sqrt + s.eps      // vsqrtps (see rlif_sqrt8), = sqrtf per lane
            p = p + s.negStepSize * m / denom
            UnsafeMutableRawPointer(x.p + i).storeBytes(of: p, as: V.self)
            UnsafeMutableRawPointer(x.m + i).storeBytes(of: m, as: V.self)
            UnsafeMutableRawPointer(x.v + i).storeBytes(of: v, as: V.self)
            i += 8
        }
        while i < range.upperBound {
            var p = x.p[i]
            let g = x.g[i]
            if decay { p = p * s.decay }                       // param.mul_(1 - lr * wd)
            var m = x.m[i]
            // exp_avg.lerp_(grad, 1 - beta1), torch's two-branch lerp formula
            m = lerpLow ? m + s.w1 * (g - m) : g - (g - m) * (1 - s.w1)
            var v = x.v[i] * s.beta2                           // exp_avg_sq.mul_(beta2)
            v = v + s.oneMinusBeta2 * g * g                    // .addcmul_(grad, grad, value=1 - beta2)
            let denom = v.squareRoot() / s.bc2Sqrt + s.eps     // (exp_avg_sq.sqrt() / bc2_sqrt).add_(eps)
            p = p + s.negStepSize * m / denom                  // param.addcdiv_(exp_avg, denom, value=-step_size)
            x.p[i] = p; x.m[i] = m; x.v[i] = v
            i += 1
        }
    }
}
