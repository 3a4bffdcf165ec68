import Shared
import Foundation
import Kernels
import SafeTensors

/// How a model holds the matrices of its weights (embedding, attention and MLP projections, LM head): `f32`, or
/// `bf16` — half the memory, for frozen weights only (a LoRA base, inference: generate / score / eval / actors).
/// Every product widens BF16 to F32 inside the kernels (`WeightMatrix`), so the arithmetic stays F32; what
/// changes is that each weight is rounded to BF16 once, when stored. Norms and biases stay F32.
public enum BaseWeights: String, Codable, Sendable, CaseIterable {
    case f32, bf16
}

extension ParameterLayout.Entry {
    /// A 2-D tensor (embedding, projection, LM head): what BF16 base weights store as BF16.
    public var isMatrix: Bool { shape.count == 2 }
}

extension ParameterLayout {
    /// Bytes a model's weights take held as `baseWeights` (alignment padding counted for F32, where it is
    /// allocated; BF16 matrices + F32 vectors otherwise: the F32 buffer's matrix pages are never touched).
    public func weightBytes(_ baseWeights: BaseWeights) -> Int {
        guard baseWeights == .bf16 else { return totalCount * 4 }
        return entries.reduce(0) { $0 + ($1.isMatrix ? 2 * paddedCount($1.count) : 4 * $1.count) }
    }

    private func paddedCount(_ n: Int) -> Int { (n + Self.alignmentFloats - 1) / Self.alignmentFloats * Self.alignmentFloats }
}

extension Transformer {
    /// The weight matrix at layout offset `offset` for the kernels (BF16 or F32 per `baseWeights`).
    @inline(__always)
    func weight(_ offset: Int) -> WeightMatrix {
        if let b = matricesBF16 { return .bf16(UnsafePointer(b.pointer + offset)) }
        return .f32(UnsafePointer(parameters.pointer + offset))
    }

    /// Bytes the weights take in memory: F32 everywhere, or BF16 matrices + F32 vectors.
    public var weightBytes: Int { layout.weightBytes(baseWeights) }

    /// Stores tensor `e` from `src` (e.count F32 values): copied, or rounded to BF16 (nearest-even) for a matrix
    /// of a BF16 model.
    public func setTensor(_ e: ParameterLayout.Entry, from src: UnsafePointer<Float>) {
        if let b = matricesBF16, e.isMatrix {
            let dst = b.pointer + e.offset
            for i in 0..<e.count { dst[i] = BFloat16.from(src[i]) }
        } else {
            (parameters.pointer + e.offset).update(from: src, count: e.count)
        }
    }

    /// Lets `fill` write tensor `e` as F32 (a checkpoint reader, an initializer): straight into `parameters`, or,
    /// for a matrix of a BF16 model, into a temporary F32 copy of that one tensor that is then rounded to BF16
    /// (a load's transient peak is the largest tensor in F32, e.g. 545 MB for Qwen2.5-0.5B's embedding).
    public func loadTensor(_ e: ParameterLayout.Entry, _ fill: (UnsafeMutablePointer<Float>) throws -> Void) rethrows {
        guard matricesBF16 != nil, e.isMatrix else { return try fill(parameters.pointer + e.offset) }
        let tmp = UnsafeMutablePointer<Float>.allocate(capacity: max(1, e.count))
        defer { tmp.deallocate() }
        try fill(tmp)
        setTensor(e, from: tmp)
    }

    /// Tensor `e` as F32 into `dst` (e.count values; BF16 widened exactly).
    public func readTensor(_ e: ParameterLayout.Entry, into dst: UnsafeMutablePointer<Float>) {
        if let b = matricesBF16, e.isMatrix {
            widenBF16(dst, b.pointer + e.offset, count: e.count)
        } else {
            dst.update(from: parameters.pointer + e.offset, count: e.count)
        }
    }

    /// Every tensor from a flat F32 buffer in this model's layout (`layout.totalCount` floats, e.g. a weight
    /// snapshot): copied, or rounded to BF16 per matrix.
    public func setParameters(from flat: UnsafePointer<Float>) {
        if matricesBF16 == nil { parameters.pointer.update(from: flat, count: layout.totalCount); return }
        for e in layout.entries { setTensor(e, from: flat + e.offset) }
    }

    /// Every tensor as F32 into a flat buffer in this model's layout (`layout.totalCount` floats; alignment
    /// padding is left as it is).
    public func readParameters(into flat: UnsafeMutablePointer<Float>) {
        if matricesBF16 == nil { flat.update(from: parameters.pointer, count: layout.totalCount); return }
        for e in layout.entries { readTensor(e, into: flat + e.offset) }
    }

    /// Elements [start, start + count) of the flat F32 view of every tensor (what `readParameters` would write
    /// there; alignment padding reads as 0 for a BF16 model), for building a snapshot a slice at a time.
    public func readParameters(start: Int, count: Int, into dst: UnsafeMutablePointer<Float>) {
        guard let b = matricesBF16 else { dst.update(from: parameters.pointer + start, count: count); return }
        dst.initialize(repeating: 0, count: count)
        let end = start + count
        for e in layout.entries where e.offset < end && e.offset + e.count > start {
            let lo = max(start, e.offset), hi = min(end, e.offset + e.count)
            if e.isMatrix {
                widenBF16(dst + (lo - start), b.pointer + lo, count: hi - lo)
            } else {
                (dst + (lo - start)).update(from: parameters.pointer + lo, count: hi - lo)
            }
        }
    }

    /// The largest |w − bf16(w)| over the matrices of `flat` (a flat F32 buffer in this layout): 0 when every
    /// matrix value is exactly representable in BF16, so that a BF16 model computes what the F32 one does.
    public func bf16RoundingError(of flat: UnsafePointer<Float>) -> Float {
        var worst: Float = 0
        for e in layout.entries where e.isMatrix {
            let p = flat + e.offset
            for i in 0..<e.count { worst = max(worst, abs(p[i] - BFloat16.toFloat(BFloat16.from(p[i])))) }
        }
        return worst
    }
}
