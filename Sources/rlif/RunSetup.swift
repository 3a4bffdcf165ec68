import ArgumentParser
import Foundation
import Kernels
import Logging
import Model
import Tokenizer
import Telemetry
import Training

/// The model, prompts and configuration shipped inside the binary's resource bundle (`rlif train` with no
/// arguments uses them). See `scripts/default-model/` for how they were made.
enum EmbeddedDefault {
    static var directory: URL? { Bundle.module.url(forResource: "default", withExtension: nil) }
    static var intuitorConfig: URL? { directory?.appendingPathComponent("intuitor.yaml") }

    /// After a run on the embedded model: what it does and does not show (issue 12 — the demo must tell the truth).
    /// `json`: stdout holds the JSON summary only, so the note goes to stderr.
    static func sayWhatTheDemoShows(model: String, json: Bool = false) {
        guard let d = directory?.appendingPathComponent("model").standardizedFileURL.path,
              URL(fileURLWithPath: model).standardizedFileURL.path == d else { return }
        let note = """
            note: this run exercised the whole pipeline on the tiny embedded model. That model is more certain when it \
            is wrong (docs/RESULTS.md), so maximising its self-certainty is not expected to raise its accuracy; \
            INTUITOR needs a model whose certainty tracks correctness, as real instruct models' can: see README \
            "Use a real model" and scripts/reproduce-intuitor.
            """
        if json { LogSink.shared.write(note + "\n") } else { Terminal.line(note) }
    }
}

/// Logging to stderr, level from `--log-level` or `RLIF_LOG_LEVEL` (default info).
enum LogSetup {
    nonisolated(unsafe) static var done = false
    /// `--log-level` must name a swift-log level (a typo would otherwise fall back to info silently).
    static func validate(_ level: String?) throws {
        guard let level, Logger.Level(rawValue: level) == nil else { return }
        let names = Logger.Level.allCases.map(\.rawValue)
        throw ValidationError("--log-level: unknown level '\(level)'; one of \(names.joined(separator: ", "))")
    }
    static func bootstrap(level: String?) {
        guard !done else { return }
        done = true
        let lvl = Logger.Level(rawValue: level ?? ProcessInfo.processInfo.environment["RLIF_LOG_LEVEL"] ?? "info") ?? .info
        LoggingSystem.bootstrap { label in
            var h = SinkLogHandler(label: label)
            h.logLevel = lvl
            return h
        }
    }
}

struct SetupError: Error, CustomStringConvertible {
    var description: String
}

/// Loads the run configuration: YAML (or the embedded default), then `--set key=value` overrides. Paths in the
/// YAML are relative to the YAML file's folder; `output_dir` is relative to the working directory.
enum RunSetup {
    static func config(path: String?, sets: [String], outputDir: String?) throws -> TrainConfig {
        let file: URL
        if let path {
            file = URL(fileURLWithPath: path)
        } else if let d = EmbeddedDefault.intuitorConfig {
            file = d
        } else {
            throw SetupError(description: "no --config given and the embedded default is missing from this build")
        }
        var c = try TrainConfig.load(contentsOf: file)
        let base = file.deletingLastPathComponent()
        func resolve(_ p: String) -> String {
            p.isEmpty || p.hasPrefix("/") ? p : base.appendingPathComponent(p).standardizedFileURL.path
        }
        c.model = resolve(c.model)
        c.prompts = resolve(c.prompts)
        c.evalPrompts = c.evalPrompts.map(resolve)
        c = try c.overriding(sets)
        if let o = outputDir { c.outputDir = o }
        c.outputDir = URL(fileURLWithPath: c.outputDir).standardizedFileURL.path
        guard !c.model.isEmpty else { throw ConfigError(source: file.path, key: "model", message: "required") }
        guard !c.prompts.isEmpty else { throw ConfigError(source: file.path, key: "prompts", message: "required") }
        return c
    }

    /// Everything a trainer needs, built from a config.
    struct Objects {
        /// The run's configuration after the memory plan (possibly smaller micro_batch_tokens / actor_batch_sequences).
        var config: TrainConfig
        var policy: Transformer
        var reference: Transformer?
        var tokenizer: Tokenizer
        var formatter: PromptFormatter
        var dataset: PromptDataset
        var evalSet: [PromptRecord]
        var scorer: RewardScorer
        var trainer: GRPOTrainer
    }

