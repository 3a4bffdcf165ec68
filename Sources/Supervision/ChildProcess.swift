import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// How a child process ended.
public enum ChildExit: Sendable, Equatable, CustomStringConvertible {
    case exited(Int32)
    case signalled(Int32)

    /// A run's exit status as a shell reports it: the code, or 128 + the signal.
    public var shellStatus: Int32 {
        switch self {
        case .exited(let c): c
        case .signalled(let s): 128 + s
        }
    }

    public var isSuccess: Bool { self == .exited(0) }

    /// "exited with status N" or "was killed by signal N (NAME)", for the supervisor's log.
    public var description: String {
        switch self {
        case .exited(let c): return "exited with status \(c)"
        case .signalled(let s):
            let names: [Int32: String] = [SIGKILL: "SIGKILL", SIGTERM: "SIGTERM", SIGINT: "SIGINT", SIGSEGV: "SIGSEGV",
                                          SIGABRT: "SIGABRT", SIGBUS: "SIGBUS", SIGILL: "SIGILL", SIGTRAP: "SIGTRAP",
                                          SIGQUIT: "SIGQUIT", SIGHUP: "SIGHUP"]
            return "was killed by signal \(s)" + (names[s].map { " (\($0))" } ?? "")
                + (s == SIGKILL ? ", e.g. by the kernel's OOM killer or kill -9" : "")
        }
    }
}

/// A child process whose stdout passes to `stdout` unchanged and whose stderr lines go to `stderr` prefixed with
/// its name, line by line (never a line split between two children). Foundation's `Process`, not
/// swift-subprocess: the supervisor is synchronous (a ParsableCommand waiting on the learner while termination
/// handlers report actors' deaths and signal handlers forward Ctrl-C), which `Process` gives directly, whereas
/// swift-subprocess ties a child's lifetime to an async closure scope and would add a package for no new ability.
public final class ChildProcess: @unchecked Sendable {  // pipe handlers own their buffers; `exitLock` guards `ended`
    public let name: String
    public let process = Process()
    private let errPipe: CloexecPipe
    private let outPipe: CloexecPipe
    private let lock = NSLock()
    /// Entered once per pipe, left at its end of file: `drain()` waits for the last output lines.
    private let open = DispatchGroup()
    private let exitLock = NSLock()
    private var ended: ChildExit?
    private var onExit: (@Sendable (ChildExit) -> Void)?
    private var notified = false

    public typealias Sink = @Sendable (Data) -> Void
    public static let standardError: Sink = { FileHandle.standardError.write($0) }
    public static let standardOutput: Sink = { FileHandle.standardOutput.write($0) }

    private init(name: String) throws {
        self.name = name
        errPipe = try CloexecPipe(name: name)
        outPipe = try CloexecPipe(name: name)
    }

    /// Starts `executable args`; `env` is added to this process's environment (existing keys win, so a user's
    /// OPENBLAS_NUM_THREADS is kept).
    public static func spawn(_ executable: URL, _ args: [String], name: String, env: [String: String] = [:],
                             stdout: @escaping Sink = standardOutput, stderr: @escaping Sink = standardError) throws -> ChildProcess {
        let c = try ChildProcess(name: name)
        c.process.executableURL = executable
        c.process.arguments = args
        var e = ProcessInfo.processInfo.environment
        for (k, v) in env where e[k] == nil { e[k] = v }
        c.process.environment = e
        // The pipes are close-on-exec from birth (CloexecPipe): another child spawned meanwhile (a sibling, or any
        // process the host program starts) must not inherit a write end and hold off our EOF. The child gets its
        // ends through dup2 onto 1 and 2, which clears the flag there.
        c.process.standardError = c.errPipe.write
        c.process.standardOutput = c.outPipe.write
        c.forward(c.errPipe.read, prefix: "[\(name)] ", to: stderr)
        c.forward(c.outPipe.read, prefix: "", to: stdout)
        // The handler holds `c` until the child has ended, then lets go: kept, it made a cycle (ChildProcess →
        // Process → handler → ChildProcess) that LeakSanitizer reported for every child
        // (`SupervisorTests.anEndedChildIsFreed`).
        c.process.terminationHandler = { [c] p in
            c.recordExit()
            p.terminationHandler = nil
        }
        defer {
            // Our copies of the write ends: the child holds its own, and EOF comes when it (and its children) exit.
            try? c.errPipe.write.close()
            try? c.outPipe.write.close()
        }
        do { try c.process.run() } catch {
            c.process.terminationHandler = nil  // never called for a process that did not start: the same cycle
            throw SupervisorError(message: "cannot start \(name) (\(executable.path)): \(error.localizedDescription)")
        }
        return c
    }

