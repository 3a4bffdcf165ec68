/// Small elementwise kernels: residual add, accumulate, scale, axpy, fill.
/// out = a + b (the residual stream add; out may alias a or b).
public func addForward(
    _ out: UnsafeMutablePointer<Float>,      // (count)
    _ a: UnsafePointer<Float>,               // (count)
    _ b: UnsafePointer<Float>,               // (count)
    count: Int
) {
    var i = 0
    while i + 8 <= count { store8(out + i, load8(a + i) + load8(b + i)); i += 8 }
    while i < count { out[i] = a[i] + b[i]; i += 1 }
}

/// a += b. (Backward of a residual add routes dOut into both branches: accumulate(dA, dOut); accumulate(dB, dOut).)
public func accumulate(
    _ a: UnsafeMutablePointer<Float>,        // (count)
    _ b: UnsafePointer<Float>,               // (count)
    count: Int
) {
    axpy(a, 1, b, count)
}

/// y += alpha · x.
public func axpy(
    _ y: UnsafeMutablePointer<Float>,        // (count)
    alpha: Float,
    _ x: UnsafePointer<Float>,               // (count)
    count: Int
) {
    axpy(y, alpha, x, count)
}

/// x *= s in place.
public func scale(
    _ x: UnsafeMutablePointer<Float>,        // (count)
    by s: Float,
    count: Int
) {
    let sv = SIMD8<Float>(repeating: s)
    var i = 0
    while i + 8 <= count { store8(x + i, load8(x + i) * sv); i += 8 }
    while i < count { x[i] *= s; i += 1 }
}

/// out[i] = value.
public func fill(
    _ out: UnsafeMutablePointer<Float>,      // (count)
    _ value: Float,
    count: Int
) {
    out.update(repeating: value, count: count)
}
