import Foundation

/// Draws one token from a row of logits under temperature, top-k and top-p, and returns its behaviour
/// log-probability (see `SamplingParameters` for the convention). Owns its scratch buffers: one sampler per
/// decoding thread, reused for every token, so the hot loop allocates nothing.
public final class TokenSampler {
    public let vocabularySize: Int
    private var weights: [Double]   // (V) unnormalised probabilities exp((z - max) / T)
    private var order: [Int32]      // (V) candidate indices for top-k / top-p

    public init(vocabularySize: Int) {
        self.vocabularySize = vocabularySize
        weights = [Double](repeating: 0, count: vocabularySize)
        order = [Int32](repeating: 0, count: vocabularySize)
    }

    /// Tokens whose weight relative to the most likely one is below this are never candidates for top-p:
    /// their total mass is at most V·1e-13 (< 2e-8 for a 151k vocabulary), far below any nucleus cut.
    static let nucleusFloor = 1e-13

    /// Samples a token from `logits` (V). Returns (token, log p(token) at `params.logprobTemperature`),
    /// or nil when the row has a NaN/Inf (the caller reports which request).
    public func sample(_ logits: UnsafePointer<Float>, params: SamplingParameters,
                       rng: inout RandomSource) -> (token: Int32, logprob: Float)? {
        let v = vocabularySize
        var maxIndex = 0
        var maxValue = logits[0]
        for j in 1..<v where logits[j] > maxValue {   // first maximum wins, like torch.argmax
            maxValue = logits[j]; maxIndex = j
        }
        guard maxValue.isFinite else { return nil }
        let t = Double(params.logprobTemperature)
        let m = Double(maxValue)
        var total = 0.0
        var finite = true
        weights.withUnsafeMutableBufferPointer { w in
            for j in 0..<v {
                let z = Double(logits[j])
                finite = finite && z.isFinite
                let e = exp((z - m) / t)
                w[j] = e
                total += e
            }
        }
        guard finite else { return nil }
        let logTotal = log(total)
        func logprob(_ j: Int) -> Float { Float((Double(logits[j]) - m) / t - logTotal) }

        if params.temperature == 0 { return (Int32(maxIndex), logprob(maxIndex)) }

        let useTopK = params.topK > 0 && params.topK < v
        let useTopP = params.topP < 1
        if !useTopK && !useTopP {
            let token = draw(count: v, total: total, rng: &rng) { $0 }
            return (Int32(token), logprob(token))
        }

        // Candidates, most likely first. Ties keep the lower index first (a stable, reproducible order).
        var n = 0
        let floor = Self.nucleusFloor
        weights.withUnsafeBufferPointer { w in
            order.withUnsafeMutableBufferPointer { o in
                for j in 0..<v where !useTopP || useTopK || w[j] >= floor {
                    o[n] = Int32(j); n += 1
                }
            }
        }
        weights.withUnsafeBufferPointer { w in
            order.withUnsafeMutableBufferPointer { o in
                let cmp: (Int32, Int32) -> Bool = { a, b in
                    let wa = w[Int(a)], wb = w[Int(b)]
                    return wa > wb || (wa == wb && a < b)
                }
                if useTopK {
                    // Partial selection: only the top k need ordering.
                    let k = params.topK
                    partialSortPrefix(o.baseAddress!, count: n, k: k, by: cmp)
                    n = k
                } else {
                    o[0..<n].sort(by: cmp)
                }
            }
        }
        var kept = n
        var keptTotal = 0.0
        weights.withUnsafeBufferPointer { w in
            order.withUnsafeBufferPointer { o in
                var massAll = 0.0
                for i in 0..<n { massAll += w[Int(o[i])] }
                if useTopP {
                    // Keep the smallest prefix whose mass reaches top_p (the token that crosses is kept),
                    // as in HF's TopPLogitsWarper applied after top-k.
                    let target = Double(params.topP) * massAll
                    var cum = 0.0
                    kept = 0
                    while kept < n {
                        cum += w[Int(o[kept])]
                        kept += 1
                        if cum >= target { break }
                    }
                    keptTotal = cum
                } else {
                    keptTotal = massAll
                }
            }
        }
        let pick = draw(count: kept, total: keptTotal, rng: &rng) { Int(self.order[$0]) }
        return (Int32(pick), logprob(pick))
    }

    /// Inverse-CDF draw over candidates `index(0..<count)` with weights from `weights`.
    private func draw(count: Int, total: Double, rng: inout RandomSource, index: (Int) -> Int) -> Int {
        let u = rng.nextUnitDouble() * total
        var cum = 0.0
        for i in 0..<count {
            let j = index(i)
            cum += weights[j]
            if u < cum { return j }
        }
        // Rounding can leave u ≥ the final cumulative sum: take the last candidate with positive weight.
        for i in stride(from: count - 1, through: 0, by: -1) where weights[index(i)] > 0 { return index(i) }
        return index(0)
    }
}

/// Reorders `base[0..<count]` so that its first `k` elements are the k smallest under `by`, in order.
/// (Heap selection: O(n log k), no allocation.)
func partialSortPrefix(_ base: UnsafeMutablePointer<Int32>, count: Int, k: Int, by less: (Int32, Int32) -> Bool) {
    precondition(k <= count)
    if k == 0 { return }
    // Max-heap (under `less`) of the best k so far in base[0..<k].
    func siftDown(_ start: Int, _ n: Int) {
        var i = start
        while true {
            let l = 2 * i + 1, r = l + 1
            var largest = i
            if l < n && less(base[largest], base[l]) { largest = l }
            if r < n && less(base[largest], base[r]) { largest = r }
            if largest == i { return }
            base.swapAt(i, largest)
            i = largest
        }
    }
    for i in stride(from: k / 2 - 1, through: 0, by: -1) { siftDown(i, k) }
    for i in k..<count where less(base[i], base[0]) {
        base.swapAt(0, i)
        siftDown(0, k)
    }
    // Heap-sort the prefix into ascending order under `less`.
    var n = k
    while n > 1 {
        base.swapAt(0, n - 1)
        n -= 1
        siftDown(0, n)
    }
}

private extension UnsafeMutablePointer {
    func swapAt(_ i: Int, _ j: Int) {
        let t = self[i]; self[i] = self[j]; self[j] = t
    }
}
