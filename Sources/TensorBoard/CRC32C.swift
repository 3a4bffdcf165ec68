/// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), the checksum of TensorFlow's record files. Our own small
/// table-driven version because zlib (already linked for the wire protocol) has only CRC-32 (IEEE 0xEDB88320), a
/// different polynomial. One byte per table lookup is plenty: a step's event is a few hundred bytes.
public enum CRC32C {
    static let table: [UInt32] = (0..<256).map { i in
        var c = UInt32(i)
        for _ in 0..<8 { c = (c & 1) != 0 ? (c >> 1) ^ 0x82F6_3B78 : c >> 1 }
        return c
    }

    /// CRC-32C of `bytes` (of "123456789": 0xE3069283).
    public static func checksum<C: Collection>(_ bytes: C) -> UInt32 where C.Element == UInt8 {
        var c: UInt32 = 0xFFFF_FFFF
        for b in bytes { c = table[Int((c ^ UInt32(b)) & 0xFF)] ^ (c >> 8) }
        return c ^ 0xFFFF_FFFF
    }

    /// TensorFlow's masked CRC (rotate right by 15, add a constant): stored in record files so a CRC of data that
    /// itself contains CRCs does not degenerate.
    public static func masked(_ crc: UInt32) -> UInt32 {
        ((crc >> 15) | (crc << 17)) &+ 0xA282_EAD8
    }
}
