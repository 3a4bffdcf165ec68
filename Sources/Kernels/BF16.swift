/// BF16 weights (bfloat16 = the upper 16 bits of an IEEE binary32) read by F32 kernels, llm.c style: the values
/// are widened to F32 on the fly — in registers by the decode's skinny kernel, per panel of rows into a bounded
/// scratch for the BLAS GEMMs — so a frozen matrix costs 2 bytes per weight in memory and every product is an F32
/// product of the widened (exact) values. Rounding F32 → BF16 (round-to-nearest-even) happens once when the
/// weights are stored (`BFloat16.from` in SafeTensors, used by Model); nothing here rounds.
import CKernelSupport
import Foundation

/// A weight matrix operand (nn.Linear's (OC, C) layout, or an embedding table (V, C)), row-major, held as F32 or
/// as BF16 bit patterns.
public enum WeightMatrix {
    case f32(UnsafePointer<Float>)
    case bf16(UnsafePointer<UInt16>)

    /// The matrix starting `elements` further (e.g. rows v0… of the LM head: `advanced(by: v0 * C)`).
    @inlinable
    public func advanced(by elements: Int) -> WeightMatrix {
        switch self {
        case .f32(let p): return .f32(p + elements)
        case .bf16(let p): return .bf16(p + elements)
        }
    }
}

/// 8 bfloat16 values (16 bytes, unaligned) widened to F32 in registers: zero-extend to 32 bits, shift left 16
/// (`rlif_load_bf16x8`, C: see there why).
@inline(__always)
func loadBF16x8(_ p: UnsafePointer<UInt16>) -> SIMD8<Float> { rlif_load_bf16x8(p) }

/// dst[0..<count] = the F32 values of the bfloat16 bit patterns src[0..<count] (exact).
public func widenBF16(_ dst: UnsafeMutablePointer<Float>, _ src: UnsafePointer<UInt16>, count: Int) {
    var i = 0
    while i + 8 <= count {
        UnsafeMutableRawPointer(dst + i).storeBytes(of: loadBF16x8(src + i), as: SIMD8<Float>.self)
        i += 8
    }
    while i < count { dst[i] = Float(bitPattern: UInt32(src[i]) << 16); i += 1 }
}

/// Rows [r0, r0 + rows) of a (·, width) BF16 matrix (row stride ld) widened into `dst` (rows, width) contiguous,
/// split over the cores when big enough (the widening is memory-bound; the GEMM that follows is multi-threaded).
func widenBF16Rows(_ dst: UnsafeMutablePointer<Float>, _ src: UnsafePointer<UInt16>, ld: Int, rows: Int, width: Int) {
    let p = WidenPointers(dst: dst, src: src)
    Parallel.forRanges(count: rows, work: rows * width) { r in
        for i in r { widenBF16(p.dst + i * width, p.src + i * ld, count: width) }
    }
}

private struct WidenPointers: @unchecked Sendable {  // disjoint rows per worker; joined before return
    let dst: UnsafeMutablePointer<Float>
    let src: UnsafePointer<UInt16>
}

extension Gemm {
    /// Floats of F32 scratch a BF16 GEMM widens one panel of weight rows into (4 MiB): bounded, whatever the
    /// matrix (the LM head's 151,936 × 896 rows are 33 panels).
    public static let bf16PanelFloats = 1 << 20

    /// `sgemm` (strided) with the weight operand B given as a `WeightMatrix`: F32 goes straight to `sgemm`;
    /// BF16 is widened a panel of its rows at a time into a `bf16PanelFloats` scratch and each panel is an F32
    /// `sgemm` — the decode-size products (M ≤ `skinnyMaxRows`, B transposed) instead read BF16 directly in the
    /// skinny kernel. Exact in the sense that the result is the F32 GEMM of the widened matrix up to the
    /// summation order of the panel split (with `transB` the panels split N, so each output is the same
    /// K-long dot product: identical to the F32 path for BF16-representable weights; without `transB` the
    /// panels split K and C accumulates panel by panel).
    ///   transB:  C (M, N) = alpha · A (M, K) · Bᵀ + beta · C, B (N, K) row stride ldb
    ///   !transB: C (M, N) = alpha · A (M, K) · B  + beta · C, B (K, N) row stride ldb
    public static func sgemm(
        _ c: UnsafeMutablePointer<Float>, ldc: Int,     // (M, N)
        _ a: UnsafePointer<Float>, lda: Int,            // (M, K)
        _ b: WeightMatrix, ldb: Int,                    // (N, K) if transB, else (K, N)
        m: Int, n: Int, k: Int, transB: Bool, alpha: Float = 1, beta: Float = 0
    ) {
        let w: UnsafePointer<UInt16>
        switch b {
        case .f32(let p):
            sgemm(c, ldc: ldc, a, lda: lda, p, ldb: ldb, m: m, n: n, k: k, transB: transB, alpha: alpha, beta: beta)
            return
        case .bf16(let p): w = p
        }
        if m == 0 || n == 0 { return }
        if k == 0 || (transB && m <= skinnyMaxRows && (beta == 0 || beta == 1)) {
            if k == 0 {  // the F32 path's K = 0 semantics (C scaled by beta); B is not read, `a` stands in for it
                sgemm(c, ldc: ldc, a, lda: lda, a, ldb: ldb, m: m, n: n, k: 0,
                      transB: transB, alpha: alpha, beta: beta)
            } else {
                skinnyTransB(c, ldc: ldc, a, lda: lda, bf16: w, ldw: ldb, m: m, n: n, k: k, alpha: alpha, beta: beta)
            }
            return
        }
        // Panel rows of B: N-rows when transposed (each a K-long row), K-rows otherwise (each N long).
        let width = transB ? k : n, total = transB ? n : k
        let rows = max(1, min(total, bf16PanelFloats / max(1, width)))
        let scratch = UnsafeMutablePointer<Float>.allocate(capacity: rows * width)
        defer { scratch.deallocate() }
        var r0 = 0
        while r0 < total {
            let pr = min(rows, total - r0)
            widenBF16Rows(scratch, w + r0 * ldb, ld: ldb, rows: pr, width: width)
            if transB {
                // C[:, r0..<r0+pr] = alpha · A · panelᵀ + beta · C[:, r0..<r0+pr]
                sgemm(c + r0, ldc: ldc, a, lda: lda, scratch, ldb: width, m: m, n: pr, k: k,
                      transB: true, alpha: alpha, beta: beta)
            } else {
                // C += alpha · A[:, r0..<r0+pr] · panel; beta applies once, with the first panel.
                sgemm(c, ldc: ldc, a + r0, lda: lda, scratch, ldb: width, m: m, n: n, k: pr,
                      alpha: alpha, beta: r0 == 0 ? beta : 1)
            }
            r0 += pr
        }
    }
}
