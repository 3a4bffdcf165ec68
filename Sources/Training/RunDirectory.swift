import Foundation
import SafeTensors

/// How a run starts in its output directory, decided before any model is loaded so that a mistake costs nothing:
/// a directory that already holds a run is never silently overwritten, and `--resume` with nothing to resume is an
/// error rather than a fresh start (issue 15). Pure file-system logic; tests in `RunDirectoryTests`.
public enum RunDirectory {
    /// What `prepare` found and did.
    public enum Start: Equatable, Sendable {
        /// Nothing of an earlier run there (or it was removed by `overwrite`).
        case fresh
        /// Continue from this checkpoint directory.
        case resume(checkpoint: URL)
    }

    /// Files and directories rlif writes into an output directory; their presence means "a run lives here".
    static func runArtifacts(in output: URL) -> [String] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: output.path)) ?? []
        return names.filter { n in
            n == "metrics.jsonl" || n == "latest" || n == "samples.jsonl" || n == "learner_summary.json" || n == "tb"
                || n == "eval"
                || (n.hasPrefix("checkpoint-") && !n.contains(".tmp-"))
        }.sorted()
    }

    /// Checks `output` against the user's intent. `resume`: a checkpoint must exist (`Checkpointing.latest`).
    /// Neither flag: the directory must not hold an earlier run. `overwrite`: the earlier run's files are removed
    /// (only the files rlif writes; anything else in the directory is left alone). Creates the directory.
    public static func prepare(output: URL, resume: Bool, overwrite: Bool) throws -> Start {
        let fm = FileManager.default
        if resume && overwrite {
            throw RunDirectoryError(path: output.path, message: "--resume and --overwrite contradict each other: pick one")
        }
        try FileSystemError.makeDirectory(output)
        if resume {
            guard let ckpt = try Checkpointing.latest(in: output) else {
                throw RunDirectoryError(path: output.path,
                                        message: "--resume: no checkpoint here (no 'latest' file); run without --resume to start a new run")
            }
            return .resume(checkpoint: ckpt)
        }
        let found = runArtifacts(in: output)
        if found.isEmpty { return .fresh }
        guard overwrite else {
            let shown = found.prefix(4).joined(separator: ", ") + (found.count > 4 ? ", …" : "")
            throw RunDirectoryError(path: output.path,
                                    message: "already holds a run (\(shown)); pass --resume to continue it, --overwrite to replace it, or choose another --output-dir")
        }
        for n in found {
            do { try fm.removeItem(at: output.appendingPathComponent(n)) } catch {
                throw FileSystemError(error, operation: "remove (--overwrite)", path: output.appendingPathComponent(n).path)
            }
        }
        return .fresh
    }
}

/// An output-directory problem, naming the path.
public struct RunDirectoryError: Error, CustomStringConvertible, Equatable {
    public var path: String
    public var message: String
    public init(path: String, message: String) { self.path = path; self.message = message }
    public var description: String { "\(path): \(message)" }
}

