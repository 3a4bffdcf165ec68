/// The `BPE` model of `tokenizer.json`, merging exactly like `tokenizers`' `Word::merge_all`: a heap of candidate
/// merges ordered by (rank, position), the lowest rank first and the leftmost among equal ranks.
struct BPEModel: Sendable {
    let vocab: TokenTable
    let merges: PairTable
    let unkId: Int32?
    let fuseUnk: Bool
    let byteFallback: Bool
    /// `ignore_merges`: a word that is itself in the vocabulary is emitted as one token without merging.
    let ignoreMerges: Bool
    /// Token id of `<0xXX>` for each byte, -1 when absent (byte fallback).
    let byteFallbackIds: [Int32]   // (256)
    /// Token id of the ByteLevel character for each byte, -1 when the vocabulary lacks it.
    let byteLevelIds: [Int32]      // (256)

    /// Per-call scratch, so the merge loop allocates nothing per word.
    struct Scratch {
        var ids: [Int32] = []      // (symbols) current token id of each symbol
        var prev: [Int32] = []     // (symbols) index of the previous live symbol, -1 at the start
        var next: [Int32] = []     // (symbols) index of the next live symbol, -1 at the end
        var alive: [Bool] = []     // (symbols)
        var heap: [UInt64] = []    // rank << 32 | position, a min-heap
        var key: [UInt8] = []      // the word as ByteLevel characters, for the vocabulary lookup
        var split = SplitScratch()
    }

    /// Encodes one pre-tokenized word (`bytes`: UTF-8 of the word, or raw bytes when `byteLevel`).
    func encodeWord(_ bytes: UnsafeBufferPointer<UInt8>, byteLevel: Bool, into out: inout [Int32],
                    scratch s: inout Scratch) {
        if bytes.isEmpty { return }
        if byteLevel {
            // The word as tokenizers sees it: each byte as its ByteLevel character (UTF-8).
            s.key.removeAll(keepingCapacity: true)
            for b in bytes { ByteLevelMap.appendUTF8(of: b, to: &s.key) }
            if ignoreMerges, let id = s.key.withUnsafeBufferPointer({ vocab.lookup($0) }) {
                out.append(id)
                return
            }
            s.ids.removeAll(keepingCapacity: true)
            var allKnown = true
            for b in bytes {
                let id = byteLevelIds[Int(b)]
                if id < 0 { allKnown = false; break }
                s.ids.append(id)
            }
            if !allKnown {
                s.ids.removeAll(keepingCapacity: true)
                let key = s.key
                key.withUnsafeBufferPointer { initialSymbols($0, into: &s.ids) }
            }
        } else {
            if ignoreMerges, let id = vocab.lookup(bytes) {
                out.append(id)
                return
            }
            s.ids.removeAll(keepingCapacity: true)
            initialSymbols(bytes, into: &s.ids)
        }
        mergeAll(&s)
        var i = 0
        while i >= 0 && i < s.ids.count {
            if s.alive[i] { out.append(s.ids[i]) }
            i = Int(s.next[i])
        }
    }

    /// `BPE::merge_word` before merging: one symbol per character, byte fallback or unk for unknown ones.
    private func initialSymbols(_ w: UnsafeBufferPointer<UInt8>, into ids: inout [Int32]) {
        var pendingUnk = false
        var i = 0
        let n = w.count
        while i < n {
            let b0 = w[i]
            var len = b0 < 0x80 ? 1 : b0 < 0xE0 ? 2 : b0 < 0xF0 ? 3 : 4
            if i + len > n { len = n - i }
            let ch = UnsafeBufferPointer(rebasing: w[i..<(i + len)])
            if let id = vocab.lookup(ch) {
                if pendingUnk, let u = unkId { ids.append(u); pendingUnk = false }
                ids.append(id)
            } else {
                var fellBack = false
                if byteFallback {
                    var all = true
                    for b in ch where byteFallbackIds[Int(b)] < 0 { all = false; break }
                    if all {
                        // (tokenizers leaves a pending unk pending here: it is added after these bytes.)
                        for b in ch { ids.append(byteFallbackIds[Int(b)]) }
                        fellBack = true
                    }
                }
                if !fellBack, let u = unkId {
                    if pendingUnk && !fuseUnk { ids.append(u) }
                    pendingUnk = true
                }
            }
            i += len
        }
        if pendingUnk, let u = unkId { ids.append(u) }
    }

