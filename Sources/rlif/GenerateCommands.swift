import Answers
import ArgumentParser
import Foundation
import Kernels
import Logging
import Model
import Sampling
import Tokenizer
import Telemetry
import Training

extension TemplateChoice: ExpressibleByArgument {}
extension BaseWeights: ExpressibleByArgument {}

/// Options shared by the commands that load a model and format prompts.
struct ModelOptions: ParsableArguments {
    @Option(help: "Hugging Face model directory (config.json, model.safetensors, tokenizer.json), or a .gguf file (its own tokenizer and chat template).") var model: String
    @Option(help: "tokenizer.json to use instead of the model's (its directory's tokenizer_config.json gives BOS/EOS and the chat template).")
    var tokenizer: String?
    @Option(help: "Prompt template: auto (the model's own chat template; raw without one), chatml, plain or raw.")
    var template: TemplateChoice = .auto
    @Option(help: "System prompt: a name (math, none, ...) or literal text.") var systemPrompt: String = "none"
    @Option(help: "OpenBLAS threads (default: all cores).") var threads: Int?
    @Option(help: "LoRA adapters applied on top of --model: a PEFT directory (adapter_config.json + adapter_model.safetensors), e.g. a LoRA run's checkpoint.")
    var adapter: String?
    @Option(help: "How the model's weight matrices are held: f32, or bf16 (half the memory and of the decode's weight traffic; each weight rounded to bfloat16 once at load, all arithmetic F32).")
    var baseWeights: BaseWeights = .f32

    /// The tokenizer (`--tokenizer`, else the model's: a `.gguf` file's metadata or `<dir>/tokenizer.json`), nil
    /// when a model directory has none.
    func loadTokenizer() throws -> Tokenizer? {
        try ModelFiles.loadTokenizer(model: model, override: tokenizer)
    }

    /// The prompt formatter for `--template` / `--system-prompt`, nil when the model has no tokenizer.
    func loadFormatter() throws -> PromptFormatter? {
        guard let tok = try loadTokenizer() else { return nil }
        return try PromptFormatter(tokenizer: tok, template: template, systemPrompt: systemPrompt, source: "command line")
    }

    /// The model and its prompt formatter (nil when the model has no tokenizer). The tokenizer and template are
    /// resolved first, so a bad one fails before the weights are read; `needsTokenizer: false` (token-id input) skips
    /// a .gguf's tokenizer unless --tokenizer is given.
    func load(needsTokenizer: Bool = true) throws -> (Transformer, PromptFormatter?) {
        if let t = threads { Gemm.threads = t }
        let f = needsTokenizer || tokenizer != nil || !ModelFiles.isGGUF(model) ? try loadFormatter() : nil
        let m = try ModelFiles.loadModel(model, baseWeights: baseWeights)
        if let a = adapter { m.lora = try LoRAAdapters.loadPEFT(directory: URL(fileURLWithPath: a), model: m.config) }
        return (m, f)
    }
}

