/// RMSNorm of Llama/Qwen2 (computed in float): y = x · rsqrt(mean(x²) + eps) · w.

/// out = (inp · rstd) · weight per row; rstd[i] = 1/sqrt(mean(inp[i]²) + eps) is saved for backward.
public func rmsnormForward(
    _ out: UnsafeMutablePointer<Float>,      // (N, C)
    _ rstd: UnsafeMutablePointer<Float>,     // (N) saved
    _ inp: UnsafePointer<Float>,             // (N, C)
    _ weight: UnsafePointer<Float>,          // (C)
    n: Int, c: Int, eps: Float
) {
    Parallel.forRanges(count: n, work: n * c * 4) { rows in
        for i in rows {
            let x = inp + i * c, y = out + i * c
            let r = 1 / (dot(x, x, c) / Float(c) + eps).squareRoot()
            rstd[i] = r
            let rv = SIMD8<Float>(repeating: r)
            var j = 0
            while j + 8 <= c { store8(y + j, load8(x + j) * rv * load8(weight + j)); j += 8 }
            while j < c { y[j] = x[j] * r * weight[j]; j += 1 }
        }
    }
}

/// dInp += r·w·dy − x·r³/C·Σ(dy·w·x);  dWeight += Σ_rows dy·x·r.
public func rmsnormBackward(
    _ dInp: UnsafeMutablePointer<Float>,     // (N, C)
    _ dWeight: UnsafeMutablePointer<Float>,  // (C)
    _ dOut: UnsafePointer<Float>,            // (N, C)
    _ inp: UnsafePointer<Float>,             // (N, C)
    _ weight: UnsafePointer<Float>,          // (C)
    _ rstd: UnsafePointer<Float>,            // (N)
    n: Int, c: Int
) {
    let workers = Parallel.workers(work: n * c * 8, items: n)
    // Each worker sums its rows' dWeight into its own (C) partial (worker 0 writes dWeight directly).
    let partials = UnsafeMutablePointer<Float>.allocate(capacity: max(0, workers - 1) * c)
    partials.initialize(repeating: 0, count: max(0, workers - 1) * c)
    defer { partials.deallocate() }
    Parallel.run(workers: workers) { w in
        let dw = w == 0 ? dWeight : partials + (w - 1) * c
        for i in (n * w / workers)..<(n * (w + 1) / workers) {
            let x = inp + i * c, dy = dOut + i * c, dx = dInp + i * c
            let r = rstd[i]
            // Σ dy·w·x
            var acc = SIMD8<Float>()
            var j = 0
            while j + 8 <= c { acc = acc.addingProduct(load8(dy + j) * load8(weight + j), load8(x + j)); j += 8 }
            var s = acc.sum()
            while j < c { s += dy[j] * weight[j] * x[j]; j += 1 }
            let k = -s * r * r * r / Float(c)
            let rv = SIMD8<Float>(repeating: r), kv = SIMD8<Float>(repeating: k)
            j = 0
            while j + 8 <= c {
                let xv = load8(x + j), dyv = load8(dy + j)
                store8(dx + j, load8(dx + j).addingProduct(rv * load8(weight + j), dyv).addingProduct(kv, xv))
                store8(dw + j, load8(dw + j).addingProduct(dyv * xv, rv))
                j += 8
            }
            while j < c {
                dx[j] += r * weight[j] * dy[j] + k * x[j]
                dw[j] += dy[j] * x[j] * r
                j += 1
            }
        }
    }
    for w in 1..<max(1, workers) { axpy(dWeight, 1, partials + (w - 1) * c, c) }
}
