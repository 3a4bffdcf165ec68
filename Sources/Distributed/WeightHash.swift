import Model
import Wire

/// Ranks compare a hash of their weights every N steps: data-parallel ranks must hold identical weights (same
/// start, same summed gradients, same AdamW), and a rank that drifted — a different model file, a resume from
/// another checkpoint, non-deterministic reduction — would otherwise train silently on a different model.
public enum WeightHash {
    /// CRC-32 (zlib) of the parameters' bytes in the high half, the parameter count's low 32 bits in the low half.
    /// With LoRA the base and the adapters are both hashed (the base is frozen, so a mismatch there is a bad load).
    public static func of(_ model: Transformer) -> UInt64 {
        var crc = CRC32.checksum(UnsafeRawBufferPointer(start: model.parameters.pointer, count: model.parameters.count * 4))
        if let ad = model.lora {
            crc = CRC32.checksum(UnsafeRawBufferPointer(start: ad.parameters.pointer, count: ad.parameters.count * 4), continuing: crc)
        }
        return UInt64(crc) << 32 | UInt64(truncatingIfNeeded: model.parameters.count)
    }

    /// nil when every rank's hash equals rank 0's; otherwise the error naming the ranks that differ.
    public static func mismatch(_ hashes: [UInt64], afterSteps steps: Int) -> MPIError? {
        guard let first = hashes.first else { return nil }
        let bad = hashes.indices.filter { hashes[$0] != first }
        guard !bad.isEmpty else { return nil }
        let hex = { (h: UInt64) in String(h, radix: 16) }
        let list = bad.map { "rank \($0) \(hex(hashes[$0]))" }.joined(separator: ", ")
        return MPIError("weights differ between learner ranks after \(steps) steps: rank 0 \(hex(first)), \(list) — the ranks do not train the same model (different model files or checkpoints, or a non-deterministic reduction); stopping")
    }
}
