import CZeroMQ
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A CURVE key (Curve25519, 32 bytes) in ZeroMQ's Z85 text form (40 characters), checked on construction.
///
/// Key files (`rlif keygen --out PREFIX`):
/// - `PREFIX.pub`: comment lines (`#`) and one line with the Z85 public key. Safe to copy anywhere.
/// - `PREFIX.secret`: the same comment header and one line with the Z85 secret key; mode 0600 and refused when
///   others may read it or the group may write it (as ssh does), since whoever holds it is that actor (or the
///   learner).
/// An authorized-keys file (`--authorized-keys`) is one public key per line, optionally followed by a label
/// (`KEY actor-7`), `#` comments and blank lines ignored; or a directory whose `*.pub` files are read that way
/// (a key without a label is named after its file).
public struct CurveKey: Hashable, Sendable, CustomStringConvertible {
    public let z85: String

    /// Fails (naming `source`) unless `text` is 40 Z85 characters encoding 32 bytes.
    public init(z85 text: String, source: String = "key") throws(CurveKeyError) {
        guard text.utf8.count == 40, Self.decode(text) != nil else {
            throw CurveKeyError(path: source, why: "expected a 40-character Z85 CURVE key, got \(text.utf8.count) characters")
        }
        z85 = text
    }

    /// From 32 raw bytes (the ZAP credential frame).
    public init?(raw: [UInt8]) {
        guard raw.count == 32 else { return nil }
        var out = [CChar](repeating: 0, count: 41)
        guard raw.withUnsafeBufferPointer({ zmq_z85_encode(&out, $0.baseAddress, 32) }) != nil else { return nil }
        z85 = String(cString: out)
    }

    static func decode(_ text: String) -> [UInt8]? {
        guard text.utf8.count == 40 else { return nil }  // zmq_z85_decode writes 4/5 of the length: never more than 32
        var out = [UInt8](repeating: 0, count: 32)
        return zmq_z85_decode(&out, text) == nil ? nil : out
    }

    /// The first 8 characters: enough to tell keys apart in logs without printing whole keys.
    public var short: String { String(z85.prefix(8)) + "…" }
    public var description: String { z85 }
}

public struct CurveKeyError: Error, CustomStringConvertible, Equatable {
    public var path: String
    public var why: String
    public init(path: String, why: String) { self.path = path; self.why = why }
    public var description: String { "\(path): \(why)" }
}

/// A CURVE key pair; `secret` never leaves the process except into libzmq's socket options and key files.
public struct CurveKeyPair: Sendable {
    public let publicKey: CurveKey
    public let secretKey: CurveKey

    /// A fresh pair from libzmq (libsodium's RNG). Fails if libzmq was built without CURVE.
    public static func generate() throws(CurveKeyError) -> CurveKeyPair {
        guard Curve.isAvailable else { throw CurveKeyError(path: "libzmq", why: Curve.unavailableReason) }
        var pub = [CChar](repeating: 0, count: 41), sec = [CChar](repeating: 0, count: 41)
        guard zmq_curve_keypair(&pub, &sec) == 0 else { throw CurveKeyError(path: "libzmq", why: "zmq_curve_keypair failed") }
        return CurveKeyPair(publicKey: try CurveKey(z85: String(cString: pub)), secretKey: try CurveKey(z85: String(cString: sec)))
    }

    /// The pair of a secret key (the public key is derived from it).
    public init(secret: CurveKey) throws(CurveKeyError) {
        var pub = [CChar](repeating: 0, count: 41)
        guard zmq_curve_public(&pub, secret.z85) == 0 else { throw CurveKeyError(path: "libzmq", why: "zmq_curve_public failed (no CURVE support?)") }
        self.init(publicKey: try CurveKey(z85: String(cString: pub)), secretKey: secret)
    }

    init(publicKey: CurveKey, secretKey: CurveKey) { self.publicKey = publicKey; self.secretKey = secretKey }
}

public enum Curve {
    /// libzmq was built with CURVE (libsodium): `zmq_has("curve")`.
    public static var isAvailable: Bool { zmq_has("curve") != 0 }
    static let unavailableReason = "this libzmq has no CURVE support (rebuild it with libsodium; Debian's libzmq5 has it)"
}

/// Reading and writing key files (format in `CurveKey`'s comment).
public enum CurveKeyFiles {
    /// Writes `prefix.pub` (0644) and `prefix.secret` (0600); never overwrites an existing file.
    @discardableResult
    public static func write(_ pair: CurveKeyPair, prefix: String, comment: String) throws(CurveKeyError) -> (pub: String, secret: String) {
        let pub = prefix + ".pub", secret = prefix + ".secret"
        for p in [pub, secret] where FileManager.default.fileExists(atPath: p) {
            throw CurveKeyError(path: p, why: "exists; refusing to overwrite a key (remove it first)")
        }
        let header = comment.split(separator: "\n", omittingEmptySubsequences: false).map { "# \($0)" }.joined(separator: "\n")
        try create(secret, "\(header)\n# SECRET: whoever holds this file can act as this key.\n\(pair.secretKey.z85)\n", mode: 0o600)
        try create(pub, "\(header)\n\(pair.publicKey.z85)\n", mode: 0o644)
        return (pub, secret)
    }

