/// LoRA (Hu et al. 2021, as PEFT's `lora.Linear`): y = W·x + b + s·B·(A·x) with the frozen base weight W (OC, C),
/// the adapters A (r, C) and B (OC, r) and the scale s = alpha / r. The base product is `linearForward`; these add
/// the low-rank term on top and differentiate through it. PEFT computes `lora_B(lora_A(x)) * scaling`; here the
/// scale rides in the second GEMM's alpha (one rounding fewer, within float32 tolerance of PEFT).

/// out (N, OC) += s · u · Bᵀ with u (N, r) = inp · Aᵀ written to `u` (the backward reads it). `ldOut` is out's
/// row stride (decode's fused gate|up rows are 2·F wide); nil = OC.
public func loraForward(
    _ out: UnsafeMutablePointer<Float>,      // (N, OC) accumulate (holds the base product), row stride ldOut
    _ u: UnsafeMutablePointer<Float>,        // (N, r) written: A·x per row
    _ inp: UnsafePointer<Float>,             // (N, C)
    _ a: UnsafePointer<Float>,               // (r, C)  lora_A.weight
    _ b: UnsafePointer<Float>,               // (OC, r) lora_B.weight
    n: Int, c: Int, oc: Int, r: Int, scale: Float, ldOut: Int? = nil
) {
    if n == 0 || r == 0 { return }
    // (N, r) = (N, C) · (r, C)ᵀ
    Gemm.sgemm(u, inp, a, m: n, n: r, k: c, transB: true)
    // (N, OC) += s · (N, r) · (OC, r)ᵀ
    Gemm.sgemm(out, ldc: ldOut ?? oc, u, lda: r, b, ldb: r, m: n, n: oc, k: r, transB: true, alpha: scale, beta: 1)
}

/// Accumulates the adapters' gradients and the input gradient of the low-rank term (never the base weight's):
///     du = s · dOut · B        (N, r)   scratch
///     dB += s · dOutᵀ · u      (OC, r)
///     dA += duᵀ · inp          (r, C)
///     dInp += du · A           (N, C)   (the base path's dOut·W is `linearBackward` with dWeight nil)
public func loraBackward(
    _ dInp: UnsafeMutablePointer<Float>?,    // (N, C) accumulate, or nil
    _ dA: UnsafeMutablePointer<Float>,       // (r, C) accumulate
    _ dB: UnsafeMutablePointer<Float>,       // (OC, r) accumulate
    _ du: UnsafeMutablePointer<Float>,       // (N, r) scratch
    _ dOut: UnsafePointer<Float>,            // (N, OC)
    _ inp: UnsafePointer<Float>,             // (N, C)
    _ u: UnsafePointer<Float>,               // (N, r) from loraForward
    _ a: UnsafePointer<Float>,               // (r, C)
    _ b: UnsafePointer<Float>,               // (OC, r)
    n: Int, c: Int, oc: Int, r: Int, scale: Float
) {
    if n == 0 || r == 0 { return }
    // (OC, r) += s · dOutᵀ · u, dOut stored (N, OC) = (K, M)
    Gemm.sgemm(dB, dOut, u, m: oc, n: r, k: n, transA: true, alpha: scale, beta: 1)
    // (N, r) = s · (N, OC) · (OC, r)
    Gemm.sgemm(du, dOut, b, m: n, n: r, k: oc, alpha: scale)
    // (r, C) += duᵀ · inp
    Gemm.sgemm(dA, du, inp, m: r, n: c, k: n, transA: true, beta: 1)
    if let dInp {
        // (N, C) += (N, r) · (r, C)
        Gemm.sgemm(dInp, du, a, m: n, n: c, k: r, beta: 1)
    }
}
