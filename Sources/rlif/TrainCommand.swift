import ArgumentParser
import Foundation
import Kernels
import Logging
import SafeTensors
import Training

/// `rlif train`: INTUITOR on one host. By default the real distributed system in local mode — one learner and N
/// actor processes over ipc:// — or everything in this process with `--single-process`.
struct Train: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Train with INTUITOR on this host (local mode: a learner and N actor processes).",
        discussion: "With no --config the embedded default model and prompts are used.")

    @Option(help: "YAML training config (default: the embedded default).") var config: String?
    @Option(name: .customLong("set"), help: "Override a config key, e.g. --set learning_rate=1e-5 (repeatable).")
    var sets: [String] = []
    @Option(help: "Output directory for metrics.jsonl and checkpoints (overrides output_dir).") var outputDir: String?
    @Flag(help: "Sample and train in this one process instead of spawning a learner and actors.") var singleProcess = false
    @Option(help: "Actor processes to spawn (overrides the config's actors).") var actors: Int?
    @Flag(help: "Continue from <output_dir>/latest (an error when there is no checkpoint).") var resume = false
    @Flag(help: "Replace an earlier run in the output directory (its metrics and checkpoints are deleted).")
    var overwrite = false
    @Option(help: "Log level: trace, debug, info, notice, warning, error.") var logLevel: String?

    func validate() throws {
        try LogSetup.validate(logLevel)
        if let a = actors, a < 1 { throw ValidationError("--actors must be >= 1, got \(a)") }
        if resume && overwrite { throw ValidationError("--resume and --overwrite contradict each other: pick one") }
    }

    func run() throws {
        LogSetup.bootstrap(level: logLevel)
        var c = try RunSetup.config(path: config, sets: sets, outputDir: outputDir)
        if let a = actors { c.actors = a }
        try c.validate(source: "--actors")
        // Before any model is loaded: never overwrite a run silently, never "resume" from nothing.
        let start = try RunDirectory.prepare(output: URL(fileURLWithPath: c.outputDir), resume: resume, overwrite: overwrite)
        let fixed = RunSetup.userKeys(path: config, sets: sets)
        if singleProcess {
            try runSingle(c, start: start, fixedKeys: fixed)
        } else {
            try LocalMode(config: c, resume: resume, logLevel: logLevel, userKeys: fixed).run()
        }
    }

    func runSingle(_ config: TrainConfig, start: RunDirectory.Start, fixedKeys: Set<String>) throws {
        let log = Logger(label: "rlif.train")
        let o = try RunSetup.objects(config, role: .singleProcess, fixedKeys: fixedKeys)
        let c = o.config
        let output = URL(fileURLWithPath: c.outputDir)
        let run = SingleProcessRun(config: c, trainer: o.trainer, formatter: o.formatter, dataset: o.dataset,
                                   evalSet: o.evalSet, scorer: o.scorer, output: output, logger: log)
        if case .resume = start { _ = try run.resume() }
        log.info("single-process INTUITOR: \(o.policy.parameterCount) parameters, \(o.dataset.count) prompts, \(c.steps) steps → \(output.path)")
        let flag = run.stopFlag
        let sources = onTerminationSignals { sig in flag.set(signal: sig) }
        // withExtendedLifetime: an optimised build may otherwise release the signal sources right away.
        let outcome = try withExtendedLifetime(sources) {
            try run.run { m in Terminal.line(RunSetup.progressLine(m, steps: c.steps)) }
        }
        if case let .stopped(done) = outcome {
            log.notice("\(ResumeHint.line(stoppedAfter: done, of: c.steps, signal: flag.signal))")
            throw ExitCode(flag.exitStatus)
        }
        log.info("done: metrics in \(output.appendingPathComponent("metrics.jsonl").path)")
        EmbeddedDefault.sayWhatTheDemoShows(model: c.model)
    }
}

