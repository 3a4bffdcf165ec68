import Foundation

/// Next-token cross-entropy for SFT with ignore index −1.

/// losses[i] = logsumexp(z[i]) − z[i, target] (0 where target = −1); lse[i] saved for every row.
/// The mean loss is Σ losses / (number of targets ≠ −1), see `crossEntropyCount`.
public func crossEntropyForward(
    _ losses: UnsafeMutablePointer<Float>,   // (N)
    _ lse: UnsafeMutablePointer<Float>,      // (N) saved
    _ logits: UnsafePointer<Float>,          // (N, V)
    _ targets: UnsafePointer<Int32>,         // (N), −1 = ignore
    n: Int, v: Int
) {
    for i in 0..<n {
        precondition(targets[i] >= -1 && Int(targets[i]) < v,
                     "crossEntropyForward: target \(targets[i]) at row \(i) not in -1..<\(v)")
    }
    Parallel.forRanges(count: n, work: n * v * logitElementCost) { rows in
        for i in rows {
            let z = logits + i * v
            let st = logitRowStats(z, v, invT: 1, wantExpD: false, wantD: false)
            let m = st.max, logS = Foundation.log(st.sumExp)
            lse[i] = Float(Double(m) + logS)
            let t = Int(targets[i])
            losses[i] = t < 0 ? 0 : Float(logS - Double(z[t] - m))
        }
    }
}

/// dLogits[i, j] += dLosses[i] · (softmax(z[i])_j − 1[j = target]); rows with target −1 are skipped.
/// For the mean loss pass dLosses[i] = 1 / crossEntropyCount(targets).
public func crossEntropyBackward(
    _ dLogits: UnsafeMutablePointer<Float>,  // (N, V) accumulate
    _ dLosses: UnsafePointer<Float>,         // (N)
    _ logits: UnsafePointer<Float>,          // (N, V)
    _ lse: UnsafePointer<Float>,             // (N) from forward
    _ targets: UnsafePointer<Int32>,         // (N)
    n: Int, v: Int
) {
    Parallel.forRanges(count: n, work: n * v * logitElementCost) { rows in
        for i in rows {
            let t = Int(targets[i])
            let g = dLosses[i]
            if t < 0 || g == 0 { continue }
            precondition(t < v, "crossEntropyBackward: target \(t) at row \(i) not in -1..<\(v)")
            softmaxGradRow(dLogits + i * v, logits + i * v, v, invT: 1, lse: lse[i], coef: g)
            dLogits[i * v + t] -= g
        }
    }
}

/// Number of rows whose target is not the ignore index −1.
public func crossEntropyCount(_ targets: UnsafePointer<Int32>, n: Int) -> Int {
    var c = 0
    for i in 0..<n where targets[i] >= 0 { c += 1 }
    return c
}
