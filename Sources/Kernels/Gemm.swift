import CBLAS
import Foundation

/// Matrix products through OpenBLAS (row-major). Every transformer matmul in rlif goes through here so that
/// thread control and the M=1 → sgemv switch live in one place.
public enum Gemm {
    /// C (M, N) = alpha * op(A) · op(B) + beta * C, all row-major.
    /// `transA`: A is stored (K, M) and used transposed; `transB`: B is stored (N, K) (nn.Linear's layout).
    /// When M == 1 this calls sgemv: OpenBLAS sgemm with a single row runs ~20x slower. For 2 ≤ M ≤
    /// `skinnyMaxRows` with B transposed (the decode step's linear layers) it calls `skinnyTransB`, which does not
    /// re-pack B.
    @inlinable
    public static func sgemm(
        _ c: UnsafeMutablePointer<Float>,               // (M, N)
        _ a: UnsafePointer<Float>,                      // (M, K) or (K, M) if transA
        _ b: UnsafePointer<Float>,                      // (K, N) or (N, K) if transB
        m: Int, n: Int, k: Int,
        transA: Bool = false, transB: Bool = false,
        alpha: Float = 1, beta: Float = 0
    ) {
        sgemm(c, ldc: n, a, lda: transA ? m : k, b, ldb: transB ? k : n, m: m, n: n, k: k,
              transA: transA, transB: transB, alpha: alpha, beta: beta)
    }

    /// Number of threads OpenBLAS uses. Set it explicitly: 2-thread BLAS halves when the other core is busy.
    /// Inside `withSingleThreadedBLAS` the get/set refer to the value restored when the section ends.
    public static var threads: Int {
        get {
            singleThreadLock.lock(); defer { singleThreadLock.unlock() }
            return singleThreadDepth > 0 ? savedThreads : Int(openblas_get_num_threads())
        }
        set {
            singleThreadLock.lock(); defer { singleThreadLock.unlock() }
            if singleThreadDepth > 0 { savedThreads = max(1, newValue) } else {
                openblas_set_num_threads(Int32(max(1, newValue)))
            }
        }
    }

    /// C (M, N) = alpha · A (M, K) · op(B) + beta · C straight through OpenBLAS `cblas_sgemm`, row-major, without the
    /// M = 1 / skinny dispatch of `sgemm`: the reference `rlif bench` measures the kernels and the roof against.
    /// `transB`: B is stored (N, K).
    public static func blasSgemm(
        _ c: UnsafeMutablePointer<Float>,               // (M, N)
        _ a: UnsafePointer<Float>,                      // (M, K)
        _ b: UnsafePointer<Float>,                      // (K, N) or (N, K) if transB
        m: Int, n: Int, k: Int, transB: Bool = false, alpha: Float = 1, beta: Float = 0
    ) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, transB ? CblasTrans : CblasNoTrans, Int32(m), Int32(n), Int32(k),
                    alpha, a, Int32(k), b, Int32(transB ? k : n), beta, c, Int32(n))
    }

    /// The thread count OpenBLAS is using right now (1 inside `withSingleThreadedBLAS`).
    public static var activeBLASThreads: Int { Int(openblas_get_num_threads()) }

    /// Runs `body` with OpenBLAS single-threaded, for code that itself splits BLAS calls over the cores
    /// (otherwise each worker's GEMM would spawn BLAS threads too). Nested and concurrent sections are counted:
    /// the thread count is set to 1 when the first section starts and restored when the last one ends, so
    /// overlapping callers cannot leave BLAS stuck at 1 thread (which manual save/set/restore can).
    public static func withSingleThreadedBLAS<T>(_ body: () throws -> T) rethrows -> T {
        singleThreadLock.lock()
        if singleThreadDepth == 0 {
            savedThreads = Int(openblas_get_num_threads())
            openblas_set_num_threads(1)
        }
        singleThreadDepth += 1
        singleThreadLock.unlock()
        defer {
            singleThreadLock.lock()
            singleThreadDepth -= 1
            if singleThreadDepth == 0 { openblas_set_num_threads(Int32(savedThreads)) }
            singleThreadLock.unlock()
        }
        return try body()
    }

    // Guarded by singleThreadLock.
    private static let singleThreadLock = NSLock()
    nonisolated(unsafe) private static var singleThreadDepth = 0
    nonisolated(unsafe) private static var savedThreads = 1
}

extension Gemm {
    /// Strided variant: C (M, N) with row stride `ldc` = alpha · op(A) · op(B) + beta · C, where A and B rows
    /// are `lda`/`ldb` floats apart (e.g. one head's slice of a (T, H, D) buffer has stride H·D).
    /// Same storage conventions as `sgemm(_:_:_:m:n:k:transA:transB:alpha:beta:)`.
    @inlinable
    public static func sgemm(
        _ c: UnsafeMutablePointer<Float>, ldc: Int,     // (M, N), row stride ldc
        _ a: UnsafePointer<Float>, lda: Int,            // (M, K) or (K, M) if transA, row stride lda
        _ b: UnsafePointer<Float>, ldb: Int,            // (K, N) or (N, K) if transB, row stride ldb
        m: Int, n: Int, k: Int,
        transA: Bool = false, transB: Bool = false,
        alpha: Float = 1, beta: Float = 0
    ) {
        if m == 0 || n == 0 { return }
        if k == 0 {
            // BLAS leaves C untouched when K = 0 only if beta == 1; make the semantics explicit.
            for i in 0..<m {
                let row = c + i * ldc
                if beta == 0 { row.update(repeating: 0, count: n) } else if beta != 1 {
                    for j in 0..<n { row[j] *= beta }
                }
            }
            return
        }
        if m == 1 && !transA {
            // c (1, N) = a (1, K) · op(B). With B stored (N, K) that is B · a; with B stored (K, N) it is Bᵀ · a.
            if transB {
                cblas_sgemv(CblasRowMajor, CblasNoTrans, Int32(n), Int32(k), alpha, b, Int32(ldb), a, 1, beta, c, 1)
            } else {
                cblas_sgemv(CblasRowMajor, CblasTrans, Int32(k), Int32(n), alpha, b, Int32(ldb), a, 1, beta, c, 1)
            }
            return
        }
        if transB && !transA && m <= skinnyMaxRows && (beta == 0 || beta == 1) {
            skinnyTransB(c, ldc: ldc, a, lda: lda, b, ldw: ldb, m: m, n: n, k: k, alpha: alpha, beta: beta)
            return
        }
        cblas_sgemm(CblasRowMajor,
                    transA ? CblasTrans : CblasNoTrans,
                    transB ? CblasTrans : CblasNoTrans,
                    Int32(m), Int32(n), Int32(k), alpha,
                    a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    }
}
