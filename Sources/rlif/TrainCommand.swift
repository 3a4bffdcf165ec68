import ArgumentParser
import Distributed
import Foundation
import Kernels
import Logging
import SafeTensors
import Supervision
import Telemetry
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
    @Option(help: "Run the local-mode learner as N data-parallel MPI ranks under mpirun (Open MPI).") var learnerRanks: Int = 1
    @Flag(help: "Continue from <output_dir>/latest (an error when there is no checkpoint).") var resume = false
    @Option(help: "--single-process: stop (with a checkpoint) once this many steps are done; the LR schedule still spans `steps`, so a later --resume continues the same run (e.g. a long run split over time-limited jobs).")
    var stopAfterSteps: Int?
    @Flag(help: "Replace an earlier run in the output directory (its metrics and checkpoints are deleted).")
    var overwrite = false
    @Option(help: "Log level: trace, debug, info, notice, warning, error.") var logLevel: String?
    @Flag(help: "End with a JSON summary on stdout (step lines go to stderr).") var json = false
    @Option(help: "Local mode: the learner serves Prometheus metrics at http://HOST:PORT/metrics, actor i at PORT+i (PORT 0: each picks a free port and logs it).") var metricsAddr: String?

    func validate() throws {
        try LogSetup.validate(logLevel)
        if let a = actors, a < 1 { throw ValidationError("--actors must be >= 1, got \(a)") }
        if learnerRanks < 1 { throw ValidationError("--learner-ranks must be >= 1, got \(learnerRanks)") }
        if learnerRanks > 1 && singleProcess { throw ValidationError("--learner-ranks needs local mode (a separate learner): drop --single-process") }
        if learnerRanks > 1 && MPIRun.find() == nil {
            throw ValidationError("--learner-ranks \(learnerRanks) needs mpirun on PATH (Debian: apt-get install openmpi-bin libopenmpi-dev)")
        }
        if resume && overwrite { throw ValidationError("--resume and --overwrite contradict each other: pick one") }
        if let n = stopAfterSteps {
            if !singleProcess { throw ValidationError("--stop-after-steps needs --single-process (in local mode stop the learner with SIGTERM: it checkpoints and the actors follow)") }
            if n < 1 { throw ValidationError("--stop-after-steps must be >= 1, got \(n)") }
        }
        try MetricsAddress.validate(metricsAddr)
        if singleProcess && metricsAddr != nil {
            throw ValidationError("--metrics-addr serves the learner's /metrics in local mode; a --single-process run has no learner (read metrics.jsonl or TensorBoard)")
        }
    }

    func run() throws {
        LogSetup.bootstrap(level: logLevel)
        var c = try RunSetup.config(path: config, sets: sets, outputDir: outputDir)
        if let a = actors { c.actors = a }
        try c.validate(source: "--actors")
        // Before any model is loaded, like the directory check below.
        if let n = stopAfterSteps, n > c.steps {
            throw ValidationError("--stop-after-steps \(n) is past the run's steps (\(c.steps))")
        }
        if let m = metricsAddr, case let port = Int(try MetricsEndpoint.parse(m).port), port > 0, port + c.actors > Int(UInt16.max) {
            throw ValidationError("--metrics-addr \(m): the \(c.actors) actors serve at PORT+1…PORT+\(c.actors), past 65535; pick a lower port")
        }
        // Before any model is loaded: never overwrite a run silently, never "resume" from nothing.
        let start = try RunDirectory.prepare(output: URL(fileURLWithPath: c.outputDir), resume: resume, overwrite: overwrite)
        let fixed = RunSetup.userKeys(path: config, sets: sets)
        if singleProcess {
            try runSingle(c, start: start, fixedKeys: fixed)
        } else {
            try LocalMode(config: c, resume: resume, logLevel: logLevel, userKeys: fixed, learnerRanks: learnerRanks, json: json, metricsAddr: metricsAddr).run()
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
        run.stopAfterSteps = stopAfterSteps
        // Name the reward: the same command runs INTUITOR, GRPO on answers and the offline ablation.
        let reward = c.reward == "self_certainty" ? "self-certainty of the \(c.selfCertaintySource.rawValue)" : c.reward
        log.info("single-process GRPO, reward \(reward): \(o.policy.parameterCount) parameters, \(o.dataset.count) prompts, \(c.steps) steps → \(output.path)")
        let flag = run.stopFlag
        let sources = onTerminationSignals { sig in flag.set(signal: sig) }
        // withExtendedLifetime: an optimised build may otherwise release the signal sources right away.
        let console = RecordConsole(totalSteps: c.steps, live: true, out: json ? .standardError : .standardOutput)
        let outcome = try withExtendedLifetime(sources) {
            defer { console.finish() }
            return try run.run { console.show($0) }
        }
        if json, let p = console.console?.progress {
            TrainSummary(output: output.path, progress: p, stopped: outcome != .finished).print()
        }
        if case let .stopped(done) = outcome {
            log.notice("\(ResumeHint.line(stoppedAfter: done, of: c.steps, signal: flag.signal))")
            throw ExitCode(flag.exitStatus)
        }
        log.info("done: metrics in \(output.appendingPathComponent("metrics.jsonl").path)")
        EmbeddedDefault.sayWhatTheDemoShows(model: c.model, json: json)
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
    /// > 1: the learner runs as that many MPI ranks under mpirun.
    var learnerRanks = 1
    /// `--json`: step lines to stderr, a summary on stdout at the end.
    var json = false
    /// `--metrics-addr`: the learner serves at it, actor i at its port + i (all at port 0 when it is 0).
    var metricsAddr: String? = nil

    func run() throws {
        let log = Logger(label: "rlif.train")
        let output = URL(fileURLWithPath: config.outputDir)
        try FileSystemError.makeDirectory(output)
        // The effective config (after --set) is what the learner reads.
        let cfgFile = output.appendingPathComponent("train_config.json")
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys]
        try AtomicFile.write(enc.encode(config), to: cfgFile)
        // Local mode stays on ipc:// without CURVE: the sockets live in a fresh directory only this user can enter
        // (mkdtemp: 0700, never an existing directory someone else made), so no other user can connect.
        let sock = try LocalSocketDirectory.make()
        defer { try? FileManager.default.removeItem(at: sock) }
        let base = "ipc://\(sock.path)/learner"
        let exe = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        // Split the cores: BLAS threads per process so that learner and actors don't oversubscribe.
        let cores = ProcessInfo.processInfo.activeProcessorCount
        let per = max(1, cores / max(1, config.actors))
        var learnerArgs = ["learner", "--config", cfgFile.path, "--bind", base, "--user-keys", userKeys.sorted().joined(separator: ",")]
        if resume { learnerArgs.append("--resume") }
        if let l = logLevel { learnerArgs += ["--log-level", l] }
        if let m = metricsAddr { learnerArgs += ["--metrics-addr", m] }
        // One console owns the terminal: the learner's records (`rlif-record` lines) become step lines and the
        // progress line; the children's log lines scroll above it.
        let console = Console(totalSteps: config.steps, out: json ? .standardError : .standardOutput)
        if console.isLive { LogSink.shared.console = console }
        let stop = StopFlag()
        defer {
            console.finish()
            LogSink.shared.console = nil
            if json { TrainSummary(output: output.path, progress: console.progress, stopped: stop.isSet).print() }
        }
        // The children's stdout: `rlif-record` lines are records for the console, others are printed as they are;
        // their stderr lines (already prefixed with the child's name) scroll above the progress line.
        let record = Data(RecordConsole.prefix.utf8)
        let toConsole: ChildProcess.Sink = { line in
            if line.starts(with: record) {
                console.record(Data(line.dropFirst(record.count)))
            } else {
                console.print(String(decoding: line.last == UInt8(ascii: "\n") ? line.dropLast() : line[...], as: UTF8.self))
            }
        }
        let logLine: ChildProcess.Sink = { console.log($0) }
        let learner: ChildProcess
        if learnerRanks > 1 {
            // The ranks share the host's cores (and the actors'): BLAS threads split between them.
            let mpirun = MPIRun.find()!  // validate() checked
            let args = MPIRun.arguments(ranks: learnerRanks, executable: exe.path, arguments: learnerArgs, isRoot: getuid() == 0)
            var env = ["OPENBLAS_NUM_THREADS": "\(max(1, cores / learnerRanks))", Self.childMarker: "1"]
            // Each rank holds the whole model: its memory plan gets 1/N of this host's budget (the ranks start
            // together, so each would otherwise plan for all of it), unless the user set RLIF_MEMORY_BUDGET.
            if ProcessInfo.processInfo.environment["RLIF_MEMORY_BUDGET"] == nil, let b = SystemMemory.budget() {
                env["RLIF_MEMORY_BUDGET"] = "\(b.bytes / learnerRanks)"
                log.info("each of the \(learnerRanks) learner ranks plans for 1/\(learnerRanks) of \(b.source)'s \(String(format: "%.2f", Double(b.bytes) / Double(1 << 30))) GiB")
            }
            learner = try ChildProcess.spawn(mpirun, args, name: "learner", env: env, stdout: toConsole, stderr: logLine)
        } else {
            learner = try ChildProcess.spawn(exe, learnerArgs, name: "learner", env: ["OPENBLAS_NUM_THREADS": "\(cores)", Self.childMarker: "1"],
                                             stdout: toConsole, stderr: logLine)
        }
        var actors: [ChildProcess] = []
        for i in 0..<config.actors {
            var a = ["actor", "--learner", base, "--id", "actor-\(i + 1)", "--batch-sequences", "\(config.actorBatchSequences)"]
            if !userKeys.contains("actor_batch_sequences") { a.append("--batch-sequences-adjustable") }
            if config.baseWeights != .f32 { a += ["--base-weights", config.baseWeights.rawValue] }
            if let l = logLevel { a += ["--log-level", l] }
            if let m = metricsAddr, let (host, port) = try? MetricsEndpoint.parse(m) {
                a += ["--metrics-addr", "\(host):\(port == 0 ? 0 : Int(port) + i + 1)"]
            }
            actors.append(try ChildProcess.spawn(exe, a, name: "actor-\(i + 1)", env: ["OPENBLAS_NUM_THREADS": "\(per)", Self.childMarker: "1"],
                                                 stdout: toConsole, stderr: logLine))
        }
        log.info("local mode: learner\(learnerRanks > 1 ? " (\(learnerRanks) MPI ranks)" : "") + \(config.actors) actors (\(base)); output \(output.path)")
        // A child that dies while the run goes on is named with how it died (the learner re-issues an actor's
        // tasks; a learner that dies ends the run).
        let supervisor = LocalSupervisor(learner: learner, actors: actors) { name, how in
            log.warning("\(name) \(how) while the run went on; the learner re-issues its tasks")
        }
        // Ctrl-C reaches the whole process group; the learner finishes its step and checkpoints, actors exit.
        let sources = onTerminationSignals { sig in stop.set(signal: sig); supervisor.stop(signal: sig) }
        // withExtendedLifetime: an optimised build may otherwise release the signal sources right away.
        // Actors leave when the learner says the run is over; give them a moment, then make sure.
        let outcome = withExtendedLifetime(sources) {
            supervisor.run(actorGraceSeconds: Double(config.heartbeatTimeoutMs) / 1000 + 5)
        }
        if let sig = outcome.stopSignal {
            // The learner wrote its checkpoint and printed how to resume; the supervisor exits as its signal says.
            let latest = (try? Checkpointing.latest(in: output))?.lastPathComponent
            let done = latest.flatMap { Int($0.drop(while: { !$0.isNumber })) } ?? 0
            log.notice("learner \(outcome.learner)")
            log.notice("\(ResumeHint.line(stoppedAfter: done, of: config.steps, signal: sig))")
            throw ExitCode(128 + sig)
        }
        if !outcome.learner.isSuccess {
            log.error("learner \(outcome.learner); the run did not finish (continue it with --resume)")
            throw ExitCode(outcome.learner.shellStatus)
        }
        log.info("done: metrics in \(output.appendingPathComponent("metrics.jsonl").path)")
        EmbeddedDefault.sayWhatTheDemoShows(model: config.model, json: json)
    }
}

/// The private directory of local mode's ipc:// sockets.
enum LocalSocketDirectory {
    /// A new directory `$TMPDIR/rlif-XXXXXX` with mode 0700 (mkdtemp(3)).
    static func make() throws -> URL {
        let pattern = FileManager.default.temporaryDirectory.appendingPathComponent("rlif-XXXXXX").path
        var template = Array(pattern.utf8CString)
        guard let path = template.withUnsafeMutableBufferPointer({ b in mkdtemp(b.baseAddress!).map { String(cString: $0) } }) else {
            throw FileSystemError(operation: "create the socket directory", path: pattern, errno: errno)
        }
        return URL(fileURLWithPath: path)
    }
}