/// Spawns and supervises the local-mode processes: one learner, N actors, all this same executable.
struct LocalMode {
    /// Set in the children's environment: they run under this supervisor.
    static let childMarker = "RLIF_LOCAL_MODE_CHILD"
    var config: TrainConfig
    var resume: Bool
    var logLevel: String?
    /// Keys the user set: the learner's and actors' memory plans may lower only the others.
    var userKeys: Set<String> = []

    func run() throws {
        let log = Logger(label: "rlif.train")
        let output = URL(fileURLWithPath: config.outputDir)
        try FileSystemError.makeDirectory(output)
        // The effective config (after --set) is what the learner reads.
        let cfgFile = output.appendingPathComponent("train_config.json")
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys]
        try AtomicFile.write(enc.encode(config), to: cfgFile)
        let sock = FileManager.default.temporaryDirectory.appendingPathComponent("rlif-\(getpid())")
        try FileManager.default.createDirectory(at: sock, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: sock) }
        let base = "ipc://\(sock.path)/learner"
        let exe = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        // Split the cores: BLAS threads per process so that learner and actors don't oversubscribe.
        let cores = ProcessInfo.processInfo.activeProcessorCount
        let per = max(1, cores / max(1, config.actors))
        var learnerArgs = ["learner", "--config", cfgFile.path, "--bind", base, "--user-keys", userKeys.sorted().joined(separator: ",")]
        if resume { learnerArgs.append("--resume") }
        if let l = logLevel { learnerArgs += ["--log-level", l] }
        let learner = try Child.spawn(exe, learnerArgs, name: "learner", env: ["OPENBLAS_NUM_THREADS": "\(cores)", Self.childMarker: "1"])
        var actors: [Child] = []
        for i in 0..<config.actors {
            var a = ["actor", "--learner", base, "--id", "actor-\(i + 1)", "--batch-sequences", "\(config.actorBatchSequences)"]
            if !userKeys.contains("actor_batch_sequences") { a.append("--batch-sequences-adjustable") }
            if config.baseWeights != .f32 { a += ["--base-weights", config.baseWeights.rawValue] }
            if let l = logLevel { a += ["--log-level", l] }
            actors.append(try Child.spawn(exe, a, name: "actor-\(i + 1)", env: ["OPENBLAS_NUM_THREADS": "\(per)", Self.childMarker: "1"]))
        }
        log.info("local mode: learner + \(config.actors) actors (\(base)); output \(output.path)")
        // Ctrl-C reaches the whole process group; the learner finishes its step and checkpoints, actors exit.
        let pids = [learner.process.processIdentifier] + actors.map(\.process.processIdentifier)
        let stop = StopFlag()
        let sources = onTerminationSignals { sig in stop.set(signal: sig); for p in pids { kill(p, SIGTERM) } }
        // A child that dies while the run goes on is named with how it died (the learner re-issues an actor's
        // tasks; a learner that dies ends the run).
        for a in actors {
            a.process.terminationHandler = { p in
                // Status 0 is an actor the learner told to leave (the run is over); anything else is a death.
                let died = p.terminationReason == .uncaughtSignal || p.terminationStatus != 0
                if died && !stop.isSet && learner.process.isRunning {
                    log.warning("\(a.name) \(Child.describe(p)) while the run went on; the learner re-issues its tasks")
                }
            }
        }
        // withExtendedLifetime: an optimised build may otherwise release the signal sources right away.
        withExtendedLifetime(sources) { learner.process.waitUntilExit() }
        let status = learner.process.terminationStatus
        let learnerEnd = Child.describe(learner.process)
        // Actors leave when the learner says the run is over; give them a moment, then make sure.
        let deadline = Date().addingTimeInterval(Double(config.heartbeatTimeoutMs) / 1000 + 5)
        for a in actors {
            while a.process.isRunning && Date() < deadline { Thread.sleep(forTimeInterval: 0.05) }
            if a.process.isRunning { kill(a.process.processIdentifier, SIGKILL); a.process.waitUntilExit() }
        }
        learner.drain()
        for a in actors { a.drain() }
        if stop.isSet {
            // The learner wrote its checkpoint and printed how to resume; the supervisor exits as its signal says.
            let latest = (try? Checkpointing.latest(in: output))?.lastPathComponent
            let done = latest.flatMap { Int($0.drop(while: { !$0.isNumber })) } ?? 0
            log.notice("learner \(learnerEnd)")
            log.notice("\(ResumeHint.line(stoppedAfter: done, of: config.steps, signal: stop.signal))")
            throw ExitCode(stop.exitStatus)
        }
        if status != 0 || learner.process.terminationReason == .uncaughtSignal {
            log.error("learner \(learnerEnd); the run did not finish (continue it with --resume)")
            throw ExitCode(learner.process.terminationReason == .uncaughtSignal ? 128 + status : status)
        }
        log.info("done: metrics in \(output.appendingPathComponent("metrics.jsonl").path)")
        EmbeddedDefault.sayWhatTheDemoShows(model: config.model)
    }
}

