/// Per-layer key/value cache for incremental decoding: `slots` independent sequences of up to `capacity` tokens.
/// Layout per layer: (slots, capacity, KVD) for K and for V, KVD = kv heads · head_dim, keys stored after RoPE.
///
/// Forking shares the prompt by reference: a child of slot P reads P's rows 0..<prefixLength (which never change:
/// sequences only append) and stores only its own rows, at their positions in its own slot. Attention over a
/// child runs over two segments (shared prefix, own rows). A released parent whose rows are still referenced
/// stays pinned (not reusable, no longer live) until its last child is released. A fork of a child shares the
/// same root and copies the child's own rows. Forking into a single child copies instead (nothing to share, and
/// no pinned slot).
public final class KVCache {
    public let slotCount: Int
    public let capacity: Int
    public let layerCount: Int
    public let kvDim: Int
    let k: FloatBuffer   // (L, S, cap, KVD)
    let v: FloatBuffer   // (L, S, cap, KVD)
    /// Tokens held per slot.
    public private(set) var lengths: [Int]
    /// Allocated and not released (decodable).
    private(set) var inUse: [Bool]
    /// Slot whose rows 0..<prefixLength[s] slot s reads (-1: none, all rows are s's own).
    private(set) var prefixSlot: [Int]
    private(set) var prefixLength: [Int]
    /// Live children reading this slot's rows.
    private var children: [Int]
    /// Released by its owner but still read by children: freed when the last child goes.
    private var pinned: [Bool]
    private var freeList: [Int]

    public init(layers: Int, slots: Int, capacity: Int, kvDim: Int) {
        slotCount = slots; self.capacity = capacity; layerCount = layers; self.kvDim = kvDim
        k = FloatBuffer(count: layers * slots * capacity * kvDim)
        v = FloatBuffer(count: layers * slots * capacity * kvDim)
        lengths = [Int](repeating: 0, count: slots)
        inUse = [Bool](repeating: false, count: slots)
        prefixSlot = [Int](repeating: -1, count: slots)
        prefixLength = [Int](repeating: 0, count: slots)
        children = [Int](repeating: 0, count: slots)
        pinned = [Bool](repeating: false, count: slots)
        freeList = Array((0..<slots).reversed())
    }

    /// Slots released but kept because children still read their rows.
    public var pinnedSlotCount: Int { pinned.reduce(0) { $0 + ($1 ? 1 : 0) } }

    public var freeSlotCount: Int { freeList.count }

    /// Row pointer for (layer, slot, position) in K.
    @inline(__always) func kRow(_ layer: Int, _ slot: Int, _ pos: Int) -> UnsafeMutablePointer<Float> {
        k.pointer + ((layer * slotCount + slot) * capacity + pos) * kvDim
    }
    @inline(__always) func vRow(_ layer: Int, _ slot: Int, _ pos: Int) -> UnsafeMutablePointer<Float> {
        v.pointer + ((layer * slotCount + slot) * capacity + pos) * kvDim
    }

    func allocate() throws -> Int {
        guard let s = freeList.popLast() else {
            throw ModelError.invalidInput("KV cache: all \(slotCount) slots are in use (release some or reserve more)")
        }
        inUse[s] = true
        lengths[s] = 0
        return s
    }

    func release(_ slot: Int) {
        guard slot >= 0, slot < slotCount, inUse[slot] else { return }
        inUse[slot] = false
        let root = prefixSlot[slot]
        prefixSlot[slot] = -1
        prefixLength[slot] = 0
        if children[slot] > 0 { pinned[slot] = true } else { free(slot) }
        if root >= 0 {
            children[root] -= 1
            if children[root] == 0 && pinned[root] { pinned[root] = false; free(root) }
        }
    }

    private func free(_ slot: Int) {
        lengths[slot] = 0
        freeList.append(slot)
    }

    func checkLive(_ slot: Int) throws {
        guard slot >= 0, slot < slotCount, inUse[slot] else {
            throw ModelError.invalidInput("KV cache: slot \(slot) is not allocated")
        }
    }

    func setLength(_ slot: Int, _ n: Int) { lengths[slot] = n }

    /// Copies batch rows' K/V (N, KVD) for `layer` into the slots: sequence b's row i goes to slots[b] at
    /// position batch.positions[i].
    func store(layer: Int, k kIn: UnsafePointer<Float>, v vIn: UnsafePointer<Float>, batch: PackedBatch, slots: [Int]) {
        for b in 0..<batch.sequenceCount {
            for i in batch.seqStarts[b]..<batch.seqStarts[b + 1] {
                let p = Int(batch.positions[i])
                kRow(layer, slots[b], p).update(from: kIn + i * kvDim, count: kvDim)
                vRow(layer, slots[b], p).update(from: vIn + i * kvDim, count: kvDim)
            }
        }
    }

    /// Makes fresh slot `to` continue from `from`: copies all of `from`'s rows into `to` (`share` false), or
    /// references `from`'s prefix (its root's rows, or `from` itself when it has no prefix) and copies only the
    /// rows `from` owns beyond that prefix.
    func fork(from: Int, to: Int, share: Bool) {
        let n = lengths[from]
        let root = share ? (prefixSlot[from] >= 0 ? prefixSlot[from] : from) : -1
        let shared = root < 0 ? 0 : (root == from ? n : prefixLength[from])
        // Rows `to` must hold itself: [shared, n) — from `from`'s own storage, or from its root for a
        // non-shared copy of a child.
        for l in 0..<layerCount {
            var p = shared
            while p < n {
                let (src, end) = rowSource(l, from, p)
                let count = min(n, end) - p
                kRow(l, to, p).update(from: src.k, count: count * kvDim)
                vRow(l, to, p).update(from: src.v, count: count * kvDim)
                p += count
            }
        }
        if root >= 0 {
            prefixSlot[to] = root
            prefixLength[to] = shared
            children[root] += 1
        }
        lengths[to] = n
    }

    /// Where slot s's row p of layer l lives, and the end of the contiguous run it belongs to (the prefix's end
    /// or the slot's length).
    @inline(__always)
    func rowSource(_ l: Int, _ s: Int, _ p: Int) -> ((k: UnsafeMutablePointer<Float>, v: UnsafeMutablePointer<Float>), Int) {
        let root = prefixSlot[s]
        if root >= 0 && p < prefixLength[s] { return ((kRow(l, root, p), vRow(l, root, p)), prefixLength[s]) }
        return ((kRow(l, s, p), vRow(l, s, p)), lengths[s])
    }
}
