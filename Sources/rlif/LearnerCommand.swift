import ArgumentParser
import Foundation
import Actor
import Distributed
import Kernels
import Learner
import Logging
import Model
import SafeTensors
import TensorBoard
import Training
import Transport
import Telemetry
import Wire

/// `rlif learner`: the one stateful process of a distributed run.
struct LearnerCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "learner",
        abstract: "Serve rollout tasks and weights to actors and train with GRPO on their groups.",
        discussion: "Binds the work ROUTER at PORT, the weight-notice PUB at PORT+1 and the weights ROUTER at PORT+2 (ipc://PATH: PATH-work, PATH-notices, PATH-weights).")

    @Option(help: "YAML training config (default: the embedded default).") var config: String?
    @Option(name: .customLong("set"), help: "Override a config key (repeatable).") var sets: [String] = []
    @Option(help: "Base address to bind, e.g. tcp://*:5555 or ipc:///tmp/rlif.") var bind: String = "tcp://*:5555"
    @Option(help: "Output directory (overrides output_dir).") var outputDir: String?
    @Flag(help: "Continue from <output_dir>/latest (an error when there is no checkpoint).") var resume = false
    @Flag(help: "Replace an earlier run in the output directory (its metrics and checkpoints are deleted).")
    var overwrite = false
    @Option(help: "This learner's CURVE secret key file (rlif keygen); turns on CURVE for every socket.") var curveSecret: String?
    @Option(help: "The actors' public keys: a file (one Z85 key per line, optional label after it) or a directory of .pub files. Re-read on SIGHUP.")
    var authorizedKeys: String?
    @Flag(help: "Serve a non-loopback tcp:// address without CURVE (anyone who reaches it can join or copy the model).")
    var insecure = false
    @Option(help: "Log level.") var logLevel: String?
    @Option(help: "Serve Prometheus metrics at http://HOST:PORT/metrics (e.g. 0.0.0.0:9464).") var metricsAddr: String?
    @Option(help: "How the sampling weights' matrices are held: f32, or bf16 (half the memory; each received weight rounded to bfloat16, arithmetic F32).")
    var baseWeights: BaseWeights = .f32
    /// Local mode passes the keys its user set (the learner's --config is then the effective config, every key in it).
    @Option(name: .customLong("user-keys"), help: .hidden) var userKeys: String?

    @Option(help: "Under mpirun/srun: compare the ranks' weight hashes every N steps (and before the first and after the last); 0 = only those two.")
    var weightCheckEvery: Int = 10

    func run() throws {
        LogSetup.bootstrap(level: logLevel)
        // Under mpirun/srun: one learner over N ranks (rank 0 serves actors and writes files); a failure on any
        // rank ends them all instead of leaving the others waiting in a collective.
        let world = try DataParallelLaunch.world()
        do { try run(world: world) } catch {
            if error is ExitCode { world?.finalize() }  // a stop after the other ranks were told to finish
            else if let w = world, w.size > 1 {
                Logger(label: "rlif.learner").critical("rank \(w.rank) of \(w.size): \(error); aborting every rank")
                w.abort(code: 1)
            }
            throw error
        }
        world?.finalize()
    }

    func run(world: MPIWorld?) throws {
        let rank = world?.rank ?? 0
        let log = Logger(label: rank == 0 ? "rlif.learner" : "rlif.learner.rank\(rank)")
        let endpoints = try Endpoints(base: bind)
        // Before any model is loaded: keys readable and valid, and no open port without them.
        let curve = try CurveOptions.learner(secret: curveSecret, authorized: authorizedKeys)
        try BindPolicy.check(endpoints, curve: curve != nil, insecure: insecure)
        if curve == nil && !BindPolicy.isLocal(endpoints.work) {
            log.warning("--insecure: serving \(endpoints.work) without authentication or encryption")
        }
        let requested = try RunSetup.config(path: config, sets: sets, outputDir: outputDir)
        let output = URL(fileURLWithPath: requested.outputDir)
        // Before any model is loaded: never overwrite a run silently, never "resume" from nothing. Only rank 0
        // touches the directory; the others learn from it which checkpoint to resume from.
        let start = try DataParallelLaunch.shared(rank == 0 ? try RunDirectory.prepare(output: output, resume: resume, overwrite: overwrite) : nil,
                                                  world: world)
        let o = try RunSetup.objects(requested, role: .learner,
                                     fixedKeys: userKeys.map { Set($0.split(separator: ",").map(String.init)) }
                                        ?? RunSetup.userKeys(path: config, sets: sets))
        let c = o.config
        if rank == 0 {
            for name in try Checkpointing.prepare(output: output) {
                log.notice("removed \(name) in \(output.path): left by an interrupted checkpoint save")
            }
        }
        var startStep = 0
        if case let .resume(dir) = start {
            startStep = try o.trainer.resume(from: dir).completedSteps
            log.info("resumed from \(dir.lastPathComponent) at step \(startStep)")
        }
        let answers = Dictionary(o.dataset.records.compactMap { r in r.answer.map { (r.id, $0) } }, uniquingKeysWith: { a, _ in a })
        let grpo = try GRPOLearnerCompute(trainer: o.trainer, scorer: o.scorer, output: output, answers: answers)
        let checks = WeightCheckSchedule(every: weightCheckEvery, steps: c.steps)
        if let w = world, w.size > 1 {
            try checkWeights(w, o.trainer, completedSteps: startStep)
            if rank > 0 {
                // No sockets, no files: train each step's share that rank 0 broadcasts, until it says finish.
                signal(SIGINT, SIG_IGN)   // mpirun forwards Ctrl-C; rank 0 decides when to stop
                signal(SIGTERM, SIG_IGN)
                let n = try DataParallelWorker(world: w, compute: grpo, checks: checks, logger: log).run()
                log.info("rank \(rank) done: \(n) steps trained")
                return
            }
            log.info("data-parallel learner: \(w.size) ranks (\(w.libraryVersion)); weights compared every \(weightCheckEvery) steps")
        }
        let dp = world.flatMap { $0.size > 1 ? DataParallelCompute(inner: grpo, world: $0, checks: checks) : nil }
        let compute: LearnerCompute = dp ?? grpo
        let records = try RunRecords(output: output, config: c, tokenizer: o.tokenizer, resumingAfter: startStep)
        grpo.samples = records.samples
        let evalRecords = Array(o.evalSet.prefix(c.evalLimit))
        func runEval(step: Int) throws -> EvalRecord {
            let t0 = Date()
            let r = try Evaluator.run(model: o.policy, formatter: o.formatter, records: evalRecords, format: .math,
                                      maxNewTokens: c.maxNewTokens, batchSequences: max(1, c.actorBatchSequences))
            try EvalItemsFile.saveTraining(output: output, step: step, config: c, items: r.items)
            return EvalRecord(step: step, report: r, seconds: Date().timeIntervalSince(t0))
        }
        if c.evalEvery > 0 && !evalRecords.isEmpty {
            let every = c.evalEvery, last = c.steps
            grpo.evaluate = { done in (done % every == 0 || done == last) ? try runEval(step: done) : nil }
        }
        let stop = o.formatter.stopTokens(modelEOS: o.policy.config.eosTokenIds)
        var opts = LearnerOptions(bind: endpoints, runId: "\(output.lastPathComponent)-\(UUID().uuidString.prefix(8))",
                                  steps: c.steps, promptsPerStep: c.promptsPerStep, groupSize: c.groupSize,
                                  sampling: SamplingParams(temperature: c.temperature, topP: c.topP, topK: UInt32(c.topK),
                                                           maxNewTokens: UInt32(c.maxNewTokens),
                                                           stopTokenIds: stop.sorted().map { UInt32(bitPattern: $0) },
                                                           stopSequences: try o.formatter.stopSequences(c.stop).map { $0.map { UInt32(bitPattern: $0) } }),
                                  seed: c.seed)
        opts.startStep = startStep
        opts.maxLag = c.maxLag
        opts.heartbeatIntervalMs = c.heartbeatIntervalMs
        opts.heartbeatTimeoutMs = c.heartbeatTimeoutMs
        opts.weightDType = c.weightDType == .bf16 ? .bf16 : .f32
        opts.chunkBytes = c.chunkBytes
        opts.checkpointEvery = c.checkpointEvery
        opts.curve = curve
        let dataset = o.dataset, formatter = o.formatter, perStep = c.promptsPerStep
        let server = try LearnerServer(options: opts, compute: compute, promptsForStep: { s in
            dataset.prompts(step: s, perStep: perStep).map { ($0.id, formatter.encode($0.text)) }
        }, logger: log)
        server.checkpointCursor = { done in dataset.cursor(afterPrompts: done * perStep) }
        let console = RecordConsole(totalSteps: c.steps, live: false)
        if let path = authorizedKeys { server.reloadKeys = { try AuthorizedKeys.load(path) } }
        let reload = server.reloadFlag
        signal(SIGHUP, SIG_IGN)
        let hup = DispatchSource.makeSignalSource(signal: SIGHUP, queue: .global())
        hup.setEventHandler { reload.raise() }
        hup.resume()
        if startStep == 0 && c.evalEvery > 0 && !evalRecords.isEmpty {
            let e = try runEval(step: 0)
            try records.append(e)
            console.show(.eval(e))
        }
        // The records on the training thread, before the step's checkpoint; the console on the network thread.
        server.recordStep = { result in
            for e in result.events {
                do { try records.append(e) } catch { log.error("run records: \(error)") }
            }
        }
        server.onStep = { [unowned server] result in
            for e in result.events { console.show(e) }
            // One line per step about the actors (the per-version weight messages are at debug level).
            log.info("\(server.status().actorsLine)")
        }
        var metricsEndpoint: MetricsEndpoint? = nil
        if let addr = metricsAddr {
            let m = LearnerMetrics()
            metricsEndpoint = try MetricsEndpoint(address: addr, registry: m.registry)
            server.onStatus = { m.update($0) }
            log.info("Prometheus metrics on http://\(metricsEndpoint!.host):\(metricsEndpoint!.port)/metrics")
        }
        grpo.waitingSince = Date()
        let flag = server.stopFlag
        let sources = onTerminationSignals { sig in flag.set(signal: sig) }
        log.info("\(o.policy.parameterCount) parameters, \(o.dataset.count) prompts, \(c.steps) steps × \(c.promptsPerStep) prompts × G=\(c.groupSize)")
        // withExtendedLifetime: an optimised build may otherwise release the signal sources right away.
        let summary = try withExtendedLifetime((sources, metricsEndpoint, hup)) { try server.run() }
        if !summary.quarantinedPrompts.isEmpty {
            log.warning("\(summary.quarantinedPrompts.count) prompts quarantined (failed on two actors, not trained): \(summary.quarantinedPrompts.joined(separator: "; "))")
        }
        try dp?.finish()
        if curve != nil || summary.droppedMessages + summary.invalidGroups.count > 0 {
            log.info("peers: \(summary.deniedConnections) connections denied, \(summary.droppedMessages) messages dropped, invalid groups \(summary.invalidGroups), banned \(summary.bannedActors)")
        }
        log.info("learner done: \(summary.completedSteps) steps, weights v\(summary.weightVersion); groups accepted \(summary.accepted), duplicate \(summary.duplicates), stale \(summary.stale), rejected \(summary.rejected), re-issued \(summary.reissued), malformed messages \(summary.malformed), actors \(summary.actorsSeen) (declared dead \(summary.actorsDeclaredDead))")
        let twice = summary.trainedPrompts.filter { $0.value != 1 }
        if !twice.isEmpty { log.error("prompts trained more than once: \(twice)") }
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys]
        let report: [String: Int] = ["completed_steps": summary.completedSteps, "weight_version": Int(summary.weightVersion),
                                     "accepted": summary.accepted, "duplicates": summary.duplicates, "stale": summary.stale,
                                     "rejected": summary.rejected, "reissued": summary.reissued, "malformed": summary.malformed,
                                     "actors_seen": summary.actorsSeen, "actors_declared_dead": summary.actorsDeclaredDead,
                                     "prompts_trained": summary.trainedPrompts.count,
                                     "prompts_trained_more_than_once": twice.count,
                                     "denied_connections": summary.deniedConnections, "dropped_messages": summary.droppedMessages,
                                     "invalid_groups": summary.invalidGroups.values.reduce(0, +),
                                     "banned_actors": summary.bannedActors.count,
                                     "task_failures": summary.ledger.failures, "quarantined": summary.ledger.quarantined,
                                     "other_incarnation": summary.otherIncarnation, "stall_reports": summary.stallReports]
        try AtomicFile.write(enc.encode(report), to: output.appendingPathComponent("learner_summary.json"))
        if summary.completedSteps < c.steps {
            // Stopped early (SIGINT/SIGTERM): the checkpoint is written; exit 128 + signal, not 0.
            // Under `rlif train` the supervisor prints the command to resume (this one has a temporary ipc path).
            if ProcessInfo.processInfo.environment[LocalMode.childMarker] == nil {
                log.notice("\(ResumeHint.line(stoppedAfter: summary.completedSteps, of: c.steps, signal: flag.signal))")
            }
            throw ExitCode(flag.exitStatus)
        }
    }
}

