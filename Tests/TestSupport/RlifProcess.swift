import Foundation

/// The `rlif` executable as a user runs it, for every test target that starts real processes (one copy: the CLI,
/// learner-restart, memory-plan, checkpoint-safety, MPI and CURVE tests each had their own).
/// The release binary that `scripts/test` builds (`.build/release/rlif`), or `$RLIF_BIN`; nil without either.
public enum CLI {
    public static let binary: URL? = {
        let env = ProcessInfo.processInfo.environment["RLIF_BIN"]
        let candidates = [env].compactMap { $0 }.map(URL.init(fileURLWithPath:))
            + [Fixtures.repoRoot.appendingPathComponent(".build/release/rlif")]
        return candidates.first { FileManager.default.isExecutableFile(atPath: $0.path) }
    }()

    public struct Result: Sendable {
        /// The exit status, or the signal number when a signal ended the process (`Process.terminationStatus`).
        public var status: Int32
        public var out: String
        public var err: String
    }

    /// Runs rlif with `args` (plus `env` over this process's environment, one BLAS thread) to its end or `timeout`
    /// (then SIGKILL). With `sig`, the process gets it as soon as its stdout has printed `marker`.
    public static func run(_ args: [String], env: [String: String] = [:], interruptWith sig: Int32? = nil,
                           whenOut marker: String = "", timeout: TimeInterval = 120) throws -> Result {
        let s = try Spawned(args, env: env, interrupt: sig.map { ($0, marker) })
        s.end(seconds: timeout)
        return Result(status: s.p.terminationStatus, out: s.out, err: s.err)
    }
}

/// A running process (rlif by default) whose stdout and stderr are collected as they come; `waitFor` polls them.
public final class Spawned: @unchecked Sendable {  // outData/errData/signalled guarded by lock
    public let p = Process()
    private let pipes = (out: Pipe(), err: Pipe())
    private let lock = NSLock()
    private var outData = Data(), errData = Data()
    private var signalled = false

    /// `env` is added to this process's environment (with OPENBLAS_NUM_THREADS=1 unless `env` sets it);
    /// `interrupt` sends a signal once stdout contains the marker (at once, from the pipe's reader).
    public init(_ args: [String], env extra: [String: String] = [:], executable: URL? = nil,
                interrupt: (signal: Int32, marker: String)? = nil) throws {
        p.executableURL = try executable ?? CLI.binary ?? { throw SpawnError.noBinary }()
        p.arguments = args
        var env = ProcessInfo.processInfo.environment
        env["OPENBLAS_NUM_THREADS"] = "1"
        for (k, v) in extra { env[k] = v }
        p.environment = env
        p.standardOutput = pipes.out
        p.standardError = pipes.err
        // The handlers hold this object weakly: Spawned → Process → Pipe → handler → Spawned was a cycle until the
        // pipe's EOF, so a test that ended before the EOF arrived leaked the whole object (LeakSanitizer, issue 14).
        for (pipe, isOut) in [(pipes.out, true), (pipes.err, false)] {
            pipe.fileHandleForReading.readabilityHandler = { [weak self] h in
                let d = h.availableData
                if d.isEmpty { h.readabilityHandler = nil; return }
                self?.received(d, isOut: isOut, interrupt: interrupt)  // gone: keep draining so the child never blocks
            }
        }
        try p.run()
    }

    private func received(_ d: Data, isOut: Bool, interrupt: (signal: Int32, marker: String)?) {
        lock.lock(); defer { lock.unlock() }
        if isOut { outData.append(d) } else { errData.append(d) }
        if isOut, let interrupt, !signalled, !interrupt.marker.isEmpty,
           String(decoding: outData, as: UTF8.self).contains(interrupt.marker) {
            signalled = true
            kill(p.processIdentifier, interrupt.signal)
        }
    }

    /// Waits for the exit (SIGKILL after `seconds`), gives the pipes 0.1 s for their last bytes, then removes the
    /// readability handlers (a grandchild that inherited a pipe may keep it open past the exit).
    public func end(seconds: Double) {
        let deadline = Date().addingTimeInterval(seconds)
        while p.isRunning && Date() < deadline { Thread.sleep(forTimeInterval: 0.05) }
        if p.isRunning { kill(p.processIdentifier, SIGKILL) }
        p.waitUntilExit()
        Thread.sleep(forTimeInterval: 0.1)
        pipes.out.fileHandleForReading.readabilityHandler = nil
        pipes.err.fileHandleForReading.readabilityHandler = nil
    }

    public var out: String { lock.lock(); defer { lock.unlock() }; return String(decoding: outData, as: UTF8.self) }
    public var err: String { lock.lock(); defer { lock.unlock() }; return String(decoding: errData, as: UTF8.self) }

    /// Polls until `marker` is in stdout+stderr (true) or the process ended / the time is up (false).
    public func waitFor(_ marker: String, seconds: Double) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if (out + err).contains(marker) { return true }
            if !p.isRunning { return (out + err).contains(marker) }
            Thread.sleep(forTimeInterval: 0.05)
        }
        return false
    }

    /// Waits for the exit (SIGKILL after `seconds`); returns the status (128 + signal when signalled).
    public func finish(seconds: Double) -> Int32 {
        end(seconds: seconds)
        return p.terminationReason == .uncaughtSignal ? 128 + p.terminationStatus : p.terminationStatus
    }

    public enum SpawnError: Error, CustomStringConvertible {
        case noBinary
        public var description: String { "no rlif binary: build it (swift build -c release) or set RLIF_BIN" }
    }
}