/// A progress bar with the ETA on stderr when it is a terminal: "eval [#####     ] 40/200  ETA 3m12s". The ETA
/// is the mean pace since the first update (items done before it, e.g. resumed ones, are not counted).
final class ProgressBar: @unchecked Sendable {  // updated from one thread at a time (the sampler's callback)
    let total: Int
    let label: String
    let enabled = isatty(2) != 0
    private var start: (Date, Int)?
    init(total: Int, label: String) { self.total = total; self.label = label }
    func update(_ done: Int) {
        guard enabled, total > 0 else { return }
        let now = Date()
        if start == nil { start = (now, done) }
        let (t0, d0) = start!
        var eta = "-"
        if done > d0 {
            let pace = now.timeIntervalSince(t0) / Double(done - d0)
            eta = ProgressText.duration(pace * Double(total - done))
        }
        let w = 30, k = min(w, done * w / total)
        FileHandle.standardError.write(Data("\r\u{1B}[2K\(label) [\(String(repeating: "#", count: k))\(String(repeating: " ", count: w - k))] \(done)/\(total)  ETA \(eta)".utf8))
        if done >= total { FileHandle.standardError.write(Data("\n".utf8)) }
    }
}

func jsonLine(_ obj: Any) throws -> String {
    String(decoding: try JSONSerialization.data(withJSONObject: obj, options: [.sortedKeys, .withoutEscapingSlashes]), as: UTF8.self)
}

/// `rlif generate`: sample G completions per prompt with per-token log-probs and self-certainty.
struct Generate: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Sample completions (G per prompt) with log-probs and self-certainty.")

    @OptionGroup var modelOptions: ModelOptions
    @Option(help: "Prompt text.") var prompt: String?
    @Option(help: "JSONL of {\"prompt\"} or {\"question\"}: one JSON line out per prompt.") var prompts: String?
    @Option(help: "Completions per prompt.") var group: Int = 1
    @Option(parsing: .unconditional, help: "0 = greedy.") var temperature: Float = 0
    @Option var topP: Float = 1
    @Option var topK: Int = 0
    @Option var maxNewTokens: Int = 128
    @Option var seed: UInt64 = 0
    @Option(help: "Stop when the completion ends with this text (token-level match; repeatable).") var stop: [String] = []
    @Option(help: "Sequences decoded together.") var batchSequences: Int = 16
    @Flag(help: "Machine-readable JSON output.") var json = false

    func run() throws {
        LogSetup.bootstrap(level: nil)
        let (m, f) = try modelOptions.load()
        guard let f else { throw ValidationError("\(modelOptions.model) has no tokenizer.json") }
        var records: [PromptRecord] = []
        if let p = prompt { records.append(PromptRecord(id: "prompt", text: p, answer: nil)) }
        if let file = prompts { records += try PromptDataset(contentsOf: URL(fileURLWithPath: file), seed: 0).records }
        guard !records.isEmpty else { throw ValidationError("give --prompt TEXT or --prompts FILE.jsonl") }
        let params = SamplingParameters(temperature: temperature, topP: topP, topK: topK, maxNewTokens: maxNewTokens,
                                        stopTokenIds: f.stopTokens(modelEOS: m.config.eosTokenIds),
                                        stopSequences: stop.map { f.tokenizer.encode($0) })
        let reqs = try records.enumerated().map { k, r in
            let ids = f.encode(r.text)
            guard !ids.isEmpty else {
                throw ValidationError("prompt \(r.id) is no tokens (template \(f.template.name), and the tokenizer adds no BOS)")
            }
            return GroupRequest(promptTokens: ids, groupSize: group, parameters: params, seed: seed &+ UInt64(k))
        }
        let bar = ProgressBar(total: reqs.count, label: "generate")
        let t0 = Date()
        let groups = try GroupedSampler.sample(reqs, on: m, maxBatchSequences: batchSequences, progress: bar.update)
        let secs = Date().timeIntervalSince(t0)
        for (r, g) in zip(records, groups) {
            let comps: [[String: Any]] = g.completions.map { c in
                ["text": f.tokenizer.decode(c.tokens, skipSpecialTokens: true), "tokens": c.tokens.map(Int.init),
                 "logprobs": c.logprobs.map(Double.init), "self_certainty": c.selfCertainty.map(Double.init),
                 "mean_self_certainty": Double(c.meanSelfCertainty), "finish_reason": c.finishReason.rawValue]
            }
            if json || prompts != nil {
                print(try jsonLine(["id": r.id, "prompt": r.text, "completions": comps]))
            } else {
                for (i, c) in g.completions.enumerated() {
                    if group > 1 { print("--- completion \(i + 1) (self-certainty \(String(format: "%.4f", c.meanSelfCertainty)), \(c.tokens.count) tokens, \(c.finishReason.rawValue))") }
                    print(f.tokenizer.decode(c.tokens, skipSpecialTokens: true))
                }
            }
        }
        let n = groups.reduce(0) { $0 + $1.generatedTokens }
        FileHandle.standardError.write(Data(String(format: "%d tokens in %.2f s (%.1f tokens/s)\n", n, secs, Double(n) / max(secs, 1e-9)).utf8))
    }
}

/// `rlif score`: log-probs and self-certainty of a given completion under the model (teacher forcing).
struct Score: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Score a completion: per-token log-probs and self-certainty (JSON).")

    @OptionGroup var modelOptions: ModelOptions
    @Option var prompt: String?
    @Option var completion: String?
    @Option(help: "Prompt token ids, e.g. 1,2,3 (for models without a tokenizer).") var promptIds: String?
    @Option(help: "Completion token ids, e.g. 4,5.") var completionIds: String?
    @Option(parsing: .unconditional, help: "Temperature of the reported log-probs (self-certainty always uses raw logits).") var temperature: Float = 1
    @Flag(help: "JSON output (the default and only format; accepted so every reporting command takes --json).") var json = false

    func parseIds(_ s: String, _ name: String) throws -> [Int32] {
        try s.split(separator: ",").map {
            guard let v = Int32($0.trimmingCharacters(in: .whitespaces)) else { throw ValidationError("--\(name): '\($0)' is not a token id") }
            return v
        }
    }

