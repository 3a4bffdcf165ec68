/// bfloat16 <-> Float (bfloat16 = the top 16 bits of an IEEE binary32): the one conversion behind safetensors
/// BF16 tensors, GGUF BF16 tensors and BF16 weight snapshots on the wire.
public enum BFloat16 {
    /// Round-to-nearest-even, like `torch.Tensor.to(torch.bfloat16)`. NaN stays a (quiet) NaN; values that round
    /// past the largest finite bfloat16 become ±inf, as IEEE rounding prescribes.
    @inlinable @inline(__always)
    public static func from(_ f: Float) -> UInt16 {
        let bits = f.bitPattern
        if f.isNaN { return UInt16(truncatingIfNeeded: bits >> 16) | 0x0040 }
        let roundingBias: UInt32 = 0x7FFF &+ ((bits >> 16) & 1)
        return UInt16(truncatingIfNeeded: (bits &+ roundingBias) >> 16)
    }

    /// Exact widening.
    @inlinable @inline(__always)
    public static func toFloat(_ b: UInt16) -> Float {
        Float(bitPattern: UInt32(b) << 16)
    }
}

extension BFloat16 {
    /// out[i] = from(x[i]) stored little-endian  // out: (count,) x: (count,)
    public static func encode(_ out: UnsafeMutablePointer<UInt16>, _ x: UnsafePointer<Float>, count: Int) {
        for i in 0..<count { out[i] = from(x[i]).littleEndian }
    }

    /// out[i] = toFloat(h[i]) with h little-endian  // out: (count,) h: (count,)
    public static func decode(_ out: UnsafeMutablePointer<Float>, _ h: UnsafePointer<UInt16>, count: Int) {
        for i in 0..<count { out[i] = toFloat(UInt16(littleEndian: h[i])) }
    }
}
