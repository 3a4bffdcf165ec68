import Foundation

/// A minimal JSON reader for `tokenizer.json` files (18 MB for Qwen): strings stay as byte ranges into the file
/// so the 151k vocabulary keys and 294k merges go straight into `TokenTable` without making a Swift String each.
/// Objects keep their key order (a vocabulary's order is irrelevant, but error messages read better).
struct JSONDocument {
    let bytes: [UInt8]

    /// A string value: a byte range of the file; `escaped` when it contains a backslash escape.
    struct StringRef {
        var start: Int
        var end: Int
        var escaped: Bool
    }

    indirect enum Value {
        case null
        case bool(Bool)
        case number(Double)
        case string(StringRef)
        case array([Value])
        /// A two-string array (a BPE merge), kept out of line-allocated arrays: 294k of them in Qwen's file.
        case stringPair(StringRef, StringRef)
        case object([(StringRef, Value)])
    }

    struct ParseError: Error {
        var offset: Int
        var message: String
    }

    /// The parsed root value.
    let root: Value

    init(bytes: [UInt8]) throws(ParseError) {
        self.bytes = bytes
        // The parser reads through an unsafe pointer: no bounds checks or array retains per byte.
        let result: Result<Value, ParseError> = bytes.withUnsafeBufferPointer { buf in
            var parser = Parser(bytes: buf)
            do throws(ParseError) { return .success(try parser.parseDocument()) } catch { return .failure(error) }
        }
        self.root = try result.get()
    }

    /// The UTF-8 bytes of a string value with escapes resolved.
    func utf8(_ s: StringRef) -> [UInt8] {
        if !s.escaped { return Array(bytes[s.start..<s.end]) }
        return JSONDocument.unescape(bytes, s.start, s.end)
    }

    func string(_ s: StringRef) -> String {
        String(decoding: utf8(s), as: UTF8.self)
    }

    /// Calls `body` with the string's UTF-8 bytes without copying when it has no escapes.
    func withUTF8<R>(_ s: StringRef, _ body: (UnsafeBufferPointer<UInt8>) -> R) -> R {
        if !s.escaped {
            return bytes.withUnsafeBufferPointer { buf in
                body(UnsafeBufferPointer(rebasing: buf[s.start..<s.end]))
            }
        }
        let u = JSONDocument.unescape(bytes, s.start, s.end)
        return u.withUnsafeBufferPointer(body)
    }

