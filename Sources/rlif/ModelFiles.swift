import Foundation
import GGUF
import Model
import Tokenizer

/// What `--model` / `model:` may name: a Hugging Face directory (config.json, model.safetensors, tokenizer.json)
/// or a `.gguf` file. Every command loads its model and tokenizer through here.
enum ModelFiles {
    static func isGGUF(_ path: String) -> Bool { URL(fileURLWithPath: path).pathExtension.lowercased() == "gguf" }

    /// The model's config alone (config.json, or a GGUF's metadata), for plans made before the weights load.
    static func loadConfig(_ path: String) throws -> ModelConfig {
        if isGGUF(path) { return try ModelConfig(gguf: GGUFFile(contentsOf: URL(fileURLWithPath: path))) }
        return try ModelConfig.load(from: URL(fileURLWithPath: path).appendingPathComponent("config.json"))
    }

    /// The model's weights and config (`Transformer.load(model:)`: HF directory or GGUF), the matrices held as
    /// `baseWeights`.
    static func loadModel(_ path: String, baseWeights: BaseWeights = .f32) throws -> Transformer {
        try Transformer.load(model: URL(fileURLWithPath: path), baseWeights: baseWeights)
    }

    /// The tokenizer for `model`: `override` (a tokenizer.json) when given, else a `.gguf` file's own (built from its
    /// metadata, `GGUFTokenizerFiles`) or the directory's tokenizer.json (nil when the directory has none).
    static func loadTokenizer(model: String, override: String?) throws -> Tokenizer? {
        try Tokenizer.forModel(model, tokenizerFile: override)
    }
}