    /// `Word::merge_all` without dropout.
    private func mergeAll(_ s: inout Scratch) {
        let n = s.ids.count
        s.prev.removeAll(keepingCapacity: true)
        s.next.removeAll(keepingCapacity: true)
        s.alive.removeAll(keepingCapacity: true)
        for i in 0..<n {
            s.prev.append(Int32(i - 1))
            s.next.append(i + 1 < n ? Int32(i + 1) : -1)
            s.alive.append(true)
        }
        if n < 2 { return }
        s.heap.removeAll(keepingCapacity: true)
        for i in 0..<(n - 1) {
            if let m = merges.get(s.ids[i], s.ids[i + 1]) { heapPush(&s.heap, UInt64(m.rank) << 32 | UInt64(i)) }
        }
        while let top = heapPop(&s.heap) {
            let pos = Int(top & 0xFFFF_FFFF)
            let rank = Int32(top >> 32)
            if !s.alive[pos] { continue }
            let nx = Int(s.next[pos])
            if nx < 0 { continue }
            // Skip stale entries: the pair at `pos` must still merge with this rank.
            guard let m = merges.get(s.ids[pos], s.ids[nx]), m.rank == rank else { continue }
            s.ids[pos] = m.newId
            s.alive[nx] = false
            let nn = Int(s.next[nx])
            s.next[pos] = Int32(nn)
            if nn >= 0 { s.prev[nn] = Int32(pos) }
            let pv = Int(s.prev[pos])
            if pv >= 0, let m2 = merges.get(s.ids[pv], s.ids[pos]) {
                heapPush(&s.heap, UInt64(m2.rank) << 32 | UInt64(pv))
            }
            if nn >= 0, let m3 = merges.get(s.ids[pos], s.ids[nn]) {
                heapPush(&s.heap, UInt64(m3.rank) << 32 | UInt64(pos))
            }
        }
    }
}

@inline(__always)
private func heapPush(_ h: inout [UInt64], _ v: UInt64) {
    h.append(v)
    var i = h.count - 1
    while i > 0 {
        let p = (i - 1) >> 1
        if h[p] <= v { break }
        h[i] = h[p]
        i = p
    }
    h[i] = v
}

@inline(__always)
private func heapPop(_ h: inout [UInt64]) -> UInt64? {
    guard let last = h.popLast() else { return nil }
    if h.isEmpty { return last }
    let top = h[0]
    var i = 0
    let n = h.count
    while true {
        var c = 2 * i + 1
        if c >= n { break }
        if c + 1 < n && h[c + 1] < h[c] { c += 1 }
        if h[c] >= last { break }
        h[i] = h[c]
        i = c
    }
    h[i] = last
    return top
}

/// GPT-2's byte-to-unicode map: printable Latin-1 bytes map to themselves, the other 68 to U+0100 onwards.
enum ByteLevelMap {
    /// Scalar value for each byte.
    static let scalarOf: [UInt32] = {
        var table = [UInt32](repeating: 0, count: 256)
        var n: UInt32 = 0
        for b in 0..<256 {
            let printable = (0x21...0x7E).contains(b) || (0xA1...0xAC).contains(b) || (0xAE...0xFF).contains(b)
            if printable { table[b] = UInt32(b) } else { table[b] = 256 + n; n += 1 }
        }
        return table
    }()

    /// Byte for each scalar value below 0x144, -1 for scalars that are not in the map.
    static let byteOf: [Int16] = {
        var t = [Int16](repeating: -1, count: 0x144)
        for (b, v) in scalarOf.enumerated() { t[Int(v)] = Int16(b) }
        return t
    }()

    /// The scalar of byte `b`, computed (a global table would cost a `swift_once` check per byte): bytes
    /// 0x00-0x20 -> U+0100..., 0x7F-0xA0 -> U+0121..., 0xAD -> U+0143, every other byte maps to itself.
    @inline(__always)
    static func scalar(_ b: UInt8) -> UInt32 {
        let v = UInt32(b)
        if v <= 0x20 { return 256 + v }
        if v < 0x7F { return v }
        if v <= 0xA0 { return 256 + 33 + (v - 0x7F) }
        if v == 0xAD { return 323 }
        return v
    }

    @inline(__always)
    static func appendUTF8(of b: UInt8, to out: inout [UInt8]) {
        let v = scalar(b)
        if v < 0x80 { out.append(UInt8(v)) } else {
            out.append(UInt8(0xC0 | (v >> 6)))
            out.append(UInt8(0x80 | (v & 0x3F)))
        }
    }
}