    // Unescapes the string body bytes[start..<end] (the parser has validated the escapes).
    static func unescape(_ b: [UInt8], _ start: Int, _ end: Int) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(end - start)
        var i = start
        func hex4(_ at: Int) -> UInt32 {
            var v: UInt32 = 0
            for k in 0..<4 {
                let c = b[at + k]
                let d: UInt32
                switch c {
                case UInt8(ascii: "0")...UInt8(ascii: "9"): d = UInt32(c - UInt8(ascii: "0"))
                case UInt8(ascii: "a")...UInt8(ascii: "f"): d = UInt32(c - UInt8(ascii: "a") + 10)
                default: d = UInt32(c &- UInt8(ascii: "A") &+ 10)
                }
                v = v << 4 | d
            }
            return v
        }
        func appendScalar(_ v: UInt32) {
            let scalar = Unicode.Scalar(v) ?? "\u{FFFD}"
            out.append(contentsOf: Array(String(Character(scalar)).utf8))
        }
        while i < end {
            let c = b[i]
            if c != UInt8(ascii: "\\") { out.append(c); i += 1; continue }
            let e = b[i + 1]
            i += 2
            switch e {
            case UInt8(ascii: "n"): out.append(0x0A)
            case UInt8(ascii: "t"): out.append(0x09)
            case UInt8(ascii: "r"): out.append(0x0D)
            case UInt8(ascii: "b"): out.append(0x08)
            case UInt8(ascii: "f"): out.append(0x0C)
            case UInt8(ascii: "u"):
                var v = hex4(i)
                i += 4
                if (0xD800..<0xDC00).contains(v), i + 6 <= end, b[i] == UInt8(ascii: "\\"), b[i + 1] == UInt8(ascii: "u") {
                    let lo = hex4(i + 2)
                    if (0xDC00..<0xE000).contains(lo) {
                        v = 0x10000 + ((v - 0xD800) << 10) + (lo - 0xDC00)
                        i += 6
                    }
                }
                appendScalar(v)
            default: out.append(e)  // \" \\ \/
            }
        }
        return out
    }

    private struct Parser {
        let bytes: UnsafeBufferPointer<UInt8>
        var i = 0

        init(bytes: UnsafeBufferPointer<UInt8>) { self.bytes = bytes }

        mutating func parseDocument() throws(ParseError) -> Value {
            skipWhitespace()
            let v = try parseValue(depth: 0)
            skipWhitespace()
            if i != bytes.count { throw ParseError(offset: i, message: "trailing characters after the JSON value") }
            return v
        }

        mutating func skipWhitespace() {
            while i < bytes.count {
                let c = bytes[i]
                if c == 0x20 || c == 0x0A || c == 0x0D || c == 0x09 { i += 1 } else { break }
            }
        }

        mutating func parseValue(depth: Int) throws(ParseError) -> Value {
            guard depth < 256 else { throw ParseError(offset: i, message: "nesting deeper than 256") }
            guard i < bytes.count else { throw ParseError(offset: i, message: "unexpected end of file") }
            switch bytes[i] {
            case UInt8(ascii: "{"):
                i += 1
                var members: [(StringRef, Value)] = []
                skipWhitespace()
                if i < bytes.count, bytes[i] == UInt8(ascii: "}") { i += 1; return .object(members) }
                while true {
                    skipWhitespace()
                    guard i < bytes.count, bytes[i] == UInt8(ascii: "\"") else {
                        throw ParseError(offset: i, message: "expected a string key")
                    }
                    let key = try parseString()
                    skipWhitespace()
                    guard i < bytes.count, bytes[i] == UInt8(ascii: ":") else {
                        throw ParseError(offset: i, message: "expected ':'")
                    }
                    i += 1
                    skipWhitespace()
                    let v = try parseValue(depth: depth + 1)
                    members.append((key, v))
                    skipWhitespace()
                    guard i < bytes.count else { throw ParseError(offset: i, message: "unterminated object") }
                    if bytes[i] == UInt8(ascii: ",") { i += 1; continue }
                    if bytes[i] == UInt8(ascii: "}") { i += 1; return .object(members) }
                    throw ParseError(offset: i, message: "expected ',' or '}'")
                }
            case UInt8(ascii: "["):
                i += 1
                var items: [Value] = []
                skipWhitespace()
                if i < bytes.count, bytes[i] == UInt8(ascii: "]") { i += 1; return .array(items) }
                if let pair = try parseStringPair() { return pair }
                while true {
                    skipWhitespace()
                    items.append(try parseValue(depth: depth + 1))
                    skipWhitespace()
                    guard i < bytes.count else { throw ParseError(offset: i, message: "unterminated array") }
                    if bytes[i] == UInt8(ascii: ",") { i += 1; continue }
                    if bytes[i] == UInt8(ascii: "]") { i += 1; return .array(items) }
                    throw ParseError(offset: i, message: "expected ',' or ']'")
                }
            case UInt8(ascii: "\""):
                return .string(try parseString())
            case UInt8(ascii: "t"):
                try literal("true"); return .bool(true)
            case UInt8(ascii: "f"):
                try literal("false"); return .bool(false)
            case UInt8(ascii: "n"):
                try literal("null"); return .null
            default:
                return .number(try parseNumber())
            }
        }

        /// `"a", "b"]` after the opening bracket, as `.stringPair`; nil (position unchanged) for anything else.
        mutating func parseStringPair() throws(ParseError) -> Value? {
            let save = i
            guard i < bytes.count, bytes[i] == UInt8(ascii: "\"") else { return nil }
            let a = try parseString()
            skipWhitespace()
            guard i < bytes.count, bytes[i] == UInt8(ascii: ",") else { i = save; return nil }
            i += 1
            skipWhitespace()
            guard i < bytes.count, bytes[i] == UInt8(ascii: "\"") else { i = save; return nil }
            let b = try parseString()
            skipWhitespace()
            guard i < bytes.count, bytes[i] == UInt8(ascii: "]") else { i = save; return nil }
            i += 1
            return .stringPair(a, b)
        }

        mutating func literal(_ word: StaticString) throws(ParseError) {
            let n = word.utf8CodeUnitCount
            let p = word.utf8Start
            guard i + n <= bytes.count else { throw ParseError(offset: i, message: "invalid literal") }
            for k in 0..<n where bytes[i + k] != p[k] {
                throw ParseError(offset: i, message: "invalid literal")
            }
            i += n
        }

        mutating func parseNumber() throws(ParseError) -> Double {
            let start = i
            while i < bytes.count {
                let c = bytes[i]
                if (c >= UInt8(ascii: "0") && c <= UInt8(ascii: "9")) || c == UInt8(ascii: "-") || c == UInt8(ascii: "+")
                    || c == UInt8(ascii: ".") || c == UInt8(ascii: "e") || c == UInt8(ascii: "E") {
                    i += 1
                } else { break }
            }
            // Fast path for plain integers (every vocabulary id): no String, no strtod.
            if i > start && i - start < 16 {
                var k = start
                let neg = bytes[k] == UInt8(ascii: "-")
                if neg { k += 1 }
                var v = 0
                var digits = 0
                while k < i, bytes[k] >= UInt8(ascii: "0"), bytes[k] <= UInt8(ascii: "9") {
                    v = v * 10 + Int(bytes[k] - UInt8(ascii: "0"))
                    k += 1
                    digits += 1
                }
                if k == i && digits > 0 { return Double(neg ? -v : v) }
            }
            guard i > start, let v = Double(String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<i]), as: UTF8.self)) else {
                throw ParseError(offset: start, message: "invalid value")
            }
            return v
        }

        mutating func parseString() throws(ParseError) -> StringRef {
            i += 1  // opening quote
            let start = i
            var escaped = false
            let n = bytes.count
            while i < n {
                let c = bytes[i]
                if c == UInt8(ascii: "\"") {
                    let s = StringRef(start: start, end: i, escaped: escaped)
                    i += 1
                    return s
                }
                if c == UInt8(ascii: "\\") {
                    escaped = true
                    guard i + 1 < n else { break }
                    let e = bytes[i + 1]
                    if e == UInt8(ascii: "u") {
                        guard i + 6 <= n else { break }
                        for k in 2..<6 where !Parser.isHex(bytes[i + k]) {
                            throw ParseError(offset: i, message: "invalid \\u escape")
                        }
                        i += 6
                        continue
                    }
                    switch e {
                    case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"), UInt8(ascii: "b"),
                         UInt8(ascii: "f"), UInt8(ascii: "n"), UInt8(ascii: "r"), UInt8(ascii: "t"):
                        i += 2
                        continue
                    default:
                        throw ParseError(offset: i, message: "invalid escape")
                    }
                }
                i += 1
            }
            throw ParseError(offset: start - 1, message: "unterminated string")
        }

        static func isHex(_ c: UInt8) -> Bool {
            (c >= UInt8(ascii: "0") && c <= UInt8(ascii: "9")) || (c >= UInt8(ascii: "a") && c <= UInt8(ascii: "f"))
                || (c >= UInt8(ascii: "A") && c <= UInt8(ascii: "F"))
        }
    }
}

extension JSONDocument.Value {
    /// Member lookup for (small) objects.
    func member(_ key: String, in doc: JSONDocument) -> JSONDocument.Value? {
        guard case .object(let members) = self else { return nil }
        let k = Array(key.utf8)
        for (name, v) in members where doc.withUTF8(name, { $0.elementsEqual(k) }) {
            return v
        }
        return nil
    }

    var isNull: Bool { if case .null = self { return true } else { return false } }

    var typeName: String {
        switch self {
        case .null: return "null"
        case .bool: return "bool"
        case .number: return "number"
        case .string: return "string"
        case .array, .stringPair: return "array"
        case .object: return "object"
        }
    }
}
