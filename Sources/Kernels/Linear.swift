/// nn.Linear: y = x·Wᵀ + b with the weight stored (OC, C), through BLAS.

/// out (N, OC) = inp (N, C) · weightᵀ + bias.
public func linearForward(
    _ out: UnsafeMutablePointer<Float>,      // (N, OC)
    _ inp: UnsafePointer<Float>,             // (N, C)
    _ weight: UnsafePointer<Float>,          // (OC, C)
    _ bias: UnsafePointer<Float>?,           // (OC) or nil
    n: Int, c: Int, oc: Int
) {
    if n == 0 || oc == 0 { return }
    Gemm.sgemm(out, inp, weight, m: n, n: oc, k: c, transB: true)
    if let bias {
        for i in 0..<n { axpy(out + i * oc, 1, bias, oc) }
    }
}

/// out (B, OC) = inp (B, C) · weightᵀ + bias for the decode step: the skinny kernel for B ≤ `Gemm.skinnyMaxRows`
/// (`workers` nil = its automatic column split), BLAS above (F32 B = 1: sgemv; BF16 B = 1: the skinny kernel,
/// which reads the BF16 rows directly).
public func decodeLinearForward(
    _ out: UnsafeMutablePointer<Float>,      // (B, OC)
    _ inp: UnsafePointer<Float>,             // (B, C)
    _ weight: WeightMatrix,                  // (OC, C)
    _ bias: UnsafePointer<Float>?,           // (OC) or nil
    n: Int, c: Int, oc: Int, workers: Int?
) {
    guard n >= 1, n <= Gemm.skinnyMaxRows else {
        linearForward(out, inp, weight, bias, n: n, c: c, oc: oc)
        return
    }
    switch weight {
    case .f32(let w):
        guard n >= 2 else { linearForward(out, inp, w, bias, n: n, c: c, oc: oc); return }
        Gemm.skinnyTransB(out, ldc: oc, inp, lda: c, w, ldw: c, m: n, n: oc, k: c, workers: workers)
    case .bf16(let w):
        Gemm.skinnyTransB(out, ldc: oc, inp, lda: c, bf16: w, ldw: c, m: n, n: oc, k: c, workers: workers)
    }
    if let bias { for i in 0..<n { axpy(out + i * oc, 1, bias, oc) } }
}

/// Accumulates dInp += dOut·W, dWeight += dOutᵀ·inp, dBias += Σ_rows dOut. Any of the three may be nil (skipped).
public func linearBackward(
    _ dInp: UnsafeMutablePointer<Float>?,    // (N, C) or nil
    _ dWeight: UnsafeMutablePointer<Float>?, // (OC, C) or nil
    _ dBias: UnsafeMutablePointer<Float>?,   // (OC) or nil
    _ dOut: UnsafePointer<Float>,            // (N, OC)
    _ inp: UnsafePointer<Float>,             // (N, C)
    _ weight: UnsafePointer<Float>,          // (OC, C)
    n: Int, c: Int, oc: Int
) {
    if n == 0 { return }
    if let dInp {
        // (N, C) += (N, OC) · (OC, C)
        Gemm.sgemm(dInp, dOut, weight, m: n, n: c, k: oc, beta: 1)
    }
    if let dWeight {
        // (OC, C) += dOutᵀ · inp, dOut stored (N, OC) = (K, M).
        Gemm.sgemm(dWeight, dOut, inp, m: oc, n: c, k: n, transA: true, beta: 1)
    }
    if let dBias {
        for i in 0..<n { axpy(dBias, 1, dOut + i * oc, oc) }
    }
}

/// `linearForward` with the weight as a `WeightMatrix` (F32 or BF16, see `Gemm.sgemm(_:ldc:_:lda:_:ldb:…)`).
public func linearForward(
    _ out: UnsafeMutablePointer<Float>,      // (N, OC)
    _ inp: UnsafePointer<Float>,             // (N, C)
    _ weight: WeightMatrix,                  // (OC, C)
    _ bias: UnsafePointer<Float>?,           // (OC) or nil
    n: Int, c: Int, oc: Int
) {
    if case .f32(let w) = weight { linearForward(out, inp, w, bias, n: n, c: c, oc: oc); return }
    if n == 0 || oc == 0 { return }
    Gemm.sgemm(out, ldc: oc, inp, lda: c, weight, ldb: c, m: n, n: oc, k: c, transB: true)
    if let bias {
        for i in 0..<n { axpy(out + i * oc, 1, bias, oc) }
    }
}

/// `linearBackward` for a frozen weight given as a `WeightMatrix`: dInp += dOut·W and dBias += Σ_rows dOut
/// (no weight gradient: a BF16 weight is never trained; with F32 this is `linearBackward` with dWeight nil).
public func linearBackwardInput(
    _ dInp: UnsafeMutablePointer<Float>?,    // (N, C) or nil
    _ dBias: UnsafeMutablePointer<Float>?,   // (OC) or nil
    _ dOut: UnsafePointer<Float>,            // (N, OC)
    _ weight: WeightMatrix,                  // (OC, C)
    n: Int, c: Int, oc: Int
) {
    if n == 0 { return }
    if let dInp {
        // (N, C) += (N, OC) · (OC, C)
        Gemm.sgemm(dInp, ldc: c, dOut, lda: oc, weight, ldb: c, m: n, n: c, k: oc, transB: false, beta: 1)
    }
    if let dBias {
        for i in 0..<n { axpy(dBias, 1, dOut + i * oc, oc) }
    }
}
