import Foundation

/// Appends one JSON object per line to `metrics.jsonl` and flushes it, so a crash loses at most the line being
/// written and `tail -f` shows progress. Keys are sorted for stable diffs.
public final class MetricsLog {
    public let url: URL
    private let handle: FileHandle

    public init(url: URL, truncate: Bool) throws {
        self.url = url
        let fm = FileManager.default
        try fm.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        if truncate || !fm.fileExists(atPath: url.path) {
            guard fm.createFile(atPath: url.path, contents: nil) else {
                throw CocoaError(.fileWriteUnknown, userInfo: [NSFilePathErrorKey: url.path])
            }
        }
        handle = try FileHandle(forWritingTo: url)
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
        try handle.write(contentsOf: data)
    }
}