    func run() throws {
        LogSetup.bootstrap(level: nil)
        let (m, f) = try modelOptions.load(needsTokenizer: promptIds == nil || completionIds == nil)
        let p: [Int32], c: [Int32]
        if let pi = promptIds, let ci = completionIds {
            p = try parseIds(pi, "prompt-ids"); c = try parseIds(ci, "completion-ids")
        } else if let pt = prompt, let ct = completion {
            guard let f else { throw ValidationError("\(modelOptions.model) has no tokenizer.json: use --prompt-ids/--completion-ids") }
            p = f.encode(pt); c = f.tokenizer.encode(ct)
        } else {
            throw ValidationError("give --prompt and --completion, or --prompt-ids and --completion-ids")
        }
        guard !p.isEmpty, !c.isEmpty else { throw ValidationError("prompt and completion need at least one token each") }
        let v = m.config.vocabSize
        if let bad = (p + c).first(where: { $0 < 0 || Int($0) >= v }) { throw ValidationError("token id \(bad) not in 0..<\(v)") }
        let packed = PackedCompletions([(p, c)])
        let head = try m.forwardHead(packed.batch, logitRows: packed.rows, targets: packed.targets,
                                     temperature: temperature, selfCertainty: true, forBackward: false)
        let lp = head.logp, sc = head.selfCertainty
        let mean = sc.reduce(0.0) { $0 + Double($1) } / Double(c.count)
        print(try jsonLine(["tokens": c.map(Int.init), "logprobs": lp.map(Double.init), "self_certainty": sc.map(Double.init),
                            "mean_self_certainty": mean, "temperature": Double(temperature)]))
    }
}

/// `rlif eval`: greedy accuracy on labelled prompts, and self-certainty of right vs wrong answers.
struct Eval: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Greedy evaluation: accuracy, self-certainty of correct vs incorrect, length.")

    @OptionGroup var modelOptions: ModelOptions
    @Option(help: "JSONL with question/prompt and answer.") var data: String
    @Option(help: "Answer format: gsm8k (#### x) or math (last \\boxed{}).") var format: String = "math"
    @Option var limit: Int?
    @Option var maxNewTokens: Int = 256
    @Option var batchSequences: Int = 16
    @Option(help: "Append every scored item to this JSONL as it is done; run again with the same file and settings to resume an interrupted evaluation.")
    var items: String?
    @Flag(help: "JSON report (with every item) on stdout.") var json = false

    func run() throws {
        LogSetup.bootstrap(level: nil)
        guard let fmt = AnswerFormat(rawValue: format) else { throw ValidationError("--format must be gsm8k or math") }
        let (m, f) = try modelOptions.load()
        guard let f else { throw ValidationError("\(modelOptions.model) has no tokenizer.json") }
        var records = try PromptDataset(contentsOf: URL(fileURLWithPath: data), seed: 0).records
        if let l = limit { records = Array(records.prefix(l)) }
        let settings = EvalItemsFile.Settings(model: modelOptions.model, data: data, format: format, limit: limit,
                                              maxNewTokens: maxNewTokens, template: modelOptions.template.rawValue,
                                              systemPrompt: modelOptions.systemPrompt)
        var file: EvalItemsFile? = nil
        var done: [EvalReport.Item] = []
        if let path = items {
            let (opened, previous) = try EvalItemsFile.open(URL(fileURLWithPath: path), settings: settings)
            file = opened
            done = previous
            if !done.isEmpty { FileHandle.standardError.write(Data("resuming: \(done.count) of \(records.count) items already in \(path)\n".utf8)) }
        }
        let bar = ProgressBar(total: records.count, label: "eval")
        let r = try Evaluator.run(model: m, formatter: f, records: records, format: fmt, maxNewTokens: maxNewTokens,
                                  batchSequences: batchSequences, done: done,
                                  chunkSequences: file == nil ? nil : 4 * batchSequences,
                                  onItems: file.map { fl in { try fl.append($0) } }, progress: bar.update)
        // Resumed items were scored again from their completions: store them as scored now.
        if let path = items, !done.isEmpty {
            try EvalItemsFile.rewrite(URL(fileURLWithPath: path), settings: settings, items: r.items)
        }
        if json {
            let enc = JSONEncoder()
            enc.outputFormatting = [.prettyPrinted, .sortedKeys]
            print(String(decoding: try enc.encode(r), as: UTF8.self))
            return
        }
        func f4(_ x: Double?) -> String { x.map { String(format: "%.4f", $0) } ?? "-" }
        print("| metric | value |\n|---|---|")
        print("| examples | \(r.count) |")
        print("| accuracy | \(String(format: "%.3f", r.accuracy)) (\(r.correct)/\(r.count)), 95% CI \(String(format: "%.3f–%.3f", r.accuracyLow, r.accuracyHigh)) |")
        print("| mean self-certainty | \(f4(r.meanSelfCertainty)) |")
        print("| self-certainty, correct | \(f4(r.meanSelfCertaintyCorrect)) |")
        print("| self-certainty, incorrect | \(f4(r.meanSelfCertaintyIncorrect)) |")
        print("| P(correct more certain than incorrect) | \(f4(r.selfCertaintyAUC)) |")
        print("| Mann–Whitney effect size r | \(f4(r.selfCertaintyEffectR)) |")
        print("| mean length (tokens) | \(String(format: "%.1f", r.meanLength)) |")
        print("| truncated at max_new_tokens | \(String(format: "%.3f", r.truncatedFraction)) |")
        print("| tokens/s (this invocation) | \(String(format: "%.1f", r.tokensPerSecond)) |")
    }
}
