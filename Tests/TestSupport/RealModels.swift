import Foundation

/// The real pretrained models fetched by `scripts/get-model` (GGUF files in `$RLIF_MODELS`, default
/// `~/.cache/rlif/models`). Tests that use them run only with `RLIF_REAL_MODELS=1` and skip otherwise.
public enum RealModels {
    /// The three models get-model knows, by the name it caches them under (`<name>.gguf`, `<name>/`).
    public static let names = ["smollm2-135m-instruct", "qwen2.5-coder-0.5b-instruct", "qwen2.5-coder-1.5b-instruct"]

    public static var enabled: Bool { ProcessInfo.processInfo.environment["RLIF_REAL_MODELS"] == "1" }

    /// The models folder: `$RLIF_MODELS`, or `~/.cache/rlif/models`.
    public static var directory: URL {
        if let d = ProcessInfo.processInfo.environment["RLIF_MODELS"], !d.isEmpty { return URL(fileURLWithPath: d) }
        return FileManager.default.homeDirectoryForCurrentUser.appendingPathComponent(".cache/rlif/models")
    }

    /// `<models>/<name>.gguf` when real-model tests are enabled and the file exists; nil otherwise (printing why,
    /// so a skipped check is visible in the log).
    public static func gguf(_ name: String) -> URL? {
        guard enabled else { return nil }
        let u = directory.appendingPathComponent("\(name).gguf")
        guard FileManager.default.fileExists(atPath: u.path) else {
            print("skipping real-model check: \(u.path) is absent (run scripts/get-model \(name))")
            return nil
        }
        return u
    }
}
