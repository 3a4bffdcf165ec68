import Foundation
import Testing
import TestSupport
import Kernels

/// The decode step's attention (`decodeAttentionForward`: one new token against cached rows in two segments)
/// against the training attention (`attentionForward` over the whole packed sequence): decoding position t of
/// a sequence must give row t of the training output, wherever the shared prefix ends (P = 0, inside, all but
/// the new token), for GQA, multi-head and multi-query shapes, and the head sizes of the real models.
@Suite struct DecodeAttentionTests {
    @Test(arguments: [(4, 2, 8), (14, 2, 64), (2, 2, 16), (3, 1, 12), (9, 3, 64)])
    func matchesTrainingAttention(nh: Int, nkv: Int, hd: Int) {
        let t = 37, qs = nh * hd, kvs = nkv * hd, group = nh / nkv
        var rng = TestRNG(seed: UInt64(nh * 100 + nkv * 10 + hd))
        let q = Buf(rng.normals(t * qs)), k = Buf(rng.normals(t * kvs)), v = Buf(rng.normals(t * kvs))
        // Reference: the training attention over the sequence (row i attends to rows 0...i).
        let ref = Buf(zeros: t * qs), lse = Buf(zeros: t * nh)
        attentionForward(ref.p, lse.p, q.cp, k.cp, v.cp, seqStarts: [0, t], nHeads: nh, nKVHeads: nkv, headDim: hd)
        let out = Buf(zeros: qs), scores = Buf(zeros: group * t)
        for len in [1, 2, 9, 16, 17, 37] {
            for pre in Set([0, 1, len / 2, len - 1]) where pre < len {
                // The prefix lives in another buffer (as a forked slot reads its root's rows), the own rows after it.
                let prefixK = Buf(Array(k.array[0..<(pre * kvs)])), prefixV = Buf(Array(v.array[0..<(pre * kvs)]))
                out.p.update(repeating: .nan, count: qs)   // every output element must be written
                decodeAttentionForward(out.p, q.cp + (len - 1) * qs,
                                       prefixKeys: pre > 0 ? prefixK.cp : nil, prefixValues: pre > 0 ? prefixV.cp : nil,
                                       prefixLength: pre, keys: k.cp + pre * kvs, values: v.cp + pre * kvs,
                                       length: len, scores: scores.p, nHeads: nh, nKVHeads: nkv, headDim: hd)
                let want = Array(ref.array[((len - 1) * qs)..<(len * qs)])
                expectClose(out.array, want, atol: 1e-5, rtol: 1e-4, "NH \(nh) NKV \(nkv) HD \(hd) L \(len) P \(pre)")
            }
        }
    }

    /// One token attends only to itself: the output is its value row, for every head of the group.
    @Test func singleTokenIsItsValue() {
        let nh = 6, nkv = 2, hd = 24, group = nh / nkv
        var rng = TestRNG(seed: 5)
        let q = Buf(rng.normals(nh * hd)), k = Buf(rng.normals(nkv * hd)), v = Buf(rng.normals(nkv * hd))
        let out = Buf(zeros: nh * hd), scores = Buf(zeros: group)
        decodeAttentionForward(out.p, q.cp, prefixKeys: nil, prefixValues: nil, prefixLength: 0,
                               keys: k.cp, values: v.cp, length: 1, scores: scores.p,
                               nHeads: nh, nKVHeads: nkv, headDim: hd)
        for h in 0..<nh {
            let g = h / group
            #expect(Array(out.array[(h * hd)..<((h + 1) * hd)]) == Array(v.array[(g * hd)..<((g + 1) * hd)]), "head \(h)")
        }
    }
}
