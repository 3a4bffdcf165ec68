import Foundation

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
            n == "metrics.jsonl" || n == "latest" || n == "samples.jsonl" || n == "learner_summary.json"
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
        do { try fm.createDirectory(at: output, withIntermediateDirectories: true) } catch {
            throw RunDirectoryError(path: output.path,
                                    message: "cannot create the output directory (\(FileSystemMessage.reason(error, path: output)))")
        }
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
                throw RunDirectoryError(path: output.appendingPathComponent(n).path,
                                        message: "--overwrite: cannot remove (\(FileSystemMessage.reason(error)))")
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

/// One-line reasons for file-system errors (Foundation's own descriptions dump `NSCocoaErrorDomain Code=642`
/// and the whole userInfo dictionary).
public enum FileSystemMessage {
    /// Like `reason(_:)`, but when Foundation gives no cause (e.g. NSCocoaErrorDomain 512 for a path under a
    /// regular file) the path's nearest existing ancestor is examined to say why.
    public static func reason(_ error: Error, path: URL) -> String {
        let r = reason(error)
        guard r.hasPrefix("The operation could not be completed") else { return r }
        let fm = FileManager.default
        var p = path.deletingLastPathComponent()
        while p.path != "/" && !fm.fileExists(atPath: p.path) { p = p.deletingLastPathComponent() }
        var isDir: ObjCBool = false
        if fm.fileExists(atPath: p.path, isDirectory: &isDir), !isDir.boolValue { return "\(p.path) is not a directory" }
        if !fm.isWritableFile(atPath: p.path) { return "\(p.path) is not writable" }
        return r
    }

    public static func reason(_ error: Error) -> String {
        let ns = error as NSError
        if let posix = (ns.userInfo[NSUnderlyingErrorKey] as? NSError), posix.domain == NSPOSIXErrorDomain {
            return String(cString: strerror(Int32(posix.code)))
        }
        if ns.domain == NSPOSIXErrorDomain { return String(cString: strerror(Int32(ns.code))) }
        if ns.domain == NSCocoaErrorDomain {
            switch CocoaError.Code(rawValue: ns.code) {
            case .fileNoSuchFile, .fileReadNoSuchFile: return "no such file or directory"
            case .fileWriteNoPermission, .fileReadNoPermission: return "permission denied"
            case .fileWriteOutOfSpace: return "no space left on device"
            case .fileWriteVolumeReadOnly: return "read-only file system"
            case .fileWriteFileExists: return "file exists"
            case .fileReadCorruptFile: return "not in the expected format"
            default: break
            }
        }
        return ns.localizedDescription
    }
}
