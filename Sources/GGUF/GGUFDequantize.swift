import Shared

/// Dequantization of ggml block formats to Float, one function per format, each bit-exact against gguf-py's
/// `gguf.quants.dequantize` (numpy float32 arithmetic: every product and sum rounded separately, no FMA; Swift
/// never contracts `a * b + c` by itself). Layouts are those of the `block_*` structs in ggml's ggml-common.h and
/// the matching `dequantize_row_*` in ggml-quants.c / `dequantize_blocks` in gguf-py quants.py; each function
/// cites its struct. All multi-byte fields are little-endian; `ggml_half` is IEEE binary16.
public enum GGUFDequantize {
    /// Converts `blocks` consecutive blocks at `src` to `blocks * blockSize` floats at `dst`.
    public typealias Kernel = (_ src: UnsafeRawPointer, _ dst: UnsafeMutablePointer<Float>, _ blocks: Int) -> Void

    /// The table: ggml type → its block converter; nil for types rlif does not dequantize.
    public static func kernel(for type: GGMLType) -> Kernel? {
        switch type {
        case .f32: return f32
        case .f16: return f16
        case .bf16: return bf16
        case .q4_0: return q4_0
        case .q4_1: return q4_1
        case .q5_0: return q5_0
        case .q5_1: return q5_1
        case .q8_0: return q8_0
        case .q4_K: return q4_K
        case .q5_K: return q5_K
        case .q6_K: return q6_K
        default: return nil
        }
    }

    public static func isSupported(_ type: GGMLType) -> Bool { kernel(for: type) != nil }
    public static var supportedTypes: [GGMLType] { GGMLType.allCases.filter(isSupported) }

    @inline(__always) static func half(_ p: UnsafeRawPointer, _ offset: Int) -> Float {
        Float(Float16(bitPattern: p.loadUnaligned(fromByteOffset: offset, as: UInt16.self)))
    }
    @inline(__always) static func byte(_ p: UnsafeRawPointer, _ offset: Int) -> UInt8 {
        p.load(fromByteOffset: offset, as: UInt8.self)
    }

    /// F32: the bytes are the floats (little-endian host).
    static func f32(_ src: UnsafeRawPointer, _ dst: UnsafeMutablePointer<Float>, _ n: Int) {
        UnsafeMutableRawPointer(dst).copyMemory(from: src, byteCount: n * 4)
    }

    /// F16 (ggml_fp16_t): exact widening.
    static func f16(_ src: UnsafeRawPointer, _ dst: UnsafeMutablePointer<Float>, _ n: Int) {
        for i in 0..<n { dst[i] = half(src, 2 * i) }
    }

