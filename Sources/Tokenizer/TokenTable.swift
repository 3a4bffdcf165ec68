/// The model vocabulary: token id <-> the token's UTF-8 bytes, with an open-addressing hash table keyed on the
/// bytes. Swift `String` keys would hash the Unicode-normalised form, which is slow for byte-level tokens
/// (`Ġhello` is non-ASCII); here a lookup hashes raw bytes and allocates nothing.
struct TokenTable: Sendable {
    /// All token bytes back to back; token `id` is `storage[start[id] ..< start[id] + length[id]]`.
    private(set) var storage: [UInt8] = []
    private(set) var start: [Int32] = []   // (maxId + 1), -1 for ids the vocabulary does not define
    private(set) var length: [Int32] = []  // (maxId + 1)
    /// (capacity) hash high bits << 32 | token id, `empty` when free; capacity is a power of two. Keeping 32 bits
    /// of the hash in the slot skips the token bytes (another cache miss) on almost every probe mismatch.
    private var slots: [UInt64] = []
    private static let empty = UInt64.max
    private var mask = 0
    private(set) var count = 0

    init(capacity n: Int, maxId: Int) {
        var cap = 16
        while cap < 2 * max(n, 1) { cap <<= 1 }
        slots = [UInt64](repeating: TokenTable.empty, count: cap)
        mask = cap - 1
        start = [Int32](repeating: -1, count: maxId + 1)
        length = [Int32](repeating: 0, count: maxId + 1)
    }

    @inline(__always)
    static func hash(_ p: UnsafeBufferPointer<UInt8>) -> Int {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in p { h = (h ^ UInt64(b)) &* 0x100_0000_01b3 }
        return Int(truncatingIfNeeded: h ^ (h >> 29))
    }

    /// Adds `bytes` as token `id`; returns false when the bytes or the id are already present.
    mutating func insert(_ bytes: UnsafeBufferPointer<UInt8>, id: Int) -> Bool {
        guard id >= 0, id < start.count, start[id] < 0 else { return false }
        if lookup(bytes) != nil { return false }
        start[id] = Int32(storage.count)
        length[id] = Int32(bytes.count)
        storage.append(contentsOf: bytes)
        let h = TokenTable.hash(bytes)
        var i = h & mask
        while slots[i] != TokenTable.empty { i = (i + 1) & mask }
        slots[i] = UInt64(UInt32(truncatingIfNeeded: h >> 32)) << 32 | UInt64(id)
        count += 1
        return true
    }

    /// The id of the token whose UTF-8 bytes are `bytes`.
    @inline(__always)
    func lookup(_ bytes: UnsafeBufferPointer<UInt8>) -> Int32? {
        let h = TokenTable.hash(bytes)
        let tag = UInt64(UInt32(truncatingIfNeeded: h >> 32))
        var i = h & mask
        return storage.withUnsafeBufferPointer { st in
            slots.withUnsafeBufferPointer { sl in
                while true {
                    let e = sl[i]
                    if e == TokenTable.empty { return nil }
                    if e >> 32 == tag {
                        let id = Int(e & 0xFFFF_FFFF)
                        let s = Int(start[id]), n = Int(length[id])
                        if n == bytes.count && (n == 0 || memcmpEqual(st.baseAddress! + s, bytes.baseAddress!, n)) {
                            return Int32(id)
                        }
                    }
                    i = (i + 1) & mask
                }
            }
        }
    }

    func lookup(_ bytes: [UInt8]) -> Int32? {
        bytes.withUnsafeBufferPointer { lookup($0) }
    }

    /// The bytes of token `id`, nil when the vocabulary has no such id.
    func bytes(_ id: Int) -> ArraySlice<UInt8>? {
        guard id >= 0, id < start.count, start[id] >= 0 else { return nil }
        let s = Int(start[id])
        return storage[s..<(s + Int(length[id]))]
    }

    var maxId: Int { start.count - 1 }
}

@inline(__always)
private func memcmpEqual(_ a: UnsafePointer<UInt8>, _ b: UnsafePointer<UInt8>, _ n: Int) -> Bool {
    for k in 0..<n where a[k] != b[k] { return false }
    return true
}

/// BPE merges keyed on the pair of token ids: (left, right) -> rank (index in `model.merges`) and the merged id.
/// Open addressing with a multiplicative hash: this is the innermost lookup of the merge loop.
struct PairTable: Sendable {
    private var keys: [UInt64] = []   // (capacity) left << 32 | right, UInt64.max empty
    private var values: [UInt64] = [] // (capacity) rank << 32 | newId
    private var mask = 0

    init(capacity n: Int) {
        var cap = 16
        while cap < 2 * max(n, 1) { cap <<= 1 }
        keys = [UInt64](repeating: .max, count: cap)
        values = [UInt64](repeating: 0, count: cap)
        mask = cap - 1
    }

    @inline(__always)
    private func slot(_ key: UInt64) -> Int {
        Int(truncatingIfNeeded: (key &* 0x9E37_79B9_7F4A_7C15) >> 20) & mask
    }

    /// Sets the merge for (left, right); a later duplicate overwrites, as a Rust HashMap insert does.
    mutating func set(_ left: Int32, _ right: Int32, rank: Int32, newId: Int32) {
        let key = UInt64(UInt32(bitPattern: left)) << 32 | UInt64(UInt32(bitPattern: right))
        var i = slot(key)
        while keys[i] != .max && keys[i] != key { i = (i + 1) & mask }
        keys[i] = key
        values[i] = UInt64(UInt32(bitPattern: rank)) << 32 | UInt64(UInt32(bitPattern: newId))
    }

    /// (rank, newId) for the pair, nil when the pair does not merge.
    @inline(__always)
    func get(_ left: Int32, _ right: Int32) -> (rank: Int32, newId: Int32)? {
        let key = UInt64(UInt32(bitPattern: left)) << 32 | UInt64(UInt32(bitPattern: right))
        var i = slot(key)
        while true {
            let k = keys[i]
            if k == key {
                let v = values[i]
                return (Int32(truncatingIfNeeded: v >> 32), Int32(truncatingIfNeeded: v & 0xFFFF_FFFF))
            }
            if k == .max { return nil }
            i = (i + 1) & mask
        }
    }
}
