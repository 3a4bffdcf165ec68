import Foundation

/// A file-system operation that failed, as one line: what was done, on which path, and the OS's reason
/// (`strerror`), e.g. `cannot create directory /data/run: Read-only file system`. Foundation errors (CocoaError /
/// NSError with an underlying POSIX error) are reduced to the same form by `FileSystemError(_:operation:path:)`, so
/// users never see an `NSCocoaErrorDomain Code=…` dump.
public struct FileSystemError: Error, CustomStringConvertible, Equatable, Sendable {
    /// What was attempted: "create directory", "write", "rename", "remove", ….
    public var operation: String
    public var path: String
    /// The OS's reason (strerror text).
    public var reason: String
    /// The POSIX errno when known (e.g. ENOSPC), 0 otherwise.
    public var code: Int32

    public init(operation: String, path: String, errno code: Int32) {
        self.operation = operation
        self.path = path
        self.code = code
        reason = String(cString: strerror(code))
    }

    public init(operation: String, path: String, reason: String, code: Int32 = 0) {
        self.operation = operation; self.path = path; self.reason = reason; self.code = code
    }

    /// Wraps any error from Foundation's file APIs: the underlying POSIX code when there is one, else the
    /// localized description without the domain/code noise.
    public init(_ error: Error, operation: String, path: String) {
        if let e = error as? FileSystemError { self = e; return }
        let ns = error as NSError
        var posix: Int32 = 0
        if ns.domain == NSPOSIXErrorDomain { posix = Int32(ns.code) }
        else if let u = ns.userInfo[NSUnderlyingErrorKey] as? NSError, u.domain == NSPOSIXErrorDomain { posix = Int32(u.code) }
        else if let e = error as? CocoaError {
            switch e.code {
            case .fileWriteNoPermission, .fileReadNoPermission: posix = EACCES
            case .fileWriteOutOfSpace: posix = ENOSPC
            case .fileWriteVolumeReadOnly: posix = EROFS
            case .fileNoSuchFile, .fileReadNoSuchFile: posix = ENOENT
            case .fileWriteFileExists: posix = EEXIST
            default: break
            }
        }
        if posix != 0 {
            self.init(operation: operation, path: path, errno: posix)
        } else {
            self.init(operation: operation, path: path, reason: Self.diagnose(path) ?? "failed (Foundation error \(ns.code))")
        }
    }

    /// Why `path` cannot be written when the error did not say: its deepest existing ancestor is not a directory,
    /// or is not writable (e.g. read-only file system, permission denied). Nil when neither.
    static func diagnose(_ path: String) -> String? {
        var p = URL(fileURLWithPath: path).standardizedFileURL
        var st = stat()
        while stat(p.path, &st) != 0 {
            let parent = p.deletingLastPathComponent()
            if parent.path == p.path { return nil }
            p = parent
        }
        if p.path != path && (st.st_mode & S_IFMT) != S_IFDIR { return "\(p.path) exists and is not a directory" }
        if access(p.path, W_OK) != 0 { return "\(p.path): \(String(cString: strerror(errno)))" }
        return nil
    }

    public var description: String { "cannot \(operation) \(path): \(reason)" }

    /// Creates `url` and its parents (like `mkdir -p`); a path that exists as a non-directory, or any OS error,
    /// is a one-line `FileSystemError`.
    public static func makeDirectory(_ url: URL) throws {
        // mkdir(2) component by component (not FileManager, whose errors on Linux often lack the POSIX reason).
        var path = ""
        for part in url.standardizedFileURL.path.split(separator: "/", omittingEmptySubsequences: true) {
            path += "/" + part
            if mkdir(path, 0o755) == 0 { continue }
            let e = errno
            var st = stat()
            if e == EEXIST, stat(path, &st) == 0 {
                if (st.st_mode & S_IFMT) == S_IFDIR { continue }
                throw FileSystemError(operation: "create directory", path: url.path,
                                      reason: "\(path) exists and is not a directory", code: ENOTDIR)
            }
            if e == EEXIST { continue }
            throw FileSystemError(operation: "create directory", path: url.path, reason: "\(path): \(String(cString: strerror(e)))", code: e)
        }
    }

    /// fsync(2) a directory, so renames and new entries in it survive a power loss.
    public static func syncDirectory(_ url: URL) throws {
        let fd = open(url.path, O_RDONLY | O_DIRECTORY)
        guard fd >= 0 else { throw FileSystemError(operation: "open directory", path: url.path, errno: errno) }
        defer { close(fd) }
        // Some file systems (e.g. certain FUSE mounts) refuse fsync on directories: that is not a failed save.
        if fsync(fd) != 0 && errno != EINVAL && errno != EROFS {
            throw FileSystemError(operation: "sync directory", path: url.path, errno: errno)
        }
    }

