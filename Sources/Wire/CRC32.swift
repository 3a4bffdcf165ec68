import CZlib
import Foundation

/// zlib CRC-32 (the same polynomial as gzip/PNG), from the system zlib (`crc32`, `crc32_combine`).
public enum CRC32 {
    /// CRC-32 of `bytes`, continuing from `crc` (0 to start).
    public static func checksum(_ bytes: UnsafeRawBufferPointer, continuing crc: UInt32 = 0) -> UInt32 {
        guard var p = bytes.baseAddress?.assumingMemoryBound(to: UInt8.self) else { return crc }
        var c = UInt(crc)
        var left = bytes.count
        // zlib's length is a 32-bit uInt: feed at most 1 GB at a time.
        while left > 0 {
            let n = min(left, 1 << 30)
            c = CZlib.crc32(c, p, UInt32(n))
            p += n
            left -= n
        }
        return UInt32(truncatingIfNeeded: c)
    }

    /// CRC-32 of any contiguous bytes (`[UInt8]`, slices, `Data`), continuing from `crc`.
    public static func checksum(_ bytes: some ContiguousBytes, continuing crc: UInt32 = 0) -> UInt32 {
        bytes.withUnsafeBytes { checksum($0, continuing: crc) }
    }

    /// CRC of A followed by B, from crc(A), crc(B) and the length of B (no second pass over the data).
    public static func combine(_ crcA: UInt32, _ crcB: UInt32, lengthB: Int) -> UInt32 {
        UInt32(truncatingIfNeeded: crc32_combine(UInt(crcA), UInt(crcB), Int(lengthB)))
    }
}
