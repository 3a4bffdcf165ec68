import ArgumentParser
import Foundation
import GGUF
import Model
import SafeTensors
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

/// `--dtype` of the commands that write a model (sft, convert, merge): how model.safetensors stores the weights.
/// Anything else (`fp16`, `float32`) is refused by the parser, listing these.
enum WeightFileDType: String, ExpressibleByArgument, CaseIterable {
    case f32, bf16, f16

    var safeTensors: SafeTensorsDType {
        switch self {
        case .f32: .f32
        case .bf16: .bf16
        case .f16: .f16
        }
    }
}