    /// BF16 (ggml_bf16_t): the top 16 bits of a binary32; exact widening (`ggml_bf16_to_fp32`).
    static func bf16(_ src: UnsafeRawPointer, _ dst: UnsafeMutablePointer<Float>, _ n: Int) {
        for i in 0..<n {
            dst[i] = BFloat16.toFloat(src.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))
        }
    }

    /// block_q4_0 (18 B, 32 weights): `ggml_half d; uint8_t qs[16]`. Element j < 16 is the low nibble of qs[j],
    /// element j + 16 the high nibble; y = (q - 8) * d.
    static func q4_0(_ src: UnsafeRawPointer, _ dst: UnsafeMutablePointer<Float>, _ blocks: Int) {
        for b in 0..<blocks {
            let p = src + b * 18, y = dst + b * 32
            let d = half(p, 0)
            for j in 0..<16 {
                let q = byte(p, 2 + j)
                y[j] = d * Float(Int(q & 0x0F) - 8)
                y[j + 16] = d * Float(Int(q >> 4) - 8)
            }
        }
    }

    /// block_q4_1 (20 B, 32 weights): `ggml_half d, m; uint8_t qs[16]`, nibbles as q4_0; y = d * q + m.
    static func q4_1(_ src: UnsafeRawPointer, _ dst: UnsafeMutablePointer<Float>, _ blocks: Int) {
        for b in 0..<blocks {
            let p = src + b * 20, y = dst + b * 32
            let d = half(p, 0), m = half(p, 2)
            for j in 0..<16 {
                let q = byte(p, 4 + j)
                y[j] = d * Float(q & 0x0F) + m
                y[j + 16] = d * Float(q >> 4) + m
            }
        }
    }

    /// block_q5_0 (22 B, 32 weights): `ggml_half d; uint8_t qh[4]; uint8_t qs[16]`. The 5th bit of element i is
    /// bit i of the little-endian uint32 qh; the low 4 bits are nibbles as q4_0; y = (q - 16) * d.
    static func q5_0(_ src: UnsafeRawPointer, _ dst: UnsafeMutablePointer<Float>, _ blocks: Int) {
        for b in 0..<blocks {
            let p = src + b * 22, y = dst + b * 32
            let d = half(p, 0)
            let qh = UInt32(littleEndian: p.loadUnaligned(fromByteOffset: 2, as: UInt32.self))
            for j in 0..<16 {
                let q = byte(p, 6 + j)
                let lo = Int(q & 0x0F) | Int((qh >> UInt32(j)) & 1) << 4
                let hi = Int(q >> 4) | Int((qh >> UInt32(j + 16)) & 1) << 4
                y[j] = d * Float(lo - 16)
                y[j + 16] = d * Float(hi - 16)
            }
        }
    }

    /// block_q5_1 (24 B, 32 weights): `ggml_half d, m; uint8_t qh[4]; uint8_t qs[16]`, bits as q5_0; y = d * q + m.
    static func q5_1(_ src: UnsafeRawPointer, _ dst: UnsafeMutablePointer<Float>, _ blocks: Int) {
        for b in 0..<blocks {
            let p = src + b * 24, y = dst + b * 32
            let d = half(p, 0), m = half(p, 2)
            let qh = UInt32(littleEndian: p.loadUnaligned(fromByteOffset: 4, as: UInt32.self))
            for j in 0..<16 {
                let q = byte(p, 8 + j)
                let lo = UInt32(q & 0x0F) | ((qh >> UInt32(j)) & 1) << 4
                let hi = UInt32(q >> 4) | ((qh >> UInt32(j + 16)) & 1) << 4
                y[j] = d * Float(lo) + m
                y[j + 16] = d * Float(hi) + m
            }
        }
    }

    /// block_q8_0 (34 B, 32 weights): `ggml_half d; int8_t qs[32]`; y = q * d.
    static func q8_0(_ src: UnsafeRawPointer, _ dst: UnsafeMutablePointer<Float>, _ blocks: Int) {
        for b in 0..<blocks {
            let p = src + b * 34, y = dst + b * 32
            let d = half(p, 0)
            for j in 0..<32 { y[j] = Float(p.load(fromByteOffset: 2 + j, as: Int8.self)) * d }
        }
    }

    /// The 6-bit scale and min of sub-block j (0..<8) from the 12 packed bytes of block_q4_K / block_q5_K
    /// (`get_scale_min_k4` in ggml-quants.c): bytes 0-3 hold scales 0-3 (low 6 bits) and the top 2 bits of
    /// scales 4-7, bytes 4-7 the same for mins, bytes 8-11 the low 4 bits of scale (low nibble) and min (high
    /// nibble) 4-7.
    @inline(__always) static func scaleMinK4(_ s: UnsafeRawPointer, _ j: Int) -> (scale: UInt8, min: UInt8) {
        if j < 4 {
            return (byte(s, j) & 63, byte(s, j + 4) & 63)
        }
        let sc = (byte(s, j + 4) & 0x0F) | ((byte(s, j - 4) >> 6) << 4)
        let mn = (byte(s, j + 4) >> 4) | ((byte(s, j) >> 6) << 4)
        return (sc, mn)
    }

    /// block_q4_K (144 B, 256 weights): `ggml_half d, dmin; uint8_t scales[12]; uint8_t qs[128]`. Eight
    /// sub-blocks of 32; sub-blocks 2c and 2c+1 are the low and high nibbles of qs[32c..<32c+32];
    /// y = (d * scale) * q - (dmin * min).
    static func q4_K(_ src: UnsafeRawPointer, _ dst: UnsafeMutablePointer<Float>, _ blocks: Int) {
        for b in 0..<blocks {
            let p = src + b * 144, y = dst + b * 256
            let d = half(p, 0), dmin = half(p, 2)
            let scales = p + 4, qs = p + 16
            for c in 0..<4 {
                let (s0, m0) = scaleMinK4(scales, 2 * c), (s1, m1) = scaleMinK4(scales, 2 * c + 1)
                let d0 = d * Float(s0), dm0 = dmin * Float(m0)
                let d1 = d * Float(s1), dm1 = dmin * Float(m1)
                for l in 0..<32 {
                    let q = byte(qs, 32 * c + l)
                    y[64 * c + l] = d0 * Float(q & 0x0F) - dm0
                    y[64 * c + 32 + l] = d1 * Float(q >> 4) - dm1
                }
            }
        }
    }

    /// block_q5_K (176 B, 256 weights): `ggml_half d, dmin; uint8_t scales[12]; uint8_t qh[32]; uint8_t qs[128]`.
    /// Low 4 bits as q4_K; the 5th bit of element l of sub-block s is bit s of qh[l];
    /// y = (d * scale) * q - (dmin * min).
    static func q5_K(_ src: UnsafeRawPointer, _ dst: UnsafeMutablePointer<Float>, _ blocks: Int) {
        for b in 0..<blocks {
            let p = src + b * 176, y = dst + b * 256
            let d = half(p, 0), dmin = half(p, 2)
            let scales = p + 4, qh = p + 16, qs = p + 48
            for c in 0..<4 {
                let (s0, m0) = scaleMinK4(scales, 2 * c), (s1, m1) = scaleMinK4(scales, 2 * c + 1)
                let d0 = d * Float(s0), dm0 = dmin * Float(m0)
                let d1 = d * Float(s1), dm1 = dmin * Float(m1)
                for l in 0..<32 {
                    let q = byte(qs, 32 * c + l), h = byte(qh, l)
                    let lo = (q & 0x0F) | ((h >> UInt8(2 * c)) & 1) << 4
                    let hi = (q >> 4) | ((h >> UInt8(2 * c + 1)) & 1) << 4
                    y[64 * c + l] = d0 * Float(lo) - dm0
                    y[64 * c + 32 + l] = d1 * Float(hi) - dm1
                }
            }
        }
    }

    /// block_q6_K (210 B, 256 weights): `uint8_t ql[128]; uint8_t qh[64]; int8_t scales[16]; ggml_half d`.
    /// Two halves of 128; in half h element r (0..<128) takes its low 4 bits from ql[64h + r % 64] (low nibble
    /// for r < 64, high otherwise) and its top 2 bits from bits 2*(r / 32) of qh[32h + r % 32]; q is that 6-bit
    /// value minus 32, and y = (d * scales[e / 16]) * q for element e.
    static func q6_K(_ src: UnsafeRawPointer, _ dst: UnsafeMutablePointer<Float>, _ blocks: Int) {
        for b in 0..<blocks {
            let p = src + b * 210, y = dst + b * 256
            let ql = p, qh = p + 128, sc = p + 192
            let d = half(p, 208)
            for h in 0..<2 {
                for g in 0..<8 {  // 16-element groups sharing one scale
                    let ds = d * Float(sc.load(fromByteOffset: 8 * h + g, as: Int8.self))
                    for i in 0..<16 {
                        let r = 16 * g + i
                        let low = (byte(ql, 64 * h + r % 64) >> UInt8(4 * (r / 64))) & 0x0F
                        let high = (byte(qh, 32 * h + r % 32) >> UInt8(2 * (r / 32))) & 0x03
                        y[128 * h + r] = ds * Float(Int(low | high << 4) - 32)
                    }
                }
            }
        }
    }
}
