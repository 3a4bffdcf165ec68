import ArgumentParser
import Foundation
import GGUF
import Logging
import Model
import Sampling
import Tokenizer
import Training

/// `rlif sft`: supervised fine-tuning (next-token cross-entropy) — to make or warm up a base model.
struct SFT: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sft",
        abstract: "Supervised fine-tuning on JSONL (`text`, or `prompt`/`response` with the loss on the response).",
        discussion: "Start from --model DIR, or from a random init of --init-config config.json (with --tokenizer). Writes an HF directory.")

    @Option(help: "HF model directory or .gguf file to start from.") var model: String?
    @Option(help: "HF config.json for a fresh, randomly initialised model (instead of --model).") var initConfig: String?
    @Option(help: "tokenizer.json (default: <model>/tokenizer.json, or a .gguf model's own).") var tokenizer: String?
    @Option(help: "Training JSONL.") var data: String
    @Option(help: "Held-out JSONL for the loss after each epoch (optional).") var evalData: String?
    @Option(help: "Output HF directory (config.json, model.safetensors, tokenizer.json).") var output: String
    @Option(help: "Prompt template for prompt/response data: plain, chatml, raw or auto (the model's own).") var template: TemplateChoice = .plain
    @Option(help: "System prompt name or text (none = no system prompt).") var systemPrompt: String = "none"
    @Option var epochs: Double = 1
    @Option(help: "Sequences per optimizer step.") var batchSequences: Int = 32
    @Option var microBatchTokens: Int = 4096
    @Flag(help: "Recompute each layer inside the backward instead of keeping its activations (less memory, ~1/3 more layer compute).")
    var activationCheckpointing = false
    @Option var learningRate: Float = 1e-3
    @Option var warmupRatio: Float = 0.05
    @Option var weightDecay: Float = 0.01
    @Option var seed: UInt64 = 0
    @Option(help: "Save the weights as f32, bf16 or f16.") var dtype: WeightFileDType = .f32
    @Option(help: "Log level.") var logLevel: String?

    func run() throws {
        LogSetup.bootstrap(level: logLevel)
        let log = Logger(label: "rlif.sft")
        let m: Transformer
        if let dir = model {
            m = try ModelFiles.loadModel(dir)
        } else if let cfg = initConfig {
            m = try Transformer(config: ModelConfig.load(from: URL(fileURLWithPath: cfg)))
            m.initializeRandom(seed: seed)
        } else {
            throw ValidationError("give --model DIR or --init-config config.json")
        }
        guard tokenizer != nil || model != nil else { throw ValidationError("--tokenizer is required with --init-config") }
        guard let tok = try ModelFiles.loadTokenizer(model: model ?? "", override: tokenizer) else {
            throw ValidationError("\(model ?? ""): no tokenizer.json (give --tokenizer FILE)")
        }
        let formatter = try PromptFormatter(tokenizer: tok, template: template, systemPrompt: systemPrompt)
        let eos = m.config.eosTokenIds.first.map(Int32.init) ?? tok.eosTokenId
        func load(_ path: String) throws -> [SFTExample] {
            try SFTData.read(URL(fileURLWithPath: path), formatter: formatter, eos: eos, maxLength: m.config.maxPositionEmbeddings)
        }
        let train = try load(data)
        let held = try evalData.map(load) ?? []
        var cfg = SFTConfig()
        cfg.epochs = epochs; cfg.batchSequences = batchSequences; cfg.microBatchTokens = microBatchTokens
        cfg.activationCheckpointing = activationCheckpointing
        cfg.learningRate = learningRate; cfg.warmupRatio = warmupRatio; cfg.weightDecay = weightDecay; cfg.seed = seed
        let trainer = try SFTTrainer(model: m, config: cfg, exampleCount: train.count)
        log.info("SFT: \(m.parameterCount) parameters, \(train.count) examples, \(trainer.totalSteps) steps")
        if !held.isEmpty {
            let l = try trainer.evaluate(held)
            log.info("held-out loss before: \(String(format: "%.4f", l))")
        }
        let t0 = Date()
        try trainer.run(train) { p in
            if p.step % 20 == 1 || p.step == p.totalSteps {
                let tps = Double(p.tokens) / Date().timeIntervalSince(t0)
                Terminal.line(String(format: "sft step %d/%d  loss %.4f  |g| %.3f%@  %.0f tok/s", p.step, p.totalSteps,
                                     p.loss, p.gradNorm, p.refused ? "  (refused)" : "", tps))
            }
        }
        if !held.isEmpty {
            let l = try trainer.evaluate(held)
            log.info("held-out loss after: \(String(format: "%.4f", l))")
        }
        let out = URL(fileURLWithPath: output)
        try m.save(to: out, dtype: dtype.safeTensors)
        let tokOut = out.appendingPathComponent("tokenizer.json")
        if tokenizer == nil, let g = model, ModelFiles.isGGUF(g) {
            try GGUFTokenizerFiles(try GGUFFile(contentsOf: URL(fileURLWithPath: g))).write(to: out)
        } else if let tokPath = tokenizer ?? model.map({ "\($0)/tokenizer.json" }),
                  URL(fileURLWithPath: tokPath).standardizedFileURL != tokOut.standardizedFileURL {
            // tokenizer.json plus what sits beside it (BOS/EOS, the chat template `template: auto` renders).
            let src = URL(fileURLWithPath: tokPath)
            let fm = FileManager.default
            for (from, to) in [(src, tokOut)] + ["tokenizer_config.json", "chat_template.jinja"].map({
                (src.deletingLastPathComponent().appendingPathComponent($0), out.appendingPathComponent($0)) })
            where fm.fileExists(atPath: from.path) {
                try? fm.removeItem(at: to)
                try fm.copyItem(at: from, to: to)
            }
        }
        log.info("saved \(out.path)")
    }
}
