import Foundation
import Model
import Tokenizer

/// What `--model` / `model:` may name: a Hugging Face directory (config.json, model.safetensors, tokenizer.json)
/// or a `.gguf` file. Every command loads its model and tokenizer through here.
enum ModelFiles {
    static func isGGUF(_ path: String) -> Bool { URL(fileURLWithPath: path).pathExtension.lowercased() == "gguf" }

    /// The model's weights and config (`Transformer.load(model:)`: HF directory or GGUF).
    static func loadModel(_ path: String) throws -> Transformer {
        try Transformer.load(model: URL(fileURLWithPath: path))
    }

    /// The tokenizer for `model`: `override` (a tokenizer.json) when given, else the directory's tokenizer.json
    /// (nil when the directory has none). For a `.gguf` without `override` this is an error until the tokenizer
    /// can be built from the GGUF metadata.
    static func loadTokenizer(model: String, override: String?) throws -> Tokenizer? {
        if let o = override { return try Tokenizer(contentsOf: URL(fileURLWithPath: o)) }
        if isGGUF(model) {
            // TOKENIZER-FROM-GGUF: build the tokenizer from the file's tokenizer.ggml.* metadata here.
            throw SetupError(description: "\(model): tokenizer from GGUF not yet available: pass --tokenizer FILE (a tokenizer.json), or convert the model (rlif convert) and put its tokenizer.json in that directory")
        }
        let f = URL(fileURLWithPath: model).appendingPathComponent("tokenizer.json")
        guard FileManager.default.fileExists(atPath: f.path) else { return nil }
        return try Tokenizer(contentsOf: f)
    }
}
