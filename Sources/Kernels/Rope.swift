import Foundation

/// Rotary position embedding tables in the Hugging Face `rotate_half` convention: dimension i is paired with
/// i + D/2 and rotated by angle pos·θ^(−2i/D). Angles and cos/sin are computed in Double, then stored as Float.
public struct RopeTable: Sendable {
    public let headDim: Int
    public let maxPositions: Int
    public let theta: Double
    /// cos(pos·invFreq[i]) laid out (maxPositions, headDim/2).
    public let cos: [Float]
    /// sin(pos·invFreq[i]) laid out (maxPositions, headDim/2).
    public let sin: [Float]

    /// `headDim` must be even and positive.
    public init(headDim: Int, maxPositions: Int, theta: Double) {
        precondition(headDim > 0 && headDim % 2 == 0, "RopeTable: headDim \(headDim) must be even and > 0")
        self.headDim = headDim
        self.maxPositions = maxPositions
        self.theta = theta
        let half = headDim / 2
        var c = [Float](repeating: 0, count: maxPositions * half)
        var s = [Float](repeating: 0, count: maxPositions * half)
        for i in 0..<half {
            let invFreq = 1.0 / Foundation.pow(theta, Double(2 * i) / Double(headDim))
            for p in 0..<maxPositions {
                let a = Double(p) * invFreq
                c[p * half + i] = Float(Foundation.cos(a))
                s[p * half + i] = Float(Foundation.sin(a))
            }
        }
        self.cos = c
        self.sin = s
    }
}

/// Rotates x in place: (x1, x2) → (x1·cos − x2·sin, x2·cos + x1·sin) for each pair (i, i + D/2).
/// Positions must be in 0..<table.maxPositions (checked).
public func ropeForward(
    _ x: UnsafeMutablePointer<Float>,        // (N, H, D) in place
    _ positions: UnsafePointer<Int32>,       // (N)
    _ table: RopeTable,
    n: Int, nHeads: Int
) {
    ropeApply(x, positions, table, n: n, nHeads: nHeads, sign: 1)
}

/// Inverse rotation in place (the gradient of a rotation is its transpose). Not accumulating: dx is both the
/// incoming gradient w.r.t. the rotated values and, on return, the gradient w.r.t. the unrotated values.
public func ropeBackward(
    _ dx: UnsafeMutablePointer<Float>,       // (N, H, D) in place
    _ positions: UnsafePointer<Int32>,       // (N)
    _ table: RopeTable,
    n: Int, nHeads: Int
) {
    ropeApply(dx, positions, table, n: n, nHeads: nHeads, sign: -1)
}

private func ropeApply(
    _ x: UnsafeMutablePointer<Float>, _ positions: UnsafePointer<Int32>, _ table: RopeTable,
    n: Int, nHeads: Int, sign: Float
) {
    let d = table.headDim, half = d / 2
    for i in 0..<n {
        let p = Int(positions[i])
        precondition(p >= 0 && p < table.maxPositions,
                     "rope: position \(p) at row \(i) not in 0..<\(table.maxPositions)")
    }
    table.cos.withUnsafeBufferPointer { cosB in
        table.sin.withUnsafeBufferPointer { sinB in
            let cosP = cosB.baseAddress!, sinP = sinB.baseAddress!
            let sv = SIMD8<Float>(repeating: sign)
            Parallel.forRanges(count: n, work: n * nHeads * d * 3) { rows in
                for i in rows {
                    let cr = cosP + Int(positions[i]) * half, sr = sinP + Int(positions[i]) * half
                    for h in 0..<nHeads {
                        let x1 = x + (i * nHeads + h) * d, x2 = x1 + half
                        var j = 0
                        while j + 8 <= half {
                            let a = load8(x1 + j), b = load8(x2 + j)
                            let c = load8(cr + j), s = load8(sr + j) * sv
                            store8(x1 + j, a * c - b * s)
                            store8(x2 + j, b * c + a * s)
                            j += 8
                        }
                        while j < half {
                            let a = x1[j], b = x2[j], c = cr[j], s = sr[j] * sign
                            x1[j] = a * c - b * s
                            x2[j] = b * c + a * s
                            j += 1
                        }
                    }
                }
            }
        }
    }
}
