import Foundation
import SafeTensors

/// Loading and saving Hugging Face checkpoint directories (`config.json` + `model.safetensors` or a sharded
/// `model.safetensors.index.json`).
///
/// Loading is strict: every tensor the layout expects must be present with exactly the expected shape, and any
/// other tensor is an error — except buffers named `*.rotary_emb.inv_freq` (recomputed here, ignored) and, with
/// tied embeddings, an `lm_head.weight` that is bit-for-bit equal to `model.embed_tokens.weight` (some
/// exporters write both; a different one is an error since it would silently be dropped). F32, BF16 and F16
/// tensors are accepted (converted to Float).
extension Transformer {
    public static func load(directory: URL, baseWeights: BaseWeights = .f32) throws -> Transformer {
        let config = try ModelConfig.load(from: directory.appendingPathComponent("config.json"))
        let model = try Transformer(config: config, baseWeights: baseWeights)
        try model.loadWeights(directory: directory)
        return model
    }

    /// Reads the weights of an HF directory into `parameters` (config must match this model's).
    public func loadWeights(directory: URL) throws {
        let ckpt = try SafeTensorsCheckpoint(directory: directory)
        func fileName(_ t: String) -> String {
            directory.appendingPathComponent(ckpt.weightMap[t] ?? SafeTensorsCheckpoint.singleFileName).path
        }
        let expected = Set(layout.names)
        for t in ckpt.tensorNames where !expected.contains(t) {
            if t.hasSuffix("rotary_emb.inv_freq") { continue }
            if t == "lm_head.weight" && layout.tied {
                let e = layout.entry("model.embed_tokens.weight")!
                guard let s = ckpt.shape(of: t), s == e.shape,
                      try ckpt.floats(t) == ckpt.floats("model.embed_tokens.weight") else {
                    throw ModelError.checkpoint(file: fileName(t), tensor: t,
                                                detail: "present but tie_word_embeddings is true and it differs from model.embed_tokens.weight")
                }
                continue
            }
            throw ModelError.checkpoint(file: fileName(t), tensor: t,
                                        detail: "unexpected tensor (shape \(ckpt.shape(of: t) ?? [])) for a \(config.architecture.hfClassName) with this config")
        }
        for e in layout.entries {
            guard let s = ckpt.shape(of: e.name) else {
                throw ModelError.checkpoint(file: directory.path, tensor: e.name, detail: "missing (expected shape \(e.shape))")
            }
            guard s == e.shape else {
                throw ModelError.checkpoint(file: fileName(e.name), tensor: e.name, detail: "shape \(s), expected \(e.shape)")
            }
            guard let dt = ckpt.dtype(of: e.name), [.f32, .bf16, .f16].contains(dt) else {
                throw ModelError.checkpoint(file: fileName(e.name), tensor: e.name,
                                            detail: "dtype \(ckpt.dtype(of: e.name)?.rawValue ?? "?") not supported (F32, BF16, F16)")
            }
            try loadTensor(e) { try ckpt.readFloats(e.name, into: $0, count: e.count) }
        }
    }

    /// Writes `config.json` and `model.safetensors` (F32, BF16 or F16) into `directory` (created if needed), each
    /// atomically (temp file, fsync, rename); a stale `model.safetensors.index.json` there is removed so loaders
    /// see the new file. With tied embeddings `lm_head.weight` is omitted, as transformers does.
    ///
    /// Streamed tensor by tensor from `parameters` (`SafeTensorsWriter.stream`): F32 goes to the file as it is,
    /// BF16 and F16 are converted one chunk at a time, so saving costs no copy of the model in memory.
    /// `afterChunk` (tests) may throw to fail the save midway; `directory` then keeps its previous files.
    public func save(to directory: URL, dtype: SafeTensorsDType = .f32, afterChunk: ((Int) throws -> Void)? = nil) throws {
        guard dtype == .f32 || dtype == .bf16 || dtype == .f16 else {
            throw ModelError.invalidInput("save: dtype \(dtype.rawValue) not supported (F32, BF16, F16)")
        }
        guard baseWeights == .f32 else {
            throw ModelError.invalidInput("save: this model holds BF16 base weights (frozen, for LoRA or inference); save the adapters, or load the model with F32 weights to save it")
        }
        try FileSystemError.makeDirectory(directory)
        let base = UnsafePointer(parameters.pointer)
        let sources = layout.entries.map {
            SafeTensorsWriter.Source(name: $0.name, shape: $0.shape,
                                     floats: UnsafeBufferPointer(start: base + $0.offset, count: $0.count), dtype: dtype)
        }
        try withExtendedLifetime(parameters) {
            try SafeTensorsWriter.stream(sources, to: directory.appendingPathComponent(SafeTensorsCheckpoint.singleFileName),
                                         metadata: ["format": "pt"], afterChunk: afterChunk)
        }
        var cfg = config
        cfg.dtype = switch dtype { case .bf16: "bfloat16"; case .f16: "float16"; default: "float32" }
        try SafeTensorsWriter.atomicWrite(cfg.jsonData(), to: directory.appendingPathComponent("config.json"))
        let index = directory.appendingPathComponent(SafeTensorsCheckpoint.indexFileName)
        if FileManager.default.fileExists(atPath: index.path) {
            guard unlink(index.path) == 0 else { throw FileSystemError(operation: "remove", path: index.path, errno: errno) }
        }
    }
}
