import Foundation
import Kernels
import Logging
import Model
import Tokenizer
import Training

/// The model, prompts and configuration shipped inside the binary's resource bundle (`rlif train` with no
/// arguments uses them). See `scripts/default-model/` for how they were made.
enum EmbeddedDefault {
    static var directory: URL? { Bundle.module.url(forResource: "default", withExtension: nil) }
    static var intuitorConfig: URL? { directory?.appendingPathComponent("intuitor.yaml") }
}

/// Logging to stderr, level from `--log-level` or `RLIF_LOG_LEVEL` (default info).
enum LogSetup {
    nonisolated(unsafe) static var done = false
    static func bootstrap(level: String?) {
        guard !done else { return }
        done = true
        let lvl = Logger.Level(rawValue: level ?? ProcessInfo.processInfo.environment["RLIF_LOG_LEVEL"] ?? "info") ?? .info
        LoggingSystem.bootstrap { label in
            var h = StreamLogHandler.standardError(label: label)
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
        var policy: Transformer
        var reference: Transformer?
        var tokenizer: Tokenizer
        var formatter: PromptFormatter
        var dataset: PromptDataset
        var evalSet: [PromptRecord]
        var scorer: RewardScorer
        var trainer: GRPOTrainer
    }

    static func objects(_ c: TrainConfig) throws -> Objects {
        guard let tokenizer = try ModelFiles.loadTokenizer(model: c.model, override: nil) else {
            throw SetupError(description: "\(c.model)/tokenizer.json: missing (the model directory needs its tokenizer.json)")
        }
        let policy = try ModelFiles.loadModel(c.model)
        var reference: Transformer? = nil
        if c.klBeta > 0 {
            let r = try Transformer(config: policy.config)
            r.parameters.copy(from: policy.parameters)
            reference = r
        }
        let formatter = try PromptFormatter(tokenizer: tokenizer, template: c.template, systemPrompt: c.systemPrompt)
        let dataset = try PromptDataset(contentsOf: URL(fileURLWithPath: c.prompts), seed: c.seed)
        let evalSet = try c.evalPrompts.map { try PromptDataset(contentsOf: URL(fileURLWithPath: $0), seed: 0).records } ?? []
        let scorer = try RewardScorer(name: c.reward, tokenizer: tokenizer)
        let trainer = try GRPOTrainer(policy: policy, reference: reference, config: c)
        return Objects(policy: policy, reference: reference, tokenizer: tokenizer, formatter: formatter,
                       dataset: dataset, evalSet: evalSet, scorer: scorer, trainer: trainer)
    }

    /// A readable one-line summary of a metrics record for the terminal.
    static func progressLine(_ m: [String: Any], steps: Int) -> String {
        func f(_ k: String, _ digits: Int = 4) -> String {
            guard let v = m[k] as? Double else { return "-" }
            return String(format: "%.\(digits)f", v)
        }
        if (m["kind"] as? String) == "eval" {
            return "eval @ step \(m["step"] ?? "?"): accuracy \(f("eval_accuracy", 3)) self-certainty \(f("eval_self_certainty")) length \(f("eval_length", 1))"
        }
        let step = (m["step"] as? Int).map { $0 + 1 } ?? 0
        var evalPart = ""
        if let a = m["eval_accuracy"] as? Double {
            evalPart = String(format: "\n  eval @ step %d: accuracy %.3f self-certainty %.4f", step, a, m["eval_self_certainty"] as? Double ?? 0)
        }
        return "step \(step)/\(steps)  reward \(f("reward_mean")) ±\(f("reward_std"))  loss \(f("loss", 5))  kl \(f("kl", 5))  clip \(f("clip_fraction", 3))  |g| \(f("grad_norm", 3))  lr \(String(format: "%.2e", m["lr"] as? Double ?? 0))  len \(f("response_length", 1))  \(f("step_seconds", 2))s" + evalPart
    }
}

/// Progress lines on stdout, flushed at once (stdout is a pipe in local mode).
enum Terminal {
    static func line(_ s: String) {
        FileHandle.standardOutput.write(Data((s + "\n").utf8))
    }
}

/// SIGINT and SIGTERM delivered to `handler` on a dispatch queue instead of killing the process. Keep the
/// returned sources alive for as long as the handling should last.
func onTerminationSignals(_ handler: @escaping @Sendable () -> Void) -> [DispatchSourceSignal] {
    [SIGINT, SIGTERM].map { sig in
        signal(sig, SIG_IGN)
        let s = DispatchSource.makeSignalSource(signal: sig, queue: .global())
        s.setEventHandler(handler: handler)
        s.resume()
        return s
    }
}
