import Foundation

/// Where test inputs live: committed fixtures under `Tests/Fixtures`, and the real artifacts in `../shared/data`
/// (present on developer machines and in CI, absent from a user's fresh clone: tests that need it skip).
public enum Fixtures {
    /// The repository root, found from this file's path (Tests/TestSupport/Fixtures.swift).
    public static let repoRoot: URL = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// Committed, regenerable fixtures (`scripts/ref/*.py` write them).
    public static let dir: URL = repoRoot.appendingPathComponent("Tests/Fixtures")

    public static func url(_ relative: String) -> URL { dir.appendingPathComponent(relative) }

    /// `../shared/data` next to the repository, or `$RLIF_SHARED_DATA`; nil when absent.
    public static let sharedData: URL? = {
        let fm = FileManager.default
        if let env = ProcessInfo.processInfo.environment["RLIF_SHARED_DATA"], fm.fileExists(atPath: env) {
            return URL(fileURLWithPath: env)
        }
        let candidate = repoRoot.deletingLastPathComponent().appendingPathComponent("shared/data")
        return fm.fileExists(atPath: candidate.path) ? candidate : nil
    }()

    /// A path inside `../shared/data`, or nil (with the reason printed once per call site) when it is absent.
    /// Use as `.enabled(if: Fixtures.shared("stories260K") != nil, "needs ../shared/data/stories260K")`.
    public static func shared(_ relative: String) -> URL? {
        guard let base = sharedData else { return nil }
        let u = base.appendingPathComponent(relative)
        return FileManager.default.fileExists(atPath: u.path) ? u : nil
    }

    /// A fresh temporary directory, removed by the caller (or left in /tmp on failure for inspection).
    public static func temporaryDirectory(_ prefix: String = "rlif-test") throws -> URL {
        let u = FileManager.default.temporaryDirectory
            .appendingPathComponent("\(prefix)-\(ProcessInfo.processInfo.processIdentifier)-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: u, withIntermediateDirectories: true)
        return u
    }
}