    public var pid: Int32 { process.processIdentifier }
    public var isRunning: Bool { process.isRunning }
    /// How it ended; nil while it runs.
    public var exit: ChildExit? { exitLock.lock(); defer { exitLock.unlock() }; return ended }

    /// Called once when the child ends (at once if it already has).
    public func onExit(_ handler: @escaping @Sendable (ChildExit) -> Void) {
        exitLock.lock()
        onExit = handler
        exitLock.unlock()
        notifyIfEnded()
    }

    /// Stores how the process ended (from the termination handler or `wait`, whichever comes first) and calls the
    /// exit handler exactly once.
    @discardableResult
    private func recordExit() -> ChildExit {
        let p = process
        let how: ChildExit = p.terminationReason == .uncaughtSignal ? .signalled(p.terminationStatus) : .exited(p.terminationStatus)
        exitLock.lock()
        if ended == nil { ended = how }
        let e = ended!
        exitLock.unlock()
        notifyIfEnded()
        return e
    }

    private func notifyIfEnded() {
        exitLock.lock()
        guard let how = ended, let handler = onExit, !notified else { exitLock.unlock(); return }
        notified = true
        // Called once: let go of it, so a handler that captures this child (LocalSupervisor's did) is no cycle
        // (`SupervisorTests.anEndedChildIsFreed`).
        onExit = nil
        exitLock.unlock()
        handler(how)
    }

    public func signal(_ sig: Int32) { if isRunning { kill(pid, sig) } }

    /// Blocks until the child has ended; returns how.
    @discardableResult
    public func wait() -> ChildExit {
        process.waitUntilExit()
        // The termination handler runs on another queue, possibly after waitUntilExit returns.
        return recordExit()
    }

    /// Waits until both pipes reached end of file (at most `seconds`), so no output line of the child is lost.
    public func drain(seconds: Double = 2) {
        _ = open.wait(timeout: .now() + seconds)
    }

    /// Reads one pipe on its own thread until end of file. A thread rather than `readabilityHandler`: Dispatch's
    /// default queue has about one worker per core, and when its workers are blocked (a test host running other
    /// tests, a command waiting on a child) a readability handler waits with them — seen as a last line arriving a
    /// minute late on 2 cores.
    private func forward(_ handle: FileHandle, prefix: String, to sink: @escaping Sink) {
        let lock = self.lock, open = self.open
        open.enter()
        let reader = Thread {
            var pending = Data()
            while true {
                let chunk = handle.availableData  // blocks until data or end of file
                lock.lock()
                if chunk.isEmpty {
                    if !pending.isEmpty { sink(Data(prefix.utf8) + pending + Data("\n".utf8)) }
                    lock.unlock()
                    open.leave()
                    return
                }
                pending.append(chunk)
                while let nl = pending.firstIndex(of: UInt8(ascii: "\n")) {
                    sink(Data(prefix.utf8) + pending[pending.startIndex...nl])
                    pending.removeSubrange(pending.startIndex...nl)
                }
                lock.unlock()
            }
        }
        reader.name = "rlif.child.\(name)"
        reader.start()
    }
}

/// glibc's pipe2(2): its header declares it only under _GNU_SOURCE, which Swift's Glibc module does not set.
@_silgen_name("pipe2")
private func systemPipe2(_ fds: UnsafeMutablePointer<Int32>, _ flags: Int32) -> Int32

/// A pipe created with O_CLOEXEC on both ends (pipe2), so no process forked in between can inherit it; Foundation's
/// `Pipe` sets no such flag and a later fcntl leaves a window in which a concurrently spawned process inherits the
/// write end (seen: a child's last stderr line arrived only when an unrelated test's process exited, 60 s later).
struct CloexecPipe {
    let read: FileHandle
    let write: FileHandle
    init(name: String) throws {
        var fds: [Int32] = [0, 0]
        guard systemPipe2(&fds, O_CLOEXEC) == 0 else {
            throw SupervisorError(message: "cannot make a pipe for \(name): \(String(cString: strerror(errno)))")
        }
        read = FileHandle(fileDescriptor: fds[0], closeOnDealloc: true)
        write = FileHandle(fileDescriptor: fds[1], closeOnDealloc: true)
    }
}

public struct SupervisorError: Error, CustomStringConvertible {
    public var message: String
    public var description: String { message }
}
