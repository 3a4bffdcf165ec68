import ArgumentParser
import Foundation
import Actor
import Kernels
import Learner
import Logging
import Model
import SafeTensors
import TensorBoard
import Training
import Transport
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
    @Option(help: "Log level.") var logLevel: String?
    @Option(help: "How the sampling weights' matrices are held: f32, or bf16 (half the memory; each received weight rounded to bfloat16, arithmetic F32).")
    var baseWeights: BaseWeights = .f32
    /// Local mode passes the keys its user set (the learner's --config is then the effective config, every key in it).
    @Option(name: .customLong("user-keys"), help: .hidden) var userKeys: String?

    func run() throws {
        LogSetup.bootstrap(level: logLevel)
        let log = Logger(label: "rlif.learner")
        let endpoints = try Endpoints(base: bind)
        let requested = try RunSetup.config(path: config, sets: sets, outputDir: outputDir)
        let output = URL(fileURLWithPath: requested.outputDir)
        // Before any model is loaded: never overwrite a run silently, never "resume" from nothing.
        let start = try RunDirectory.prepare(output: output, resume: resume, overwrite: overwrite)
        let o = try RunSetup.objects(requested, role: .learner,
                                     fixedKeys: userKeys.map { Set($0.split(separator: ",").map(String.init)) }
                                        ?? RunSetup.userKeys(path: config, sets: sets))
        let c = o.config
        for name in try Checkpointing.prepare(output: output) {
            log.notice("removed \(name) in \(output.path): left by an interrupted checkpoint save")
        }
        var startStep = 0
        if case let .resume(dir) = start {
            startStep = try o.trainer.resume(from: dir).completedSteps
            log.info("resumed from \(dir.lastPathComponent) at step \(startStep)")
        }
        let answers = Dictionary(o.dataset.records.compactMap { r in r.answer.map { (r.id, $0) } }, uniquingKeysWith: { a, _ in a })
        let compute = try GRPOLearnerCompute(trainer: o.trainer, scorer: o.scorer, output: output, answers: answers)
        let records = try RunRecords(output: output, config: c, tokenizer: o.tokenizer, resumingAfter: startStep)
        compute.samples = records.samples
        let evalRecords = Array(o.evalSet.prefix(c.evalLimit))
        func runEval() throws -> [String: Any] {
            try Evaluator.run(model: o.policy, formatter: o.formatter, records: evalRecords, format: .math,
                              maxNewTokens: c.maxNewTokens, batchSequences: max(1, c.actorBatchSequences)).dictionary
        }
        if c.evalEvery > 0 && !evalRecords.isEmpty {
            let every = c.evalEvery, last = c.steps
            compute.evaluate = { done in (done % every == 0 || done == last) ? try runEval() : nil }
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
        opts.weightDType = c.weightDType == "bf16" ? .bf16 : .f32
        opts.chunkBytes = c.chunkBytes
        opts.checkpointEvery = c.checkpointEvery
        let dataset = o.dataset, formatter = o.formatter, perStep = c.promptsPerStep
        let server = try LearnerServer(options: opts, compute: compute, promptsForStep: { s in
            dataset.prompts(step: s, perStep: perStep).map { ($0.id, formatter.encode($0.text)) }
        }, logger: log)
        server.checkpointState = { done in ["cursor": dataset.cursor(afterPrompts: done * perStep)] }
        if startStep == 0 && c.evalEvery > 0 && !evalRecords.isEmpty {
            var e = try runEval()
            e["step"] = 0
            e["kind"] = "eval"
            try records.append(e)
            Terminal.line(RunSetup.progressLine(e, steps: c.steps))
        }
        let steps = c.steps
        server.onStep = { m in
            do { try records.append(m) } catch { log.error("run records: \(error)") }
            Terminal.line(RunSetup.progressLine(m, steps: steps))
        }
        let flag = server.stopFlag
        let sources = onTerminationSignals { sig in flag.set(signal: sig) }
        log.info("\(o.policy.parameterCount) parameters, \(o.dataset.count) prompts, \(c.steps) steps × \(c.promptsPerStep) prompts × G=\(c.groupSize)")
        // withExtendedLifetime: an optimised build may otherwise release the signal sources right away.
        let summary = try withExtendedLifetime(sources) { try server.run() }
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
                                     "prompts_trained_more_than_once": twice.count]
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
    @Option(help: "Log level.") var logLevel: String?
    @Option(help: "How the sampling weights' matrices are held: f32, or bf16 (half the memory; each received weight rounded to bfloat16, arithmetic F32).")
    var baseWeights: BaseWeights = .f32
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
        let engine = TransformerRolloutEngine(batchSequences: batch, baseWeights: baseWeights)
        // The memory plan, once the learner's model config and the first task's lengths are known (before the KV
        // cache is allocated): printed, the decode batch lowered to fit unless --batch-sequences fixed it, or the
        // actor ends with the plan's error (a task error would only be re-issued to another actor).
        let fixed: Set<String> = batchSequences == nil || batchAdjustable ? [] : ["actor_batch_sequences"]
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
                                               alreadyPlanned: ParameterLayout(config: model).weightBytes(baseWeights)).actorBatchSequences
            } catch {
                log.critical("\(error)")
                Foundation.exit(3)
            }
        }
        let client = try ActorClient(options: opts, engine: engine, logger: log)
        let s = try client.run()
        log.info("actor done: \(s.groupsSent) groups sent, \(s.groupsAcked) acknowledged, \(s.resends) resends, \(s.reconnects) reconnects, weights v\(s.finalVersion)")
    }
}
