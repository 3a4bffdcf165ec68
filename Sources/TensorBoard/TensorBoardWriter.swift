import Foundation
import SafeTensors

/// Writes a TensorBoard event file, `<directory>/events.out.tfevents.<secs>.<host>.<pid>`: a first Event with
/// `file_version` "brain.Event:2", then one Event per `add` (a Summary of scalars). Each `add` is one write(2) of
/// whole records, so a reader (`tensorboard --logdir`) sees every step as soon as it is written; nothing is buffered.
/// Errors are `FileSystemError`s (one line: operation, path, the OS's reason) — reused from SafeTensors, a module
/// with no dependencies of its own, so there is one copy of that helper.
public final class TensorBoardWriter {
    public let url: URL
    private let fd: Int32

    public init(directory: URL, wallTime: Double = Date().timeIntervalSince1970) throws {
        try FileSystemError.makeDirectory(directory)
        let host = ProcessInfo.processInfo.hostName.split(separator: ".").first.map(String.init) ?? "localhost"
        let base = "events.out.tfevents.\(String(format: "%010d", Int(wallTime))).\(host).\(getpid())"
        // O_EXCL: two writers of one process in the same second (tests) get distinct files, never a shared one.
        var n = 0, fd: Int32 = -1, u = directory.appendingPathComponent(base)
        while true {
            fd = open(u.path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
            if fd >= 0 || errno != EEXIST { break }
            n += 1
            u = directory.appendingPathComponent("\(base).\(n)")
        }
        guard fd >= 0 else { throw FileSystemError(operation: "create", path: u.path, errno: errno) }
        self.fd = fd
        url = u
        try write(TFRecord.frame(TensorBoardEvent(wallTime: wallTime, fileVersion: "brain.Event:2").serialized()))
    }

    deinit { close(fd) }

    /// One Event at `step` with every scalar, tags in sorted order (a stable file for equal input).
    public func add(scalars: [String: Double], step: Int, wallTime: Double = Date().timeIntervalSince1970) throws {
        let values = scalars.sorted { $0.key < $1.key }.map { (tag: $0.key, value: Float($0.value)) }
        try add(TensorBoardEvent(wallTime: wallTime, step: Int64(step), scalars: values))
    }

    public func add(_ event: TensorBoardEvent) throws {
        try write(TFRecord.frame(event.serialized()))
    }

    /// Before a run resumes after `completedSteps` steps: rewrites (atomically) each event file in `directory`
    /// without the events past that step — they belong to steps the resumed run does again (training records are
    /// at "step" + 1 ≤ completedSteps, the eval after the last checkpointed step at completedSteps is kept, as in
    /// metrics.jsonl). TensorBoard does not drop such points itself: without this a resumed run would show two
    /// values at those steps. A damaged tail (a writer killed mid-record) is dropped too. Returns the files changed.
    @discardableResult
    public static func trim(directory: URL, keepingStepsThrough completedSteps: Int) throws -> [URL] {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: directory.path) else { return [] }
        var changed: [URL] = []
        for name in names.sorted() where name.hasPrefix("events.out.tfevents.") {
            let u = directory.appendingPathComponent(name)
            guard let d = FileManager.default.contents(atPath: u.path) else {
                throw FileSystemError(operation: "read", path: u.path, errno: errno)
            }
            let (records, damage) = TFRecord.intactRecords(Array(d))
            let kept = records.filter { r in
                guard let e = TensorBoardEvent(serialized: r) else { return false }
                return e.fileVersion != nil || e.step <= Int64(completedSteps)
            }
            if kept.count == records.count && damage == nil { continue }
            try AtomicFile.write(Data(kept.flatMap(TFRecord.frame)), to: u)
            changed.append(u)
        }
        return changed
    }

    /// A metrics record (a metrics.jsonl line as a JSON object) as scalars: every finite number except "step"
    /// (strings, booleans, arrays are left out), at x = "step" — records with a "kind" count optimizer steps done
    /// (the first training step is drawn at 1, the eval after step 20 at 20, the one before training at 0) — or at
    /// "step" + 1 for a row without a kind (training rows of the schema before, 0-based). Nil when the record has
    /// no integer "step".
    public static func scalars(of record: [String: Any]) -> (step: Int, scalars: [String: Double])? {
        guard let s = number(record["step"]), s == s.rounded() else { return nil }
        let hasKind = record["kind"] is String
        var out: [String: Double] = [:]
        for (k, v) in record where k != "step" {
            if let x = number(v), x.isFinite { out[k] = x }
        }
        return (Int(s) + (hasKind ? 0 : 1), out)
    }

    /// Writes a metrics record (see `scalars(of:)`); records without a step are skipped.
    public func add(record: [String: Any], wallTime: Double = Date().timeIntervalSince1970) throws {
        guard let (step, values) = Self.scalars(of: record), !values.isEmpty else { return }
        try add(scalars: values, step: step, wallTime: wallTime)
    }

    /// A number from a record value: Swift numeric types, or an NSNumber that is not a boolean (JSON-decoded rows).
    static func number(_ v: Any?) -> Double? {
        // `type(of:) == Bool.self`, not `is Bool`: on Linux an NSNumber 0 or 1 (a JSON-decoded row) passes `is Bool`.
        if let v, type(of: v) == Bool.self { return nil }
        switch v {
        case let x as Double: return x
        case let x as Float: return Double(x)
        case let x as Int: return Double(x)
        case let x as Int64: return Double(x)
        case let x as Int32: return Double(x)
        case let x as UInt64: return Double(x)
        case let x as UInt32: return Double(x)
        case let x as UInt: return Double(x)
        default: return nil
        }
    }

    private func write(_ bytes: [UInt8]) throws {
        var off = 0
        while off < bytes.count {
            let n = bytes[off...].withUnsafeBytes { Foundation.write(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                throw FileSystemError(operation: "write", path: url.path, errno: errno)
            }
            off += n
        }
    }
}
