import ArgumentParser
import Foundation
import GGUF
import Model
import SafeTensors
import Tokenizer

/// `rlif convert`: a GGUF model file → a Hugging Face directory that transformers and rlif load.
struct Convert: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Convert a GGUF model to a Hugging Face directory (config.json, model.safetensors, generation_config.json, tokenizer.json, tokenizer_config.json with the chat template).",
        discussion: """
            Dequantizes every tensor to Float (llama q/k rows un-permuted) and writes it as F32, BF16 or F16.
            Example: rlif convert --gguf qwen2.5-coder-0.5b-instruct.gguf --out qwen2.5-coder-0.5b-instruct
            """)

    @Option(help: "The .gguf file.") var gguf: String
    @Option(help: "Output directory (created; existing model files in it are replaced).") var out: String
    @Option(help: "Weight dtype: f32, bf16 or f16.") var dtype: WeightFileDType = .f32

    func run() throws {
        let t0 = Date()
        // The tokenizer first: an unsupported one fails before the weights are converted.
        let tokenizerFiles = try GGUFTokenizerFiles(try GGUFFile(contentsOf: URL(fileURLWithPath: gguf)))
        var written = try GGUFCheckpoint.convert(gguf: URL(fileURLWithPath: gguf), to: URL(fileURLWithPath: out), dtype: dtype.safeTensors)
        try tokenizerFiles.write(to: URL(fileURLWithPath: out))
        written += ["tokenizer.json", "tokenizer_config.json"].map { URL(fileURLWithPath: out).appendingPathComponent($0) }
        Terminal.line("wrote \(written.map(\.lastPathComponent).joined(separator: ", ")) to \(out) in \(String(format: "%.1f", Date().timeIntervalSince(t0))) s")
    }
}
