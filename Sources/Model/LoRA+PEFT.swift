import Foundation
import Kernels
import SafeTensors

/// LoRA adapters as a PEFT directory: `adapter_config.json` + `adapter_model.safetensors` with PEFT's tensor
/// names (`base_model.model.model.layers.{i}.self_attn.q_proj.lora_A.weight`, …), what
/// `peft.PeftModel.from_pretrained(base, dir)` loads onto the base model in transformers.
extension LoRAAdapters {
    public static let configFileName = "adapter_config.json"
    public static let weightsFileName = "adapter_model.safetensors"

    /// The subset of PEFT's `LoraConfig` rlif writes and reads. Fields rlif does not implement are written with
    /// PEFT's defaults and refused on load when set to anything else.
    struct PEFTConfig: Codable {
        var peft_type = "LORA"
        var task_type = "CAUSAL_LM"
        var base_model_name_or_path: String? = nil
        var r: Int
        var lora_alpha: Float
        var lora_dropout: Float = 0
        var target_modules: [String]
        var bias = "none"
        var fan_in_fan_out = false
        var use_rslora = false
        var use_dora = false
        var inference_mode = true
        var init_lora_weights = true
        var modules_to_save: [String]? = nil
        var layers_to_transform: [Int]? = nil
    }

    /// Writes the adapters and their config into `directory` (created if needed; files replaced atomically).
    /// `dtype` is the stored precision (F32 for checkpoints, which resume bit-identically; BF16 to publish, half
    /// the bytes); `metadata` is added to the safetensors header next to PEFT's `format: pt`.
    public func savePEFT(to directory: URL, baseModel: String, dtype: SafeTensorsDType = .f32,
                         metadata: [String: String] = [:]) throws {
        try FileSystemError.makeDirectory(directory)
        let base = UnsafePointer(parameters.pointer)
        let sources = tensors.map {
            SafeTensorsWriter.Source(name: $0.name, shape: $0.shape,
                                     floats: UnsafeBufferPointer(start: base + $0.offset, count: $0.shape[0] * $0.shape[1]),
                                     dtype: dtype)
        }
        try withExtendedLifetime(parameters) {
            try SafeTensorsWriter.stream(sources, to: directory.appendingPathComponent(Self.weightsFileName),
                                         metadata: metadata.merging(["format": "pt"]) { _, pt in pt })
        }
        try Self.writeConfig(PEFTConfig(base_model_name_or_path: baseModel, r: rank, lora_alpha: config.alpha,
                                        lora_dropout: config.dropout, target_modules: targets.map(\.rawValue)),
                             to: directory)
    }

