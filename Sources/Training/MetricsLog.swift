import Foundation
import SafeTensors

/// Appends one JSON object per line to `metrics.jsonl` and flushes it, so a crash loses at most the line being
/// written and `tail -f` shows progress. Keys are sorted for stable diffs. The records and their keys are listed
/// in docs/METRICS.md.
public final class MetricsLog {
    public let url: URL
    private let handle: FileHandle

    public init(url: URL, truncate: Bool) throws {
        self.url = url
        try FileSystemError.makeDirectory(url.deletingLastPathComponent())
        // open(2) rather than FileManager/FileHandle: a failure is one line with the OS's reason.
        let fd = open(url.path, O_WRONLY | O_CREAT | O_CLOEXEC | (truncate ? O_TRUNC : O_APPEND), 0o644)
        guard fd >= 0 else { throw FileSystemError(operation: "open for writing", path: url.path, errno: errno) }
        handle = FileHandle(fileDescriptor: fd, closeOnDealloc: false)
        try handle.seekToEnd()
    }

    /// Opens the log of a run that resumes after `completedSteps` steps: rows the resumed run will write again
    /// (training steps ≥ `completedSteps`, 0-based, and evaluations after it) are removed first, so the file holds
    /// one row per step however often the run was killed and resumed. `completedSteps == 0` starts a new file.
    public convenience init(url: URL, resumingAfter completedSteps: Int) throws {
        if completedSteps > 0, let data = FileManager.default.contents(atPath: url.path) {
            let kept = MetricsLog.rows(data, keptBefore: completedSteps)
            try AtomicFile.write(kept, to: url)
        }
        try self.init(url: url, truncate: completedSteps == 0)
    }

    /// The lines of `data` a run resumed after `completedSteps` steps keeps: records with `step` up to it (steps
    /// count optimizer steps done, see `RunLogRecord`), rows of the schema before records had a kind (0-based
    /// training rows) below it, other lines as they are. A final line without its newline (a crash mid-write) is
    /// dropped.
    static func rows(_ data: Data, keptBefore completedSteps: Int) -> Data {
        var out = Data()
        var lines = data.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: true)
        if let last = data.last, last != UInt8(ascii: "\n"), !lines.isEmpty { lines.removeLast() }
        for line in lines {
            if let obj = try? JSONSerialization.jsonObject(with: Data(line)) as? [String: Any], let step = obj["step"] as? Int {
                let hasKind = obj["kind"] is String
                if hasKind ? step > completedSteps : step >= completedSteps { continue }
            }
            out.append(contentsOf: line)
            out.append(UInt8(ascii: "\n"))
        }
        return out
    }

    deinit { try? handle.close() }

    /// The encoder of every rlif JSONL file: sorted keys, non-finite numbers as strings ("nan", "inf", "-inf")
    /// rather than invalid JSON.
    public static func encoder() -> JSONEncoder {
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        enc.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        return enc
    }

    /// Writes `record` as one line; returns the line (without its newline).
    @discardableResult
    public func append(_ record: some Encodable) throws -> Data {
        let line = try Self.encoder().encode(record)
        do { try handle.write(contentsOf: line + Data([UInt8(ascii: "\n")])) } catch {
            throw FileSystemError(error, operation: "append to", path: url.path)
        }
        return line
    }
}