    /// Creates `path` exclusively (O_EXCL) with `mode`, so a secret is never briefly readable by others.
    private static func create(_ path: String, _ text: String, mode: mode_t) throws(CurveKeyError) {
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode)
        guard fd >= 0 else { throw CurveKeyError(path: path, why: "cannot create: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        _ = fchmod(fd, mode)  // the umask may have removed bits of 0644; never adds any to 0600
        let bytes = Array(text.utf8)
        let n = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
        guard n == bytes.count, fsync(fd) == 0 else { throw CurveKeyError(path: path, why: "cannot write: \(String(cString: strerror(errno)))") }
    }

    /// The key lines of a key file: (key text, label or nil), comments and blank lines skipped.
    static func keyLines(_ text: String) -> [(key: String, label: String?)] {
        text.split(whereSeparator: \.isNewline).compactMap { raw in
            let line = raw.trimmingCharacters(in: .whitespaces)
            guard !line.isEmpty, !line.hasPrefix("#") else { return nil }
            let parts = line.split(maxSplits: 1, whereSeparator: { $0 == " " || $0 == "\t" })
            let label = parts.count > 1 ? parts[1].trimmingCharacters(in: .whitespaces) : nil
            return (String(parts[0]), label?.isEmpty == false ? label : nil)
        }
    }

    private static func read(_ path: String) throws(CurveKeyError) -> String {
        do { return try String(contentsOfFile: path, encoding: .utf8) } catch {
            throw CurveKeyError(path: path, why: "cannot read: \((error as NSError).localizedDescription)")
        }
    }

    /// The one key of a `.pub` file (e.g. the learner's key given to actors).
    public static func readPublic(_ path: String) throws(CurveKeyError) -> CurveKey {
        let lines = keyLines(try read(path))
        guard lines.count == 1 else { throw CurveKeyError(path: path, why: "expected exactly one key line, found \(lines.count)") }
        return try CurveKey(z85: lines[0].key, source: path)
    }

    /// The key pair of a `.secret` file; refused when group or others may read it.
    public static func readSecret(_ path: String) throws(CurveKeyError) -> CurveKeyPair {
        var st = stat()
        guard stat(path, &st) == 0 else { throw CurveKeyError(path: path, why: "cannot read: \(String(cString: strerror(errno)))") }
        // Group read is allowed (Kubernetes secret volumes with fsGroup are 0440); group write and any access by
        // others are not.
        if st.st_mode & 0o037 != 0 {
            throw CurveKeyError(path: path, why: String(format: "secret key file is accessible by others (mode %o); run chmod 600 on it", st.st_mode & 0o777))
        }
        let lines = keyLines(try read(path))
        guard lines.count == 1 else { throw CurveKeyError(path: path, why: "expected exactly one key line, found \(lines.count)") }
        return try CurveKeyPair(secret: try CurveKey(z85: lines[0].key, source: path))
    }
}

/// The public keys allowed to connect to a learner, each with a label for logs (from the line or the file name).
public struct AuthorizedKeys: Sendable, Equatable {
    public private(set) var labels: [CurveKey: String] = [:]
    public init(_ labels: [CurveKey: String] = [:]) { self.labels = labels }
    public var count: Int { labels.count }
    public func contains(_ key: CurveKey) -> Bool { labels[key] != nil }
    public func label(_ key: CurveKey) -> String? { labels[key] }

    /// A file of keys or a directory of `*.pub` files. Every bad line is an error naming file and line: a typo
    /// must not silently lock an actor out (or, worse, be skipped while the operator thinks it is listed).
    public static func load(_ path: String) throws(CurveKeyError) -> AuthorizedKeys {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else {
            throw CurveKeyError(path: path, why: "no such file or directory")
        }
        var out = AuthorizedKeys()
        if isDir.boolValue {
            let names: [String]
            do { names = try FileManager.default.contentsOfDirectory(atPath: path).filter { $0.hasSuffix(".pub") }.sorted() } catch {
                throw CurveKeyError(path: path, why: "cannot list: \((error as NSError).localizedDescription)")
            }
            for n in names { try out.add(file: (path as NSString).appendingPathComponent(n), defaultLabel: String(n.dropLast(4))) }
        } else {
            try out.add(file: path, defaultLabel: nil)
        }
        return out
    }

    private mutating func add(file: String, defaultLabel: String?) throws(CurveKeyError) {
        let text: String
        do { text = try String(contentsOfFile: file, encoding: .utf8) } catch {
            throw CurveKeyError(path: file, why: "cannot read: \((error as NSError).localizedDescription)")
        }
        var lineNo = 0
        for raw in text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline) {
            lineNo += 1
            guard let line = CurveKeyFiles.keyLines(String(raw)).first else { continue }
            let key = try CurveKey(z85: line.key, source: "\(file):\(lineNo)")
            labels[key] = line.label ?? defaultLabel ?? key.short
        }
    }
}
