import Foundation
import Model
import SafeTensors
import Shared
import TestSupport
import Testing

@Suite struct CheckpointTests {
    /// Copies tiny-qwen2 into a temp dir with its tensors edited by `edit`.
    private func editedCheckpoint(_ edit: (inout [String: ([Int], [Float])]) -> Void) throws -> URL {
        let src = Fixtures.url("model/tiny-qwen2")
        let f = try SafeTensorsFile(contentsOf: src.appendingPathComponent("model.safetensors"))
        var t: [String: ([Int], [Float])] = [:]
        for n in f.tensorNames { t[n] = (f.shape(of: n)!, try f.floats(n)) }
        edit(&t)
        let dir = try Fixtures.temporaryDirectory("rlif-ckpt")
        try FileManager.default.copyItem(at: src.appendingPathComponent("config.json"), to: dir.appendingPathComponent("config.json"))
        var w = SafeTensorsWriter()
        for (n, (s, x)) in t { try w.add(name: n, shape: s, floats: x) }
        try w.write(to: dir.appendingPathComponent("model.safetensors"), metadata: ["format": "pt"])
        return dir
    }

    private func expectCheckpointError(_ tensor: String, _ contains: String, _ edit: (inout [String: ([Int], [Float])]) -> Void,
                                       sourceLocation: SourceLocation = #_sourceLocation) throws {
        let dir = try editedCheckpoint(edit)
        defer { try? FileManager.default.removeItem(at: dir) }
        do {
            _ = try Transformer.load(directory: dir)
            Issue.record("checkpoint accepted; expected error on \(tensor)", sourceLocation: sourceLocation)
        } catch let ModelError.checkpoint(file, t, detail) {
            #expect(t == tensor && detail.contains(contains) && file.hasPrefix(dir.path), "\(file) \(t): \(detail)",
                    sourceLocation: sourceLocation)
        }
    }

    @Test func strictVerification() throws {
        try expectCheckpointError("model.layers.1.mlp.up_proj.weight", "missing") { $0["model.layers.1.mlp.up_proj.weight"] = nil }
        try expectCheckpointError("model.layers.0.self_attn.q_proj.bias", "shape [31], expected [32]") {
            $0["model.layers.0.self_attn.q_proj.bias"] = ([31], [Float](repeating: 0, count: 31))
        }
        try expectCheckpointError("model.layers.2.input_layernorm.weight", "unexpected") {
            $0["model.layers.2.input_layernorm.weight"] = ([32], [Float](repeating: 1, count: 32))
        }
        try expectCheckpointError("lm_head.weight", "differs") {
            var e = $0["model.embed_tokens.weight"]!
            e.1[5] += 1
            $0["lm_head.weight"] = e
        }
        // Accepted: inv_freq buffers, and a tied lm_head equal to the embedding.
        let dir = try editedCheckpoint {
            $0["model.layers.0.self_attn.rotary_emb.inv_freq"] = ([4], [1, 0.1, 0.01, 0.001])
            $0["lm_head.weight"] = $0["model.embed_tokens.weight"]!
        }
        defer { try? FileManager.default.removeItem(at: dir) }
        let m = try Transformer.load(directory: dir)
        let ref = try Transformer.load(directory: Fixtures.url("model/tiny-qwen2"))
        #expect(Array(m.parameters.buffer) == Array(ref.parameters.buffer))
    }

    @Test(arguments: ["tiny-qwen2", "tiny-llama"])
    func saveReloadRoundTrip(_ name: String) throws {
        let model = try Transformer.load(directory: Fixtures.url("model/\(name)"))
        let keep = ProcessInfo.processInfo.environment["RLIF_KEEP_SAVED"]
        let dir = try keep.map { URL(fileURLWithPath: $0).appendingPathComponent(name) } ?? Fixtures.temporaryDirectory("rlif-save")
        defer { if keep == nil { try? FileManager.default.removeItem(at: dir) } }
        try model.save(to: dir)
        let back = try Transformer.load(directory: dir)
        #expect(back.config == model.config)
        #expect(Array(back.parameters.buffer) == Array(model.parameters.buffer))
        // The saved file holds exactly the HF tensor names (no lm_head when tied) with format=pt metadata.
        let f = try SafeTensorsFile(contentsOf: dir.appendingPathComponent("model.safetensors"))
        #expect(f.tensorNames == model.layout.names.sorted() && f.metadata["format"] == "pt")
        // BF16 save: every value rounds to nearest-even bfloat16.
        let bdir = dir.appendingPathComponent("bf16")
        try model.save(to: bdir, dtype: .bf16)
        let b = try Transformer.load(directory: bdir)
        #expect(b.config.dtype == "bfloat16")
        for e in model.layout.entries {
            let want = Array(model.parameter(e.name)!).map { BFloat16.toFloat(BFloat16.from($0)) }
            #expect(Array(b.parameter(e.name)!) == want, "\(e.name)")
        }
        // F16 save (`rlif sft --dtype f16`): every value rounds to the nearest half; the file says F16.
        let hdir = dir.appendingPathComponent("f16")
        try model.save(to: hdir, dtype: .f16)
        let h = try Transformer.load(directory: hdir)
        #expect(h.config.dtype == "float16")
        #expect(try SafeTensorsFile(contentsOf: hdir.appendingPathComponent("model.safetensors")).dtype(of: model.layout.names[0]) == .f16)
        for e in model.layout.entries {
            let want = Array(model.parameter(e.name)!).map { Float(Float16($0)) }
            #expect(Array(h.parameter(e.name)!) == want, "\(e.name)")
        }
    }
}