    /// rename(2), with the error naming both paths.
    public static func rename(_ from: URL, to: URL) throws {
        guard Foundation.rename(from.path, to.path) == 0 else {
            let e = errno
            throw FileSystemError(operation: "rename \(from.path) to", path: to.path, errno: e)
        }
    }
}

/// A file written through a temporary sibling (`.NAME.tmp-PID-RANDOM`) that replaces `url` only on `commit()`:
/// write(2) in pieces, fsync(2), rename(2), fsync of the directory. Readers never see a partial file; a failed or
/// abandoned write leaves whatever was at `url` before. Writes go straight from the caller's memory (no buffering
/// here), so a file of any size costs no resident memory beyond the caller's own chunk.
public final class AtomicFile {
    public let url: URL
    public let temporaryURL: URL
    private var fd: Int32
    /// Bytes written so far.
    public private(set) var bytesWritten = 0

    public init(url: URL) throws {
        self.url = url
        let dir = url.deletingLastPathComponent()
        temporaryURL = dir.appendingPathComponent(".\(url.lastPathComponent).tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        fd = open(temporaryURL.path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw FileSystemError(operation: "create", path: temporaryURL.path, errno: errno) }
    }

    deinit { abandon() }

    /// Appends `bytes`.
    public func write(_ bytes: UnsafeRawBufferPointer) throws {
        guard fd >= 0 else { throw FileSystemError(operation: "write", path: temporaryURL.path, reason: "already closed") }
        var done = 0
        while done < bytes.count {
            let w = Foundation.write(fd, bytes.baseAddress! + done, bytes.count - done)
            if w < 0 {
                if errno == EINTR { continue }
                let e = errno
                throw FileSystemError(operation: "write", path: temporaryURL.path, errno: e)
            }
            done += w
        }
        bytesWritten += done
    }

    public func write(_ data: Data) throws { try data.withUnsafeBytes { try write($0) } }

    /// fsync, close, rename over `url`, fsync the directory.
    public func commit() throws {
        guard fd >= 0 else { throw FileSystemError(operation: "commit", path: temporaryURL.path, reason: "already closed") }
        if fsync(fd) != 0 {
            let e = errno
            abandon()
            throw FileSystemError(operation: "sync", path: temporaryURL.path, errno: e)
        }
        let c = close(fd)
        fd = -1
        if c != 0 {
            let e = errno
            unlink(temporaryURL.path)
            throw FileSystemError(operation: "close", path: temporaryURL.path, errno: e)
        }
        do { try FileSystemError.rename(temporaryURL, to: url) } catch { unlink(temporaryURL.path); throw error }
        try FileSystemError.syncDirectory(url.deletingLastPathComponent())
    }

    /// Closes and removes the temporary file (no effect after `commit`).
    public func abandon() {
        guard fd >= 0 else { return }
        close(fd)
        fd = -1
        unlink(temporaryURL.path)
    }

    /// `data` to `url` atomically (see the type).
    public static func write(_ data: Data, to url: URL) throws {
        let f = try AtomicFile(url: url)
        try f.write(data)
        try f.commit()
    }
}

/// A directory written through a temporary sibling (`.NAME.tmp-PID`) and renamed into place, as `AtomicFile` does
/// for one file: readers never see a partial directory, and a failure removes the temporary one and leaves `url`
/// (and any earlier version of it) as it was. An existing `url` is replaced: it is moved aside as
/// `.NAME.tmp-PID-replaced`, the new one renamed in, then the old one removed — an interruption leaves only `.tmp-`
/// names, which a checkpoint directory's next run start (`Checkpointing.prepare`) cleans or restores. `fill`
/// writes the files (each fsynced, as AtomicFile and SafeTensorsWriter do); the directory and its parent are
/// fsynced here. One copy for checkpoints and exported adapters.
public enum AtomicDirectory {
    public static func write(_ url: URL, fill: (URL) throws -> Void) throws {
        let fm = FileManager.default
        let parent = url.deletingLastPathComponent()
        let name = url.lastPathComponent
        let tmp = parent.appendingPathComponent(".\(name).tmp-\(ProcessInfo.processInfo.processIdentifier)")
        func removeTree(_ u: URL) throws {
            guard fm.fileExists(atPath: u.path) else { return }
            do { try fm.removeItem(at: u) } catch { throw FileSystemError(error, operation: "remove", path: u.path) }
        }
        do {
            try removeTree(tmp)
            try FileSystemError.makeDirectory(tmp)
            try fill(tmp)
            try FileSystemError.syncDirectory(tmp)
            if fm.fileExists(atPath: url.path) {
                let old = parent.appendingPathComponent(tmp.lastPathComponent + "-replaced")
                try removeTree(old)
                try FileSystemError.rename(url, to: old)
                try FileSystemError.rename(tmp, to: url)
                try removeTree(old)
            } else {
                try FileSystemError.rename(tmp, to: url)
            }
            try FileSystemError.syncDirectory(parent)
        } catch {
            try? fm.removeItem(at: tmp)
            throw error
        }
    }
}
