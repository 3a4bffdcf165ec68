/// Metadata value type ids (`enum gguf_type` in ggml's gguf.h; `GGUFValueType` in gguf-py constants.py).
public enum GGUFValueType: UInt32, Sendable, CaseIterable {
    case uint8 = 0, int8 = 1, uint16 = 2, int16 = 3, uint32 = 4, int32 = 5, float32 = 6, bool = 7
    case string = 8, array = 9, uint64 = 10, int64 = 11, float64 = 12

    /// Bytes of one value of a fixed-size type; nil for string and array.
    var fixedSize: Int? {
        switch self {
        case .uint8, .int8, .bool: return 1
        case .uint16, .int16: return 2
        case .uint32, .int32, .float32: return 4
        case .uint64, .int64, .float64: return 8
        case .string, .array: return nil
        }
    }

    /// Fewest bytes one value of this type can occupy in a file (strings: the 8-byte length; arrays: type +
    /// count). Used to reject counts the rest of the file cannot hold before allocating anything.
    var minimumSize: Int { fixedSize ?? (self == .string ? 8 : 12) }
}

/// One metadata value. Arrays keep their declared element type (so an empty array is still typed) and may nest.
public enum GGUFValue: Sendable, Equatable {
    case uint8(UInt8), int8(Int8), uint16(UInt16), int16(Int16), uint32(UInt32), int32(Int32)
    case uint64(UInt64), int64(Int64), float32(Float), float64(Double), bool(Bool), string(String)
    case array(GGUFValueType, [GGUFValue])

    public var type: GGUFValueType {
        switch self {
        case .uint8: return .uint8
        case .int8: return .int8
        case .uint16: return .uint16
        case .int16: return .int16
        case .uint32: return .uint32
        case .int32: return .int32
        case .uint64: return .uint64
        case .int64: return .int64
        case .float32: return .float32
        case .float64: return .float64
        case .bool: return .bool
        case .string: return .string
        case .array: return .array
        }
    }

    /// The value as Int when it is an integer of any width that fits.
    public var intValue: Int? {
        switch self {
        case .uint8(let v): return Int(v)
        case .int8(let v): return Int(v)
        case .uint16(let v): return Int(v)
        case .int16(let v): return Int(v)
        case .uint32(let v): return Int(v)
        case .int32(let v): return Int(v)
        case .uint64(let v): return Int(exactly: v)
        case .int64(let v): return Int(v)
        default: return nil
        }
    }

    /// The value as Double when it is a float (32 or 64 bit) or an integer.
    public var doubleValue: Double? {
        switch self {
        case .float32(let v): return Double(v)
        case .float64(let v): return v
        default: return intValue.map(Double.init)
        }
    }

    public var stringValue: String? { if case .string(let s) = self { return s }; return nil }
    public var boolValue: Bool? { if case .bool(let b) = self { return b }; return nil }
    public var arrayValue: [GGUFValue]? { if case .array(_, let a) = self { return a }; return nil }

    /// A short rendering for error messages (arrays by element type and count).
    public var summary: String {
        switch self {
        case .array(let t, let a): return "array of \(a.count) \(t)"
        case .string(let s): return "string \"\(s.prefix(40))\(s.count > 40 ? "…" : "")\""
        default: return "\(type) \(doubleValue.map { "\($0)" } ?? "\(boolValue ?? false)")"
        }
    }
}