    static func writeConfig(_ cfg: PEFTConfig, to directory: URL) throws {
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys]
        try AtomicFile.write(enc.encode(cfg), to: directory.appendingPathComponent(Self.configFileName))
    }

    /// What `exportPEFT` wrote.
    public struct Export: Sendable, Equatable {
        public var tensors: Int
        public var parameters: Int
        public var bytes: Int
    }

    /// A PEFT directory (e.g. a LoRA run's checkpoint) re-written for publishing: the adapter tensors stored as
    /// `dtype` (BF16 halves a checkpoint's F32 adapters), `base_model_name_or_path` set to `baseModel` (a hub name
    /// such as `Qwen/Qwen2.5-Coder-0.5B-Instruct`, which a checkpoint does not know: it records the local path it
    /// trained from), and `metadata` (e.g. the base weights' SHA-256) in the safetensors header. Needs no model:
    /// the config is checked as `peftConfig` checks it and every tensor must be a 2-D `lora_A`/`lora_B` weight.
    /// `output` must not exist; it is written in a temporary sibling and renamed, so a failure leaves nothing.
    @discardableResult
    public static func exportPEFT(adapter: URL, output: URL, dtype: SafeTensorsDType, baseModel: String,
                                  metadata: [String: String] = [:]) throws -> Export {
        let fm = FileManager.default
        guard !fm.fileExists(atPath: output.path) else {
            throw ModelError.invalidInput("export-adapter: output \(output.path) already exists (give a new directory)")
        }
        let lc = try peftConfig(directory: adapter)
        let url = adapter.appendingPathComponent(weightsFileName)
        let file = try SafeTensorsFile(contentsOf: url)
        guard !file.tensorNames.isEmpty else {
            throw ModelError.checkpoint(file: url.path, tensor: "-", detail: "no tensors")
        }
        // Every tensor is read (widened to F32) once into its own buffer, which the writer narrows to `dtype`.
        var sources: [SafeTensorsWriter.Source] = []
        defer { sources.forEach { UnsafeMutablePointer(mutating: $0.floats.baseAddress!).deallocate() } }
        for name in file.tensorNames {
            let shape = file.shape(of: name) ?? []
            guard name.hasSuffix(".lora_A.weight") || name.hasSuffix(".lora_B.weight"), shape.count == 2 else {
                throw ModelError.checkpoint(file: url.path, tensor: name, detail: "not a LoRA weight (2-D `…lora_A.weight` / `…lora_B.weight`), shape \(shape)")
            }
            let rankAxis = name.hasSuffix(".lora_A.weight") ? 0 : 1   // A: (r, in), B: (out, r)
            guard shape[rankAxis] == lc.rank else {
                throw ModelError.checkpoint(file: url.path, tensor: name, detail: "shape \(shape), adapter_config.json says r = \(lc.rank)")
            }
            let count = shape[0] * shape[1]
            let b = UnsafeMutablePointer<Float>.allocate(capacity: max(count, 1))
            sources.append(SafeTensorsWriter.Source(name: name, shape: shape, floats: UnsafeBufferPointer(start: b, count: count),
                                                    dtype: dtype))
            try file.readFloats(name, into: b, count: count)
        }
        try AtomicDirectory.write(output) { tmp in
            try SafeTensorsWriter.stream(sources, to: tmp.appendingPathComponent(weightsFileName),
                                         metadata: metadata.merging(["format": "pt"]) { _, pt in pt })
            try writeConfig(PEFTConfig(base_model_name_or_path: baseModel, r: lc.rank, lora_alpha: lc.alpha,
                                       target_modules: lc.targetModules), to: tmp)
        }
        let attributes = try? fm.attributesOfItem(atPath: output.appendingPathComponent(weightsFileName).path)
        return Export(tensors: sources.count, parameters: sources.reduce(0) { $0 + $1.floats.count },
                      bytes: (attributes?[.size] as? Int) ?? 0)
    }

    /// The `LoRAConfig` of a PEFT directory's adapter_config.json; a setting rlif does not implement is an error
    /// naming the file and key.
    public static func peftConfig(directory: URL) throws -> LoRAConfig {
        let url = directory.appendingPathComponent(configFileName)
        func fail(_ key: String, _ why: String) -> ModelError { .config(file: url.path, key: key, detail: why) }
        let data: Data
        do { data = try Data(contentsOf: url) } catch {
            throw fail("-", "cannot read: \(error.localizedDescription)")
        }
        guard let raw = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw fail("-", "not a JSON object")
        }
        let c: PEFTConfig
        do { c = try JSONDecoder().decode(PEFTConfig.self, from: data) } catch let DecodingError.keyNotFound(k, _) {
            throw fail(k.stringValue, "missing")
        } catch let DecodingError.typeMismatch(_, ctx) {
            throw fail(ctx.codingPath.map(\.stringValue).joined(separator: "."), ctx.debugDescription)
        } catch {
            throw fail("-", "\(error)")
        }
        guard c.peft_type == "LORA" else { throw fail("peft_type", "'\(c.peft_type)', only LORA is supported") }
        guard c.bias == "none" else { throw fail("bias", "'\(c.bias)', only 'none' is supported") }
        guard !c.fan_in_fan_out else { throw fail("fan_in_fan_out", "true is not supported (Linear layers only)") }
        guard !c.use_rslora else { throw fail("use_rslora", "true is not supported (scale alpha/r only)") }
        guard !c.use_dora else { throw fail("use_dora", "true is not supported") }
        guard c.modules_to_save?.isEmpty ?? true else { throw fail("modules_to_save", "\(c.modules_to_save!) is not supported") }
        guard c.layers_to_transform == nil else { throw fail("layers_to_transform", "is not supported (every layer is adapted)") }
        for key in ["rank_pattern", "alpha_pattern"] {
            if let d = raw[key] as? [String: Any], !d.isEmpty { throw fail(key, "per-module ranks/alphas are not supported") }
        }
        let lc = LoRAConfig(rank: c.r, alpha: c.lora_alpha, targetModules: c.target_modules, dropout: 0)
        do { try lc.validate() } catch let e as LoRAConfigError {
            throw fail(e.key == "rank" ? "r" : e.key == "alpha" ? "lora_alpha" : e.key, e.message)
        }
        return lc
    }

    /// Loads a PEFT directory for `model` (shapes checked against its config; every expected tensor must be there
    /// and nothing else). `dropout` is taken as 0 (inference and rlif training do not use it).
    public static func loadPEFT(directory: URL, model cfg: ModelConfig) throws -> LoRAAdapters {
        let ad = try LoRAAdapters(config: peftConfig(directory: directory), model: cfg)
        try ad.readPEFTWeights(directory: directory)
        return ad
    }

    /// Reads adapter_model.safetensors into `parameters` (by name, shapes checked, F32/BF16/F16 widened).
    public func readPEFTWeights(directory: URL) throws {
        let url = directory.appendingPathComponent(Self.weightsFileName)
        let file = try SafeTensorsFile(contentsOf: url)
        var expected: Set<String> = []
        for t in tensors {
            expected.insert(t.name)
            guard let shape = file.shape(of: t.name) else {
                throw ModelError.checkpoint(file: url.path, tensor: t.name, detail: "missing (adapter_config.json targets \(targets.map(\.rawValue)) with r = \(rank))")
            }
            guard shape == t.shape else {
                throw ModelError.checkpoint(file: url.path, tensor: t.name, detail: "shape \(shape), the model needs \(t.shape)")
            }
            try file.readFloats(t.name, into: parameters.pointer + t.offset, count: t.shape[0] * t.shape[1])
        }
        if let extra = file.tensorNames.first(where: { !expected.contains($0) }) {
            throw ModelError.checkpoint(file: url.path, tensor: extra, detail: "not an adapter of this model (layers 0..<\(entries.map(\.layer).max().map { $0 + 1 } ?? 0), targets \(targets.map(\.rawValue)))")
        }
    }

    /// W ← W + s·B·A for every adapted weight of `model` (a merged checkpoint: the adapters' effect baked in).
    public func merge(into model: Transformer) {
        precondition(model.baseWeights == .f32, "merge(into:): the model's weights are BF16 (merge into an F32 copy)")
        merge(into: model.parameters.pointer, layout: model.layout)
    }

    /// The same on a flat parameter buffer in `layout` (e.g. a copy of the frozen base for the actors' weights).
    public func merge(into weights: UnsafeMutablePointer<Float>, layout: ParameterLayout) {
        merge(into: weights, layout: layout, adapters: parameters.pointer)
    }

    /// The same with adapter values other than this object's: `adapters` is a flat buffer in this layout
    /// (`parameters.count` floats, e.g. a copy taken when a weight version was published).
    public func merge(into weights: UnsafeMutablePointer<Float>, layout: ParameterLayout, adapters p: UnsafePointer<Float>) {
        for e in entries {
            let lo = layout.layers[e.layer]
            let w: Int
            switch e.target {
            case .q: w = lo.wq
            case .k: w = lo.wk
            case .v: w = lo.wv
            case .o: w = lo.wo
            case .gate: w = lo.wGate
            case .up: w = lo.wUp
            case .down: w = lo.wDown
            }
            // (OC, C) += s · (OC, r) · (r, C)
            Gemm.sgemm(weights + w, p + e.b, p + e.a, m: e.outFeatures, n: e.inFeatures, k: rank,
                       alpha: scale, beta: 1)
        }
    }
}

