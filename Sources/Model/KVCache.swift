/// Per-layer key/value cache for incremental decoding: `slots` independent sequences of up to `capacity` tokens.
/// Layout per layer: (slots, capacity, KVD) for K and for V, KVD = kv heads · head_dim, keys stored after RoPE.
///
/// Forking copies the parent's filled rows into the children (copy-on-fork): with G completions per prompt that
/// is G·prompt_len·KVD·2·layers floats per group, small next to decoding (a 64-token prompt on the `small`
/// shape is 64·128·2·8 = 131k floats per child). Sharing the prefix by reference (paged blocks) is not done.
public final class KVCache {
    public let slotCount: Int
    public let capacity: Int
    public let layerCount: Int
    public let kvDim: Int
    let k: FloatBuffer   // (L, S, cap, KVD)
    let v: FloatBuffer   // (L, S, cap, KVD)
    /// Tokens held per slot.
    public private(set) var lengths: [Int]
    private(set) var inUse: [Bool]
    private var freeList: [Int]

    public init(layers: Int, slots: Int, capacity: Int, kvDim: Int) {
        slotCount = slots; self.capacity = capacity; layerCount = layers; self.kvDim = kvDim
        k = FloatBuffer(count: layers * slots * capacity * kvDim)
        v = FloatBuffer(count: layers * slots * capacity * kvDim)
        lengths = [Int](repeating: 0, count: slots)
        inUse = [Bool](repeating: false, count: slots)
        freeList = Array((0..<slots).reversed())
    }

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

    /// Copies `from`'s filled rows (all layers) into `to`.
    func copy(from: Int, to: Int) {
        let n = lengths[from]
        for l in 0..<layerCount {
            kRow(l, to, 0).update(from: kRow(l, from, 0), count: n * kvDim)
            vRow(l, to, 0).update(from: vRow(l, from, 0), count: n * kvDim)
        }
        lengths[to] = n
    }
}
