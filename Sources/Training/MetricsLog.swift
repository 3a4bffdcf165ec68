import Foundation
import SafeTensors

/// Appends one JSON object per line to `metrics.jsonl` and flushes it, so a crash loses at most the line being
/// written and `tail -f` shows progress. Keys are sorted for stable diffs.
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

    deinit { try? handle.close() }

    /// Writes `record` as one line. Non-finite numbers are written as strings ("nan", "inf") rather than
    /// producing invalid JSON.
    public func append(_ record: [String: Any]) throws {
        var clean: [String: Any] = [:]
        for (k, v) in record {
            if let d = v as? Double, !d.isFinite { clean[k] = "\(d)" }
            else if let f = v as? Float, !f.isFinite { clean[k] = "\(f)" }
            else { clean[k] = v }
        }
        var data = try JSONSerialization.data(withJSONObject: clean, options: [.sortedKeys])
        data.append(UInt8(ascii: "\n"))
        do { try handle.write(contentsOf: data) } catch { throw FileSystemError(error, operation: "append to", path: url.path) }
    }
}