/// A child process whose stdout passes through and whose stderr lines are prefixed with its name.
final class Child: @unchecked Sendable {  // the pipes' handlers are the only concurrent users, each owning its buffer
    let process = Process()
    let name: String
    private let errPipe = Pipe()
    private let outPipe = Pipe()
    private let lock = NSLock()
    /// Entered once per pipe, left at its end of file: `drain()` waits for the last output lines.
    private let open = DispatchGroup()

    init(name: String) { self.name = name }

    static func spawn(_ exe: URL, _ args: [String], name: String, env: [String: String]) throws -> Child {
        let c = Child(name: name)
        c.process.executableURL = exe
        c.process.arguments = args
        var e = ProcessInfo.processInfo.environment
        for (k, v) in env where e[k] == nil { e[k] = v }
        c.process.environment = e
        c.process.standardError = c.errPipe
        c.process.standardOutput = c.outPipe
        c.forward(c.errPipe, prefix: "[\(name)] ", to: FileHandle.standardError)
        c.forward(c.outPipe, prefix: "", to: FileHandle.standardOutput)
        try c.process.run()
        return c
    }

    private func forward(_ pipe: Pipe, prefix: String, to sink: FileHandle) {
        nonisolated(unsafe) var pending = Data()
        let lock = self.lock, open = self.open
        open.enter()
        pipe.fileHandleForReading.readabilityHandler = { h in
            let chunk = h.availableData
            lock.lock(); defer { lock.unlock() }
            if chunk.isEmpty {
                h.readabilityHandler = nil
                if !pending.isEmpty { sink.write(Data(prefix.utf8) + pending + Data("\n".utf8)) }
                open.leave()
                return
            }
            pending.append(chunk)
            while let nl = pending.firstIndex(of: UInt8(ascii: "\n")) {
                let line = pending[pending.startIndex...nl]
                sink.write(Data(prefix.utf8) + line)
                pending.removeSubrange(pending.startIndex...nl)
            }
        }
    }

    /// "exited with status N" or "was killed by signal N (NAME)", for the supervisor's log.
    static func describe(_ p: Process) -> String {
        if p.terminationReason == .uncaughtSignal {
            let names: [Int32: String] = [SIGKILL: "SIGKILL", SIGTERM: "SIGTERM", SIGINT: "SIGINT", SIGSEGV: "SIGSEGV",
                                          SIGABRT: "SIGABRT", SIGBUS: "SIGBUS", SIGILL: "SIGILL", SIGTRAP: "SIGTRAP"]
            let s = p.terminationStatus
            return "was killed by signal \(s)" + (names[s].map { " (\($0))" } ?? "") + (s == SIGKILL ? ", e.g. by the kernel's OOM killer or kill -9" : "")
        }
        return "exited with status \(p.terminationStatus)"
    }

    /// Waits (at most 2 s) until both pipes reached end of file, so no output line of the child is lost.
    func drain() {
        _ = open.wait(timeout: .now() + 2)
    }
}
