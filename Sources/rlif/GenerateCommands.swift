import Answers
import ArgumentParser
import Foundation
import Kernels
import Logging
import Model
import Sampling
import Tokenizer
import Training

/// Options shared by the commands that load a model and format prompts.
struct ModelOptions: ParsableArguments {
    @Option(help: "Hugging Face model directory (config.json, model.safetensors, tokenizer.json).") var model: String
    @Option(help: "Prompt template: plain or chatml.") var template: String = "plain"
    @Option(help: "System prompt: a name (math, none, ...) or literal text.") var systemPrompt: String = "none"
    @Option(help: "OpenBLAS threads (default: all cores).") var threads: Int?
    @Option(help: "LoRA adapters applied on top of --model: a PEFT directory (adapter_config.json + adapter_model.safetensors), e.g. a LoRA run's checkpoint.")
    var adapter: String?

    func load() throws -> (Transformer, PromptFormatter?) {
        if let t = threads { Gemm.threads = t }
        let dir = URL(fileURLWithPath: model)
        let m = try Transformer.load(directory: dir)
        if let a = adapter { m.lora = try LoRAAdapters.loadPEFT(directory: URL(fileURLWithPath: a), model: m.config) }
        let tokFile = dir.appendingPathComponent("tokenizer.json")
        guard FileManager.default.fileExists(atPath: tokFile.path) else { return (m, nil) }
        let tok = try Tokenizer(contentsOf: tokFile)
        return (m, try PromptFormatter(tokenizer: tok, template: template, systemPrompt: systemPrompt))
    }
}

/// A progress bar on stderr when it is a terminal.
struct ProgressBar {
    let total: Int
    let label: String
    let enabled = isatty(2) != 0
    func update(_ done: Int) {
        guard enabled, total > 0 else { return }
        let w = 30, k = done * w / total
        FileHandle.standardError.write(Data("\r\(label) [\(String(repeating: "#", count: k))\(String(repeating: " ", count: w - k))] \(done)/\(total)".utf8))
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
        let reqs = records.enumerated().map { k, r in
            GroupRequest(promptTokens: f.encode(r.text), groupSize: group, parameters: params, seed: seed &+ UInt64(k))
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

    func parseIds(_ s: String, _ name: String) throws -> [Int32] {
        try s.split(separator: ",").map {
            guard let v = Int32($0.trimmingCharacters(in: .whitespaces)) else { throw ValidationError("--\(name): '\($0)' is not a token id") }
            return v
        }
    }

    func run() throws {
        LogSetup.bootstrap(level: nil)
        let (m, f) = try modelOptions.load()
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
    @Flag(help: "JSON report (with every item) on stdout.") var json = false

    func run() throws {
        LogSetup.bootstrap(level: nil)
        guard let fmt = AnswerFormat(rawValue: format) else { throw ValidationError("--format must be gsm8k or math") }
        let (m, f) = try modelOptions.load()
        guard let f else { throw ValidationError("\(modelOptions.model) has no tokenizer.json") }
        var records = try PromptDataset(contentsOf: URL(fileURLWithPath: data), seed: 0).records
        if let l = limit { records = Array(records.prefix(l)) }
        let bar = ProgressBar(total: records.count, label: "eval")
        let r = try Evaluator.run(model: m, formatter: f, records: records, format: fmt, maxNewTokens: maxNewTokens,
                                  batchSequences: batchSequences, progress: bar.update)
        if json {
            let enc = JSONEncoder()
            enc.outputFormatting = [.prettyPrinted, .sortedKeys]
            print(String(decoding: try enc.encode(r), as: UTF8.self))
            return
        }
        func f4(_ x: Double?) -> String { x.map { String(format: "%.4f", $0) } ?? "-" }
        print("| metric | value |\n|---|---|")
        print("| examples | \(r.count) |")
        print("| accuracy | \(String(format: "%.3f", r.accuracy)) (\(r.correct)/\(r.count)) |")
        print("| mean self-certainty | \(f4(r.meanSelfCertainty)) |")
        print("| self-certainty, correct | \(f4(r.meanSelfCertaintyCorrect)) |")
        print("| self-certainty, incorrect | \(f4(r.meanSelfCertaintyIncorrect)) |")
        print("| mean length (tokens) | \(String(format: "%.1f", r.meanLength)) |")
    }
}
