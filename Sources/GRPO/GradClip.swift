/// Global L2 gradient-norm clipping over one flat buffer, as `torch.nn.utils.clip_grad_norm_(params, maxNorm)`:
///
///     norm = √(Σ g²)                      (accumulated in Double)
///     if maxNorm / (norm + 1e-6) < 1:  g ← g · maxNorm / (norm + 1e-6)
///
/// Returns the pre-clip norm. If any gradient is NaN/±Inf the norm is non-finite and `grads` is left untouched,
/// so the caller can refuse the update (`UpdateGuard`) — unlike torch, which would multiply by NaN.
/// `maxNorm <= 0` or non-finite: nothing is clipped, the norm is still returned.
@discardableResult
public func clipGradNorm(_ grads: UnsafeMutablePointer<Float>, count: Int, maxNorm: Double) -> Double {
    // Eight independent Double lanes (the serial sum is latency-bound), then the tail.
    var acc = SIMD8<Double>()
    var i = 0
    while i + 8 <= count {
        let g = SIMD8<Double>(UnsafeRawPointer(grads + i).loadUnaligned(as: SIMD8<Float>.self))
        acc += g * g
        i += 8
    }
    var ss = acc.sum()
    while i < count { let g = Double(grads[i]); ss += g * g; i += 1 }
    let norm = ss.squareRoot()
    guard norm.isFinite, maxNorm > 0, maxNorm.isFinite else { return norm }
    let coef = maxNorm / (norm + 1e-6)
    if coef < 1 {
        let c = Float(coef)
        for i in 0..<count { grads[i] *= c }
    }
    return norm
}

/// Array convenience for `clipGradNorm(_:count:maxNorm:)`.
@discardableResult
public func clipGradNorm(_ grads: inout [Float], maxNorm: Double) -> Double {
    let n = grads.count
    return grads.withUnsafeMutableBufferPointer { clipGradNorm($0.baseAddress!, count: n, maxNorm: maxNorm) }
}
