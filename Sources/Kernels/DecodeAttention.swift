/// Attention of one decode step: each sequence's one new token against its cached keys and values (the KV
/// cache), grouped-query. The training attention (`attentionForward`) is the reference: decoding token t of a
/// sequence gives its row t (tested in `DecodeAttentionTests`).
///
/// A sequence's cached rows come in two segments: a shared prefix (rows 0..<P of another cache slot: the prompt
/// its group forked from, read by reference) and its own rows P..<L. Both have row stride NKV·HD (one position's
/// keys of all kv heads), as the cache stores them. Query head h reads kv head h / (NH / NKV): a kv head's query
/// group (G = NH / NKV heads) is one small GEMM against its keys, then one against its values.
///
/// out[h] = Σ_{j < L} softmax_j(q[h] · k_j · scale) v_j,  scale = 1/sqrt(HD).
///
/// Single-threaded: the decode step parallelises over sequences (each worker passes its own `scores` scratch).
public func decodeAttentionForward(
    _ out: UnsafeMutablePointer<Float>,        // (NH, HD) the new token's output
    _ q: UnsafePointer<Float>,                 // (NH, HD) the new token's queries (rotated)
    prefixKeys: UnsafePointer<Float>?,         // (P, NKV, HD) rows 0..<P, or nil when P = 0
    prefixValues: UnsafePointer<Float>?,       // (P, NKV, HD)
    prefixLength: Int,                         // P
    keys: UnsafePointer<Float>,                // (L - P, NKV, HD) rows P..<L (the new token's included)
    values: UnsafePointer<Float>,              // (L - P, NKV, HD)
    length: Int,                               // L >= 1: the sequence's tokens, the new one included
    scores: UnsafeMutablePointer<Float>,       // (G, L) scratch
    nHeads: Int, nKVHeads: Int, headDim: Int
) {
    precondition(nKVHeads > 0 && nHeads % nKVHeads == 0 && headDim > 0,
                 "decodeAttentionForward: nHeads \(nHeads) must be a multiple of nKVHeads \(nKVHeads), headDim \(headDim) > 0")
    precondition(prefixLength >= 0 && prefixLength < length && (prefixLength == 0 || (prefixKeys != nil && prefixValues != nil)),
                 "decodeAttentionForward: prefix \(prefixLength) of \(length) rows (the new token is always the slot's own; a prefix needs its keys and values)")
    let hd = headDim, kvd = nKVHeads * hd, group = nHeads / nKVHeads
    let len = length, pre = prefixLength
    let scale = Float(1 / Double(hd).squareRoot())
    for g in 0..<nKVHeads {
        let qg = q + g * group * hd
        let og = out + g * group * hd
        // S (G, L) = scale · Q_g (G, HD) · K (L, HD)ᵀ over the prefix (columns 0..<P) and the own rows (P..<L).
        if pre > 0, let pk = prefixKeys {   // (checked non-nil above)
            Gemm.skinnyTransB(scores, ldc: len, qg, lda: hd, pk + g * hd, ldw: kvd,
                              m: group, n: pre, k: hd, alpha: scale, workers: 1)
        }
        Gemm.skinnyTransB(scores + pre, ldc: len, qg, lda: hd, keys + g * hd, ldw: kvd,
                          m: group, n: len - pre, k: hd, alpha: scale, workers: 1)
        for r in 0..<group { _ = softmaxInPlace(scores + r * len, len) }
        // O_g (G, HD) = P (G, L) · V (L, HD), the same two segments (the second accumulates).
        if pre > 0, let pv = prefixValues {
            Gemm.skinnyNN(og, ldc: hd, scores, lda: len, pv + g * hd, ldb: kvd, m: group, n: hd, k: pre)
        }
        Gemm.skinnyNN(og, ldc: hd, scores + pre, lda: len, values + g * hd, ldb: kvd,
                      m: group, n: hd, k: len - pre, accumulate: pre > 0)
    }
}