/// `rlif merge`: a base model directory + a PEFT adapter directory → a merged Hugging Face model directory
/// (W + s·B·A in every adapted weight), loadable anywhere without PEFT.
public enum LoRAMerge {
    /// Files of the base directory copied next to the merged weights when present (tokenizer, generation settings).
    public static let carriedFiles = ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                                      "generation_config.json", "vocab.json", "merges.txt", "chat_template.jinja"]

    /// Writes the merged model into `output` (which must not exist yet) and returns it.
    @discardableResult
    public static func merge(base: URL, adapter: URL, output: URL, dtype: SafeTensorsDType = .f32) throws -> Transformer {
        let fm = FileManager.default
        guard !fm.fileExists(atPath: output.path) else {
            throw ModelError.invalidInput("merge: output \(output.path) already exists (give a new directory)")
        }
        let model = try Transformer.load(directory: base)
        let ad = try LoRAAdapters.loadPEFT(directory: adapter, model: model.config)
        ad.merge(into: model)
        try model.save(to: output, dtype: dtype)
        for name in carriedFiles where fm.fileExists(atPath: base.appendingPathComponent(name).path) {
            do { try fm.copyItem(at: base.appendingPathComponent(name), to: output.appendingPathComponent(name)) } catch {
                throw FileSystemError(error, operation: "copy", path: output.appendingPathComponent(name).path)
            }
        }
        return model
    }
}
