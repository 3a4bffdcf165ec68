import Foundation
import Shared

/// The one reader of JSON Lines input files (prompts, SFT examples, the tokenizer benchmark's texts): every
/// non-blank line is decoded as a typed record, and every error names the file and line.
public enum JSONLines {
    /// Each non-blank line of `url` decoded as `T`, with its 1-based line number, in file order. Lines of only
    /// spaces, tabs or CR are skipped. Errors (`DatasetError`): the file cannot be read; a line is not valid JSON;
    /// not a JSON object; or `T` refuses it (its own message, or the missing/mistyped key).
    public static func read<T: Decodable>(_ type: T.Type, from url: URL) throws -> [(line: Int, value: T)] {
        let data: Data
        do { data = try Data(contentsOf: url) } catch {
            throw DatasetError(file: url.path, line: nil, message: "cannot read: \(error.localizedDescription)")
        }
        return try read(type, data: data, file: url.path)
    }

    /// The same for bytes already read (`file` names them in errors).
    public static func read<T: Decodable>(_ type: T.Type, data: Data, file: String) throws -> [(line: Int, value: T)] {
        let decoder = JSONDecoder()
        var out: [(line: Int, value: T)] = []
        var lineNo = 0
        for raw in data.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false) {
            lineNo += 1
            if raw.allSatisfy({ $0 == 0x20 || $0 == 0x09 || $0 == 0x0D }) { continue }
            do {
                out.append((lineNo, try decoder.decode(T.self, from: Data(raw))))
            } catch let e as DecodingError {
                throw DatasetError(file: file, line: lineNo, message: message(e))
            }
        }
        return out
    }

    /// The decoder's error as a short message naming the key.
    static func message(_ e: DecodingError) -> String {
        func path(_ c: DecodingError.Context) -> String { c.codingPath.map(\.stringValue).joined(separator: ".") }
        switch e {
        case .dataCorrupted(let c) where c.codingPath.isEmpty && c.underlyingError != nil:
            return "not valid JSON"
        case .dataCorrupted(let c):
            return c.debugDescription
        case .typeMismatch(_, let c) where c.codingPath.isEmpty:
            return "expected a JSON object"
        case .typeMismatch(let t, let c):
            return "\"\(path(c))\" must be \(t == String.self ? "a string" : "\(t)")"
        case .keyNotFound(let k, _):
            return "needs a field \"\(k.stringValue)\""
        case .valueNotFound(let t, let c):
            return "\"\(path(c))\" is null, expected \(t)"
        @unknown default:
            return "\(e)"
        }
    }
}

/// A JSON object's keys by name (for records whose fields have alternatives).
typealias AnyKey = AnyCodingKey

extension KeyedDecodingContainer where Key == AnyKey {
    /// A string or a number (as written: 42, 3.5) under `key`, nil when absent or null; anything else is an error
    /// naming the key.
    func stringOrNumber(_ key: String) throws -> String? {
        let k = AnyKey(key)
        guard contains(k), try !decodeNil(forKey: k) else { return nil }
        if let s = try? decode(String.self, forKey: k) { return s }
        if let d = try? decode(Decimal.self, forKey: k) { return "\(d)" }
        throw DecodingError.dataCorruptedError(forKey: k, in: self, debugDescription: "\"\(key)\" must be a string or number")
    }
}
