import Foundation

/// Why a tokenizer file could not be loaded. Every case names the file and, where it applies, the JSON field
/// (a dotted path such as `model.merges[12]` or `pre_tokenizer.pretokenizers[0].pattern`).
public enum TokenizerError: Error, CustomStringConvertible, Sendable {
    case unreadable(file: String, reason: String)
    case invalidJSON(file: String, offset: Int, reason: String)
    case missingField(file: String, field: String)
    case wrongType(file: String, field: String, expected: String, found: String)
    case invalidValue(file: String, field: String, reason: String)
    case unsupported(file: String, field: String, value: String)

    public var description: String {
        switch self {
        case .unreadable(let f, let r): return "\(f): cannot read tokenizer file: \(r)"
        case .invalidJSON(let f, let o, let r): return "\(f): invalid JSON at byte \(o): \(r)"
        case .missingField(let f, let field): return "\(f): missing field `\(field)`"
        case .wrongType(let f, let field, let e, let found):
            return "\(f): field `\(field)` should be \(e), found \(found)"
        case .invalidValue(let f, let field, let r): return "\(f): field `\(field)`: \(r)"
        case .unsupported(let f, let field, let v):
            return "\(f): field `\(field)` = \(v) is not supported by this tokenizer implementation"
        }
    }
}

/// A JSON value together with its document, file name and field path, for precise load errors.
struct JSONNode {
    let doc: JSONDocument
    let value: JSONDocument.Value
    let path: String
    let file: String

    func child(_ key: String) -> JSONNode? {
        guard let v = value.member(key, in: doc) else { return nil }
        return JSONNode(doc: doc, value: v, path: path.isEmpty ? key : "\(path).\(key)", file: file)
    }

    /// The member `key`, nil when absent or JSON null.
    subscript(_ key: String) -> JSONNode? {
        guard let c = child(key), !c.value.isNull else { return nil }
        return c
    }

    func required(_ key: String) throws(TokenizerError) -> JSONNode {
        guard let c = self[key] else {
            throw .missingField(file: file, field: path.isEmpty ? key : "\(path).\(key)")
        }
        return c
    }

    func string() throws(TokenizerError) -> String {
        guard case .string(let s) = value else { throw wrong("a string") }
        return doc.string(s)
    }

    func utf8() throws(TokenizerError) -> [UInt8] {
        guard case .string(let s) = value else { throw wrong("a string") }
        return doc.utf8(s)
    }

    func int() throws(TokenizerError) -> Int {
        guard case .number(let d) = value, d.rounded() == d, abs(d) < 9e15 else { throw wrong("an integer") }
        return Int(d)
    }

    func double() throws(TokenizerError) -> Double {
        guard case .number(let d) = value else { throw wrong("a number") }
        return d
    }

    func bool() throws(TokenizerError) -> Bool {
        guard case .bool(let b) = value else { throw wrong("true or false") }
        return b
    }

    func array() throws(TokenizerError) -> [JSONNode] {
        let items: [JSONDocument.Value]
        switch value {
        case .array(let a): items = a
        case .stringPair(let a, let b): items = [.string(a), .string(b)]
        default: throw wrong("an array")
        }
        return items.enumerated().map { JSONNode(doc: doc, value: $1, path: "\(path)[\($0)]", file: file) }
    }

    /// Object members in file order.
    func members() throws(TokenizerError) -> [(key: String, node: JSONNode)] {
        guard case .object(let m) = value else { throw wrong("an object") }
        return m.map { k, v in
            let key = doc.string(k)
            return (key, JSONNode(doc: doc, value: v, path: "\(path).\(key)", file: file))
        }
    }

    func wrong(_ expected: String) -> TokenizerError {
        .wrongType(file: file, field: path.isEmpty ? "(root)" : path, expected: expected, found: value.typeName)
    }

    func invalid(_ reason: String) -> TokenizerError {
        .invalidValue(file: file, field: path.isEmpty ? "(root)" : path, reason: reason)
    }

    func unsupported(_ v: String) -> TokenizerError {
        .unsupported(file: file, field: path, value: v)
    }
}
