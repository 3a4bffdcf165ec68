/// SwiGLU gating of the Llama/Qwen2 MLP: out = silu(gate) · up, silu(g) = g·σ(g).

/// out = silu(gate) * up elementwise over `count` (= N·F) values.
public func swigluForward(
    _ out: UnsafeMutablePointer<Float>,      // (N, F)
    _ gate: UnsafePointer<Float>,            // (N, F)
    _ up: UnsafePointer<Float>,              // (N, F)
    count: Int
) {
    Parallel.forRanges(count: (count + 7) / 8, work: count * 20) { r in
        let lo = r.lowerBound * 8, hi = min(count, r.upperBound * 8)
        var i = lo
        while i + 8 <= hi {
            let g = load8(gate + i)
            store8(out + i, g / (1 + VectorMath.exp(-g)) * load8(up + i))
            i += 8
        }
        if i < hi {
            let k = hi - i
            let g = loadPartial8(gate + i, k, fill: 0)
            storePartial8(out + i, g / (1 + VectorMath.exp(-g)) * loadPartial8(up + i, k, fill: 0), k)
        }
    }
}

/// dGate += dOut·up·σ(g)(1 + g(1 − σ(g))), dUp += dOut·silu(g).
public func swigluBackward(
    _ dGate: UnsafeMutablePointer<Float>,    // (N, F)
    _ dUp: UnsafeMutablePointer<Float>,      // (N, F)
    _ dOut: UnsafePointer<Float>,            // (N, F)
    _ gate: UnsafePointer<Float>,            // (N, F)
    _ up: UnsafePointer<Float>,              // (N, F)
    count: Int
) {
    @inline(__always) func grads(_ g: SIMD8<Float>, _ u: SIMD8<Float>, _ d: SIMD8<Float>)
        -> (SIMD8<Float>, SIMD8<Float>) {
        let s = 1 / (1 + VectorMath.exp(-g))
        let silu = g * s
        let dsilu = s * (1 + g * (1 - s))
        return (d * u * dsilu, d * silu)
    }
    Parallel.forRanges(count: (count + 7) / 8, work: count * 30) { r in
        let lo = r.lowerBound * 8, hi = min(count, r.upperBound * 8)
        var i = lo
        while i + 8 <= hi {
            let (dg, du) = grads(load8(gate + i), load8(up + i), load8(dOut + i))
            store8(dGate + i, load8(dGate + i) + dg)
            store8(dUp + i, load8(dUp + i) + du)
            i += 8
        }
        if i < hi {
            let k = hi - i
            let (dg, du) = grads(loadPartial8(gate + i, k, fill: 0), loadPartial8(up + i, k, fill: 0),
                                 loadPartial8(dOut + i, k, fill: 0))
            storePartial8(dGate + i, loadPartial8(dGate + i, k, fill: 0) + dg, k)
            storePartial8(dUp + i, loadPartial8(dUp + i, k, fill: 0) + du, k)
        }
    }
}
