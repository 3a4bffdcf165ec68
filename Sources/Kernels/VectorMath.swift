/// Vectorised elementary functions and SIMD8 load/store/reduction helpers used by every kernel.
///
/// `exp` is the Cephes `expf` algorithm on 8 lanes: range reduction x = n·ln2 + r with ln2 split in two
/// constants (Cody-Waite), a degree-6 polynomial on |r| <= ln2/2 and the scale 2ⁿ built from exponent bits.
/// With FMA it is within 2 ulp of the correctly rounded result for x in [-87.33, 88.72] (tested against
/// Double `exp` in `VectorMathTests`). Below -87.33 the true result is subnormal (< 1.2e-38) and this returns
/// 0; above 88.72 it returns +inf; NaN propagates; -inf gives 0.
public enum VectorMath {
    /// exp on 8 lanes (see the type's doc for accuracy). Branch-free.
    /// `@_transparent` (mandatory inlining): with only `@inline(__always)` the optimizer still left calls in
    /// large callers, and the out-of-line call passes SIMD8 as two xmm halves (2-3x slower loops).
    @_transparent
    public static func exp(_ xIn: SIMD8<Float>) -> SIMD8<Float> {
        let lo: Float = -87.336544            // ≈ ln(FLT_MIN): below, the result would be subnormal → 0
        let hi: Float = 88.72283905206835     // ln(FLT_MAX): above → +inf
        var x = xIn.replacing(with: lo, where: xIn .< lo)
        x.replace(with: hi, where: xIn .> hi)
        // n = round(x / ln2) by the 1.5·2²³ trick: the addition rounds to an integer kept in the low mantissa.
        let magic = SIMD8<Float>(repeating: 12_582_912)
        let t = magic.addingProduct(x, SIMD8(repeating: 1.44269504088896341))
        let fn = t - magic
        // r = x - n·ln2 with ln2 = C1 + C2 (C1 has 9 bits so n·C1 is exact).
        var r = x.addingProduct(fn, SIMD8(repeating: -0.693359375))
        r = r.addingProduct(fn, SIMD8(repeating: 2.12194440e-4))
        let z = r * r
        var y = SIMD8<Float>(repeating: 1.9875691500e-4)
        y = SIMD8(repeating: 1.3981999507e-3).addingProduct(y, r)
        y = SIMD8(repeating: 8.3334519073e-3).addingProduct(y, r)
        y = SIMD8(repeating: 4.1665795894e-2).addingProduct(y, r)
        y = SIMD8(repeating: 1.6666665459e-1).addingProduct(y, r)
        y = SIMD8(repeating: 5.0000001201e-1).addingProduct(y, r)
        y = (r + 1).addingProduct(y, z)
        // 2ⁿ = 2^(n/2) · 2^(n - n/2): n ranges over -126...128 and 2¹²⁸ is not a float, but both halves are
        // normal and the products are exact.
        let n = unsafeBitCast(t, to: SIMD8<Int32>.self) &- 0x4B40_0000
        let n1 = n &>> 1, n2 = n &- n1
        let s1 = unsafeBitCast((n1 &+ 127) &<< 23, to: SIMD8<Float>.self)
        let s2 = unsafeBitCast((n2 &+ 127) &<< 23, to: SIMD8<Float>.self)
        var e = y * s1 * s2
        e.replace(with: 0, where: xIn .< lo)
        e.replace(with: .infinity, where: xIn .> hi)
        e.replace(with: xIn, where: xIn .!= xIn)   // NaN in → NaN out
        return e
    }

    /// Scalar exp through the vector path (same accuracy; avoids libm's slower call in scalar tails).
    @_transparent
    public static func exp(_ x: Float) -> Float { exp(SIMD8(repeating: x))[0] }

    /// out[i] = exp(inp[i]) for i < count (out may equal inp).
    public static func exp(_ out: UnsafeMutablePointer<Float>, _ inp: UnsafePointer<Float>, count: Int) {
        var i = 0
        while i + 8 <= count { store8(out + i, exp(load8(inp + i))); i += 8 }
        if i < count {
            let v = exp(loadPartial8(inp + i, count - i, fill: 0))
            storePartial8(out + i, v, count - i)
        }
    }
}

// MARK: - SIMD helpers (internal; inlined everywhere under WMO)

@inline(__always) func load8(_ p: UnsafePointer<Float>) -> SIMD8<Float> {
    UnsafeRawPointer(p).loadUnaligned(as: SIMD8<Float>.self)
}
@inline(__always) func load8(_ p: UnsafeMutablePointer<Float>) -> SIMD8<Float> {
    UnsafeRawPointer(p).loadUnaligned(as: SIMD8<Float>.self)
}
@inline(__always) func store8(_ p: UnsafeMutablePointer<Float>, _ v: SIMD8<Float>) {
    UnsafeMutableRawPointer(p).storeBytes(of: v, as: SIMD8<Float>.self)
}
/// Loads `count` (< 8) floats, the other lanes set to `fill`.
@inline(__always) func loadPartial8(_ p: UnsafePointer<Float>, _ count: Int, fill: Float) -> SIMD8<Float> {
    var v = SIMD8<Float>(repeating: fill)
    for i in 0..<count { v[i] = p[i] }
    return v
}
@inline(__always) func storePartial8(_ p: UnsafeMutablePointer<Float>, _ v: SIMD8<Float>, _ count: Int) {
    for i in 0..<count { p[i] = v[i] }
}

/// Σ a[i]·b[i] over n floats (Float accumulation; n is a head dimension or a hidden size).
@inline(__always) func dot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ n: Int) -> Float {
    var acc0 = SIMD8<Float>(), acc1 = SIMD8<Float>()
    var i = 0
    while i + 16 <= n {
        acc0 = acc0.addingProduct(load8(a + i), load8(b + i))
        acc1 = acc1.addingProduct(load8(a + i + 8), load8(b + i + 8))
        i += 16
    }
    if i + 8 <= n { acc0 = acc0.addingProduct(load8(a + i), load8(b + i)); i += 8 }
    var s = (acc0 + acc1).sum()
    while i < n { s = s.addingProduct(a[i], b[i]); i += 1 }
    return s
}

/// y[i] += alpha · x[i] over n floats.
@inline(__always) func axpy(_ y: UnsafeMutablePointer<Float>, _ alpha: Float, _ x: UnsafePointer<Float>, _ n: Int) {
    let a = SIMD8<Float>(repeating: alpha)
    var i = 0
    while i + 8 <= n { store8(y + i, load8(y + i).addingProduct(a, load8(x + i))); i += 8 }
    while i < n { y[i] = y[i].addingProduct(alpha, x[i]); i += 1 }
}

/// Max over n >= 1 floats.
@inline(__always) func maxOf(_ p: UnsafePointer<Float>, _ n: Int) -> Float {
    var i = 0
    var m = -Float.infinity
    if n >= 8 {
        var mv = load8(p); i = 8
        while i + 8 <= n { let v = load8(p + i); mv.replace(with: v, where: v .> mv); i += 8 }
        m = mv.max()
    }
    while i < n { if p[i] > m { m = p[i] }; i += 1 }
    return m
}

/// Widened sum of 8 lanes into two Double accumulators (exact conversion; error only from Double adds).
@inline(__always) func accumulate(_ lo: inout SIMD4<Double>, _ hi: inout SIMD4<Double>, _ v: SIMD8<Float>) {
    lo += SIMD4<Double>(v.lowHalf)
    hi += SIMD4<Double>(v.highHalf)
}
