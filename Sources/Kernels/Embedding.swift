/// Token embedding lookup (nn.Embedding).

/// out[i] = table[tokens[i]] for i < n. Token ids must be in 0..<V (checked: an id outside is a caller bug).
public func embeddingForward(
    _ out: UnsafeMutablePointer<Float>,      // (N, C)
    _ tokens: UnsafePointer<Int32>,          // (N)
    _ table: UnsafePointer<Float>,           // (V, C)
    n: Int, c: Int
) {
    for i in 0..<n {
        let t = Int(tokens[i])
        precondition(t >= 0, "embeddingForward: negative token id \(t) at row \(i)")
        (out + i * c).update(from: table + t * c, count: c)
    }
}

/// Same as `embeddingForward` with a vocabulary bound check (`tokens` must be < vocab).
public func embeddingForward(
    _ out: UnsafeMutablePointer<Float>,      // (N, C)
    _ tokens: UnsafePointer<Int32>,          // (N)
    _ table: UnsafePointer<Float>,           // (V, C)
    n: Int, c: Int, vocab: Int
) {
    for i in 0..<n {
        let t = Int(tokens[i])
        precondition(t >= 0 && t < vocab, "embeddingForward: token id \(t) at row \(i) not in 0..<\(vocab)")
    }
    embeddingForward(out, tokens, table, n: n, c: c)
}

/// dTable[tokens[i]] += dOut[i] (repeated tokens accumulate).
public func embeddingBackward(
    _ dTable: UnsafeMutablePointer<Float>,   // (V, C)
    _ dOut: UnsafePointer<Float>,            // (N, C)
    _ tokens: UnsafePointer<Int32>,          // (N)
    n: Int, c: Int
) {
    for i in 0..<n {
        let t = Int(tokens[i])
        precondition(t >= 0, "embeddingBackward: negative token id \(t) at row \(i)")
        axpy(dTable + t * c, 1, dOut + i * c, c)
    }
}

/// `embeddingForward` from a table given as a `WeightMatrix` (BF16 rows are widened, exactly).
public func embeddingForward(
    _ out: UnsafeMutablePointer<Float>,      // (N, C)
    _ tokens: UnsafePointer<Int32>,          // (N)
    _ table: WeightMatrix,                   // (V, C)
    n: Int, c: Int
) {
    switch table {
    case .f32(let t): embeddingForward(out, tokens, t, n: n, c: c)
    case .bf16(let t):
        for i in 0..<n {
            let tok = Int(tokens[i])
            precondition(tok >= 0, "embeddingForward: negative token id \(tok) at row \(i)")
            widenBF16(out + i * c, t + tok * c, count: c)
        }
    }
}