/// `rlif actor`: a stateless sampling worker; start as many as you like, anywhere.
struct ActorCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "actor",
        abstract: "Fetch weights from a learner, sample rollout groups with self-certainty, send them back.")

    @Option(help: "The learner's base address, e.g. tcp://learner-host:5555 or ipc:///tmp/rlif.") var learner: String
    @Option(help: "Actor id (default: hostname-pid).") var id: String?
    @Option(help: "OpenBLAS threads (default: OPENBLAS_NUM_THREADS or all cores).") var threads: Int?
    @Option(help: "Sequences decoded together (default 16, lowered by the memory plan if it does not fit).") var batchSequences: Int?
    @Option(help: "Exit with an error after this many seconds without reaching the learner (0 = retry forever).")
    var giveUpAfter: Int = 0
    @Option(help: "This actor's CURVE secret key file (rlif keygen); its public key must be in the learner's authorized keys.")
    var curveSecret: String?
    @Option(help: "The learner's public key file (its .pub), needed with --curve-secret.") var learnerKey: String?
    @Option(help: "Log level.") var logLevel: String?
    @Option(help: "Serve Prometheus metrics at http://HOST:PORT/metrics (e.g. 0.0.0.0:9465).") var metricsAddr: String?
    @Option(help: "How the sampling weights' matrices are held: f32, or bf16 (half the memory; each received weight rounded to bfloat16, arithmetic F32).")
    var baseWeights: BaseWeights = .f32
    @Flag(help: "In a LoRA run, take every weight version as merged full weights (W + s·B·A, the whole model each time) instead of the frozen base once and adapter-only versions.")
    var mergedWeights = false
    /// Local mode: --batch-sequences comes from the config, not the user, so the memory plan may lower it.
    @Flag(name: .customLong("batch-sequences-adjustable"), help: .hidden) var batchAdjustable = false

    func run() throws {
        LogSetup.bootstrap(level: logLevel)
        if let t = threads { Kernels.Gemm.threads = t }
        let name = id ?? "\(ProcessInfo.processInfo.hostName)-\(getpid())"
        let log = Logger(label: "rlif.actor.\(name)")
        var opts = ActorOptions(learner: try Endpoints(base: learner), actorId: name)
        let batch = batchSequences ?? 16
        opts.batchSequences = batch
        opts.giveUpAfterMs = giveUpAfter * 1000
        opts.curve = try CurveOptions.actor(secret: curveSecret, learnerKey: learnerKey)
        // Debug fault hook (tests, scripts/chaos): sampling these prompt ids fails on purpose, as a model error would.
        if let ids = ProcessInfo.processInfo.environment["RLIF_DEBUG_FAIL_PROMPTS"], !ids.isEmpty {
            opts.failPromptIds = Set(ids.split(separator: ",").map { String($0).trimmingCharacters(in: .whitespaces) })
            log.warning("RLIF_DEBUG_FAIL_PROMPTS: sampling fails on purpose for prompts \(opts.failPromptIds.sorted())")
        }
        let engine = TransformerRolloutEngine(batchSequences: batch, baseWeights: baseWeights, appliesAdapters: !mergedWeights)
        // The memory plan, once the learner's model config and the first task's lengths are known (before the KV
        // cache is allocated): printed, the decode batch lowered to fit unless --batch-sequences fixed it, or the
        // actor ends with the plan's error (a task error would only be re-issued to another actor).
        let fixed: Set<String> = batchSequences == nil || batchAdjustable ? [] : ["actor_batch_sequences"]
        // The first plan at info level; the plans for later (longer) tasks at debug (they differ only in lengths).
        let planned = PlannedOnce()
        engine.planDecoding = { model, sequence, maxNew, group, batch in
            var c = TrainConfig()
            c.maxNewTokens = maxNew
            c.groupSize = group
            c.actorBatchSequences = batch
            c.baseWeights = baseWeights
            do {
                // The weights are already allocated (the engine built the model from the learner's config).
                return try RunSetup.planMemory(c, role: .actor, model: model, longestPrompt: max(0, sequence - maxNew),
                                               fixedKeys: fixed, log: log,
                                               alreadyPlanned: ParameterLayout(config: model).weightBytes(baseWeights),
                                               reportLevel: planned.next() ? .info : .debug).actorBatchSequences
            } catch {
                log.critical("\(error)")
                Foundation.exit(3)
            }
        }
        let client = try ActorClient(options: opts, engine: engine, logger: log)
        var metricsEndpoint: MetricsEndpoint? = nil
        if let addr = metricsAddr {
            let m = ActorMetrics(actorId: name)
            metricsEndpoint = try MetricsEndpoint(address: addr, registry: m.registry)
            client.onSummary = { m.update($0) }
            log.info("Prometheus metrics on http://\(metricsEndpoint!.host):\(metricsEndpoint!.port)/metrics")
        }
        let s = try withExtendedLifetime(metricsEndpoint) { try client.run() }
        log.info("actor done: \(s.groupsSent) groups sent, \(s.groupsAcked) acknowledged, \(s.resends) resends, \(s.reconnects) reconnects, \(s.learnerRestarts) learner restarts (\(s.groupsDroppedOnRestart) groups, \(s.tasksDroppedOnRestart) tasks dropped), \(s.tasksFailed) tasks failed, weights v\(s.finalVersion)")
    }
}

/// True the first time `next()` is called, false after (the actor's planDecoding runs on its engine's thread).
final class PlannedOnce: @unchecked Sendable {  // behind `lock`
    private let lock = NSLock()
    private var done = false
    func next() -> Bool {
        lock.lock(); defer { lock.unlock() }
        defer { done = true }
        return !done
    }
}

/// `--metrics-addr` checked before any work (a typo fails at once, not after the model has loaded).
enum MetricsAddress {
    static func validate(_ address: String?) throws {
        guard let address else { return }
        do { _ = try MetricsEndpoint.parse(address) } catch { throw ValidationError("\(error)") }
    }
}