    /// Keys the user chose: those of a `--config` YAML (not the embedded default's) and of `--set`. The memory
    /// plan only adjusts settings outside this set.
    static func userKeys(path: String?, sets: [String]) -> Set<String> {
        var keys = Set(sets.compactMap { a in a.firstIndex(of: "=").map { a[..<$0].trimmingCharacters(in: .whitespaces) } })
        if let path, let text = try? String(contentsOfFile: path, encoding: .utf8) { keys.formUnion(TrainConfig.keys(inYAML: text)) }
        return keys
    }

    /// The memory budget: `RLIF_MEMORY_BUDGET` (bytes, or with a K/M/G suffix) when set, else the cgroup limit or
    /// MemAvailable.
    static func memoryBudget() throws -> SystemMemory.Budget? {
        if let raw = ProcessInfo.processInfo.environment["RLIF_MEMORY_BUDGET"], !raw.isEmpty {
            let units: [Character: Int] = ["K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40]
            let t = raw.trimmingCharacters(in: .whitespaces).uppercased()
            let unit = t.last.flatMap { units[$0] }
            guard let n = Double(unit == nil ? t : String(t.dropLast())), n > 0, n.isFinite else {
                throw SetupError(description: "RLIF_MEMORY_BUDGET=\(raw): expected bytes or a number with K, M, G or T (e.g. 12G)")
            }
            return SystemMemory.Budget(bytes: Int(n * Double(unit ?? 1)), source: "RLIF_MEMORY_BUDGET")
        }
        return SystemMemory.budget()
    }

    /// Prints the memory plan for `role` and returns `c` with the settings it had to reduce (micro_batch_tokens,
    /// actor_batch_sequences, unless in `fixedKeys`); throws `MemoryPlanError` if the run cannot fit.
    /// `alreadyPlanned`: bytes of planned items the process already holds (an actor's weights), not counted twice.
    static func planMemory(_ c: TrainConfig, role: MemoryPlan.Role, model: ModelConfig, longestPrompt: Int,
                           fixedKeys: Set<String>, log: Logger, alreadyPlanned: Int = 0,
                           reportLevel: Logger.Level = .info) throws -> TrainConfig {
        let budget = try memoryBudget()
        let resident = max(0, (SystemMemory.resident()?.current ?? 0) - alreadyPlanned)
        let plan = MemoryPlan(role: role, model: model, config: c, longestPrompt: longestPrompt, processBytes: resident)
        log.log(level: reportLevel, "\(plan.report(budget: budget))")
        guard let budget else { return c }
        let (fitted, notes) = try MemoryPlan.fit(role: role, model: model, config: c, longestPrompt: longestPrompt,
                                                 budget: budget.bytes, fixedKeys: fixedKeys, processBytes: resident)
        var out = c
        out.microBatchTokens = fitted.microBatchTokens
        out.actorBatchSequences = fitted.decodeBatch
        for n in notes { log.notice("memory plan: \(n); estimated peak now \(MemoryPlan.gib(fitted.total))") }
        return out
    }

    /// Everything a trainer needs, built from a config. With a `role`, the memory plan is printed (and the
    /// settings it reduces applied, see `Objects.config`) after the tokenizer and prompts are read and before the
    /// model is loaded.
    static func objects(_ config: TrainConfig, role: MemoryPlan.Role? = nil, fixedKeys: Set<String> = []) throws -> Objects {
        var c = config
        guard let tokenizer = try ModelFiles.loadTokenizer(model: c.model, override: nil) else {
            throw SetupError(description: "\(c.model)/tokenizer.json: missing (the model directory needs its tokenizer.json)")
        }
        let formatter = try PromptFormatter(tokenizer: tokenizer, template: c.template, systemPrompt: c.systemPrompt)
        let modelConfig = try ModelFiles.loadConfig(c.model)
        let (dataset, longest) = try promptsThatFit(c, formatter: formatter, context: modelConfig.maxPositionEmbeddings)
        let evalSet = try c.evalPrompts.map { try PromptDataset(contentsOf: URL(fileURLWithPath: $0), seed: 0).records } ?? []
        if let role {
            c = try planMemory(c, role: role, model: modelConfig, longestPrompt: longest, fixedKeys: fixedKeys,
                               log: Logger(label: "rlif.memory"))
        }
        // `base_weights` holds the frozen weights: with LoRA the base, in full fine-tuning the reference copy (the
        // policy trains in F32).
        let policy = try ModelFiles.loadModel(c.model, baseWeights: c.policyWeights)
        var reference: Transformer? = nil
        // With LoRA the reference (and the frozen reward model) is the policy's base with the adapters off: no
        // second copy of the weights.
        if c.keepsInitialModel && c.lora == nil {
            let r = try Transformer(config: policy.config, baseWeights: c.baseWeights)
            r.setParameters(from: policy.parameters.pointer)   // BF16: each matrix rounded, a tensor at a time
            reference = r
        }
        let scorer = try RewardScorer(name: c.reward, tokenizer: tokenizer)
        let trainer = try GRPOTrainer(policy: policy, reference: reference, config: c)
        return Objects(config: c, policy: policy, reference: reference, tokenizer: tokenizer, formatter: formatter,
                       dataset: dataset, evalSet: evalSet, scorer: scorer, trainer: trainer)
    }
}

extension RunSetup {
    /// The training prompts that can be sampled: `max_new_tokens` must leave room for a prompt in the model's
    /// context, and prompts longer than `max_prompt_tokens` (or than the context allows) are skipped at load, each
    /// named with its file:line, and counted.
    /// Also returns the longest kept prompt's token count.
    static func promptsThatFit(_ c: TrainConfig, formatter: PromptFormatter, context: Int) throws
        -> (dataset: PromptDataset, longest: Int) {
        guard c.maxNewTokens < context else {
            throw ConfigError(source: "config", key: "max_new_tokens",
                              message: "\(c.maxNewTokens) leaves no room for a prompt in the model's \(context)-token context")
        }
        let all = try PromptDataset(contentsOf: URL(fileURLWithPath: c.prompts), seed: c.seed)
        let room = context - 1
        let limit = c.maxPromptTokens > 0 ? min(c.maxPromptTokens, room) : room
        let (kept, skipped, longest) = try all.keeping(maxTokens: limit) { formatter.encode($0.text).count }
        if !skipped.isEmpty {
            let log = Logger(label: "rlif.data")
            for s in skipped.prefix(5) {
                log.warning("\(c.prompts): prompt \(s.record.id) has \(s.tokens) tokens, more than \(limit): skipped")
            }
            log.warning("\(c.prompts): skipped \(skipped.count) of \(all.count) prompts longer than \(limit) tokens\(c.maxPromptTokens > 0 ? " (max_prompt_tokens)" : " (the model's context)")")
        }
        return (kept, longest)
    }
}

/// Lines on stdout, flushed at once (stdout is a pipe in local mode); above the progress line while a live
/// console has the terminal.
enum Terminal {
    static func line(_ s: String) {
        if let c = LogSink.shared.console { c.print(s) } else { FileHandle.standardOutput.write(Data((s + "\n").utf8)) }
    }
}

/// How a training process shows its records. Under the local-mode supervisor (a child) each record goes to
/// stdout as one `rlif-record <metrics.jsonl line>` line, which the supervisor's `Console` renders (it owns the
/// terminal); otherwise this process's own `Console` prints the step and eval lines (and, when `live` and stdout
/// is a terminal, the progress line under them).
final class RecordConsole: @unchecked Sendable {
    static let prefix = "rlif-record "
    let console: Console?

    init(totalSteps: Int, live: Bool, out: FileHandle = .standardOutput) {
        if ProcessInfo.processInfo.environment[LocalMode.childMarker] != nil {
            console = nil
        } else {
            let c = Console(totalSteps: totalSteps, live: live ? nil : false, out: out)
            console = c
            if c.isLive { LogSink.shared.console = c }
        }
    }

    func show(_ event: RunEvent) {
        let line: Data
        do {
            switch event {
            case .train(let r): line = try MetricsLog.encoder().encode(r)
            case .eval(let r): line = try MetricsLog.encoder().encode(r)
            }
        } catch { return }
        if let console { console.record(line) } else { Terminal.line(Self.prefix + String(decoding: line, as: UTF8.self)) }
    }

    func finish() {
        console?.finish()
        LogSink.shared.console = nil
    }
}

/// `rlif train --json`: the run's outcome as one JSON object on stdout (the step lines go to stderr).
struct TrainSummary: Encodable {
    var outputDir: String
    var completedSteps: Int
    var totalSteps: Int
    var stopped: Bool
    var rewardMean: Double?
    var evalAccuracy: Double?
    var evalStep: Int?
    var etaSeconds: Double?
    var trainedTokensPerSecond: Double?

    enum CodingKeys: String, CodingKey {
        case outputDir = "output_dir", completedSteps = "completed_steps", totalSteps = "total_steps", stopped
        case rewardMean = "reward_mean", evalAccuracy = "eval_accuracy", evalStep = "eval_step"
        case trainedTokensPerSecond = "trained_tokens_per_second"
    }

    init(output: String, progress p: ProgressText, stopped: Bool) {
        outputDir = output
        completedSteps = p.lastStep
        totalSteps = p.totalSteps
        self.stopped = stopped
        rewardMean = p.lastReward
        evalAccuracy = p.lastEval?.evalAccuracy
        evalStep = p.lastEval?.step
        trainedTokensPerSecond = p.tokensPerSecond
    }

    /// On stdout itself (after the console has let go of the terminal).
    func print() {
        if let d = try? MetricsLog.encoder().encode(self) { FileHandle.standardOutput.write(d + Data([UInt8(ascii: "\n")])) }
    }
}

/// Where log lines go: stderr, or through the live console so they scroll above its progress line.
final class LogSink: @unchecked Sendable {  // `console` behind `lock`
    static let shared = LogSink()
    private let lock = NSLock()
    private var _console: Console?
    var console: Console? {
        get { lock.lock(); defer { lock.unlock() }; return _console }
        set { lock.lock(); _console = newValue; lock.unlock() }
    }
    func write(_ text: String) {
        let data = Data(text.utf8)
        if let c = console { c.log(data) } else { FileHandle.standardError.write(data) }
    }
}

/// swift-log's stream format ("<time> <level> <label> : [metadata] message") written through `LogSink`.
struct SinkLogHandler: LogHandler {
    let label: String
    var logLevel: Logger.Level = .info
    var metadata: Logger.Metadata = [:]
    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }
    func log(event: LogEvent) {
        let (level, message) = (event.level, event.message)
        let all = metadata.merging(event.metadata ?? [:]) { _, b in b }
        let md = all.isEmpty ? "" : " " + all.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
        let f = DateFormatter()
        f.locale = Locale(identifier: "en_US_POSIX")
        f.dateFormat = "yyyy-MM-dd'T'HH:mm:ssZ"
        LogSink.shared.write("\(f.string(from: Date())) \(level) \(label) :\(md) \(message)\n")
    }
}

/// SIGINT and SIGTERM delivered to `handler` (with the signal's number) on a dispatch queue instead of killing
/// the process. Keep the returned sources alive for as long as the handling should last.
func onTerminationSignals(_ handler: @escaping @Sendable (Int32) -> Void) -> [DispatchSourceSignal] {
    [SIGINT, SIGTERM].map { sig in
        signal(sig, SIG_IGN)
        let s = DispatchSource.makeSignalSource(signal: sig, queue: .global())
        s.setEventHandler { handler(sig) }
        s.resume()
        return s
    }
}

/// How a stopped run says it can be continued: this command line with `--resume` (and without `--overwrite`).
enum ResumeHint {
    static func line(stoppedAfter steps: Int, of total: Int, signal: Int32?) -> String {
        var args = Array(CommandLine.arguments.dropFirst()).filter { $0 != "--overwrite" }
        if !args.contains("--resume") { args.append("--resume") }
        let name = signal.map { $0 == SIGINT ? "SIGINT" : $0 == SIGTERM ? "SIGTERM" : "signal \($0)" } ?? "a stop request"
        return "stopped by \(name) after step \(steps) of \(total) (checkpoint written); continue with: rlif \(args.joined(separator: " "))"
    }
}
