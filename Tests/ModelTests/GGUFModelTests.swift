import Foundation
import GGUF
import Model
import Testing
import TestSupport

/// A fixture of `scripts/ref/gguf_model_ref.py`: token sequences and transformers' per-token log-probs
/// (log p(t_i | t_<i), i ≥ 1) for a GGUF loaded with `from_pretrained(dir, gguf_file=..., torch_dtype=float64)`.
struct GGUFLogProbFixture: Decodable {
    var model: String
    var sequences: [[Int32]]
    var logprobs: [[Double]]

    static func load(_ name: String) throws -> GGUFLogProbFixture {
        try JSONDecoder().decode(GGUFLogProbFixture.self, from: Data(contentsOf: Fixtures.url("gguf/\(name)")))
    }
}

/// Per-token log-probs of `seqs` under `model` (one forward over the packed batch, log-softmax in Double).
func perTokenLogProbs(_ model: Transformer, _ seqs: [[Int32]]) throws -> [[Double]] {
    let batch = PackedBatch(sequences: seqs)
    let logits = try model.forward(batch, forBackward: false)
    let v = model.config.vocabSize
    return (0..<seqs.count).map { b in
        let s = batch.seqStarts[b]
        return (0..<(seqs[b].count - 1)).map { i in
            let row = logits.baseAddress! + (s + i) * v
            var m = -Double.infinity
            for j in 0..<v { m = max(m, Double(row[j])) }
            var z = 0.0
            for j in 0..<v { z += Foundation.exp(Double(row[j]) - m) }
            return Double(row[Int(seqs[b][i + 1])]) - m - Foundation.log(z)
        }
    }
}

func maxAbsDiff(_ a: [[Double]], _ b: [[Double]]) -> Double {
    precondition(a.count == b.count && zip(a, b).allSatisfy { $0.count == $1.count })
    return zip(a.joined(), b.joined()).map { abs($0 - $1) }.max() ?? 0
}

@Suite struct GGUFModelTests {
    @Test(arguments: ["tiny-llama", "tiny-qwen2"])
    func tinyGGUFMatchesTransformers(_ name: String) throws {
        let fx = try GGUFLogProbFixture.load("\(name).json")
        let model = try Transformer.load(gguf: Fixtures.url("gguf/\(fx.model)"))
        let got = try perTokenLogProbs(model, fx.sequences)
        let d = maxAbsDiff(got, fx.logprobs)
        #expect(d < 1e-3, "\(name): max |Δ log p| = \(d)")
    }

    @Test func tinyConfigsFromMetadata() throws {
        let l = try GGUFCheckpoint(contentsOf: Fixtures.url("gguf/tiny-llama.gguf")).config
        #expect(l.architecture == .llama && l.tieWordEmbeddings && !l.attentionBias)
        #expect(l.hiddenSize == 64 && l.intermediateSize == 128 && l.numHiddenLayers == 2)
        #expect(l.numAttentionHeads == 4 && l.numKeyValueHeads == 2 && l.headDim == 16)
        #expect(l.vocabSize == 96 && l.maxPositionEmbeddings == 64 && l.ropeTheta == 10000)
        #expect(l.rmsNormEps == Double(Float(1e-5)) && l.bosTokenId == 1 && l.eosTokenIds == [2])
        let q = try GGUFCheckpoint(contentsOf: Fixtures.url("gguf/tiny-qwen2.gguf"))
        #expect(q.config.architecture == .qwen2 && !q.config.tieWordEmbeddings && q.config.ropeTheta == 1e6)
        #expect(q.config.vocabSize == 96 && q.padTokenId == 0)
    }

    /// Without the un-permutation the llama fixture is far off: the check above can fail.
    @Test func llamaQKUnpermutationMatters() throws {
        let fx = try GGUFLogProbFixture.load("tiny-llama.json")
        let model = try Transformer.load(gguf: Fixtures.url("gguf/tiny-llama.gguf"))
        let c = model.config
        for i in 0..<c.numHiddenLayers {
            // Re-apply llama.cpp's permutation (the inverse of unpermuteRows) to q and k.
            for (t, heads) in [("q_proj", c.numAttentionHeads), ("k_proj", c.numKeyValueHeads)] {
                let p = model.parameter("model.layers.\(i).self_attn.\(t).weight")!
                let rows = p.count / c.hiddenSize, d = rows / heads
                let src = Array(p)
                for h in 0..<heads { for part in 0..<2 { for j in 0..<(d / 2) {
                    let hf = h * d + part * d / 2 + j, gg = h * d + 2 * j + part
                    for k in 0..<c.hiddenSize { p[gg * c.hiddenSize + k] = src[hf * c.hiddenSize + k] }
                } } }
            }
        }
        let d = maxAbsDiff(try perTokenLogProbs(model, fx.sequences), fx.logprobs)
        #expect(d > 0.05, "left permuted, max |Δ log p| = \(d)")
    }

    @Test func unpermuteRowsInvertsLlamaCppPermute() {
        // 2 heads of 4 rows, 1 column: GGUF rows per head [a0 b0 a1 b1] (interleaved) → HF [a0 a1 b0 b1].
        var x: [Float] = [0, 2, 1, 3, 4, 6, 5, 7]
        x.withUnsafeMutableBufferPointer { GGUFCheckpoint.unpermuteRows($0.baseAddress!, heads: 2, rows: 8, cols: 1) }
        #expect(x == [0, 1, 2, 3, 4, 5, 6, 7])
    }

    @Test func tensorNames() {
        #expect(GGUFCheckpoint.hfName(forGGUF: "blk.12.attn_q.bias") == "model.layers.12.self_attn.q_proj.bias")
        #expect(GGUFCheckpoint.hfName(forGGUF: "blk.0.ffn_norm.weight") == "model.layers.0.post_attention_layernorm.weight")
        #expect(GGUFCheckpoint.hfName(forGGUF: "output.weight") == "lm_head.weight")
        #expect(GGUFCheckpoint.hfName(forGGUF: "token_embd.weight") == "model.embed_tokens.weight")
        #expect(GGUFCheckpoint.hfName(forGGUF: "rope_freqs.weight") == nil)
        #expect(GGUFCheckpoint.hfName(forGGUF: "blk.01.attn_q.weight") == nil)
        #expect(GGUFCheckpoint.hfName(forGGUF: "blk.x.attn_q.weight") == nil)
    }

    /// The tiny llama's bytes with the value of metadata `key` (a string or uint32) passed through `patch`.
    static func patchedTinyLlama(_ key: String, _ patch: (inout [UInt8], Int) -> Void) throws -> GGUFFile {
        var bytes = [UInt8](try Data(contentsOf: Fixtures.url("gguf/tiny-llama.gguf")))
        let k = Array(key.utf8)
        let at = try #require((0..<(bytes.count - k.count)).first { Array(bytes[$0..<($0 + k.count)]) == k })
        patch(&bytes, at + k.count)  // the index of the value's u32 type id
        return try GGUFFile(bytes: bytes, url: URL(fileURLWithPath: "/virtual/patched.gguf"))
    }

    @Test func missingRequiredKeyIsAnErrorNamingIt() throws {
        // Rename "llama.block_count" to "llama.block_counX": the key is absent.
        let f = try Self.patchedTinyLlama("llama.block_count") { b, i in b[i - 1] = UInt8(ascii: "X") }
        do {
            _ = try GGUFCheckpoint(file: f)
            Issue.record("missing block_count accepted")
        } catch let e as ModelError {
            #expect("\(e)".contains("llama.block_count") && "\(e)".contains("missing"), "\(e)")
        }
    }

    @Test func metadataThatDisagreesWithTheTensorsIsAnErrorNamingTheTensor() throws {
        // feed_forward_length 128 → 64: the ffn tensors no longer have the config's shape.
        let f = try Self.patchedTinyLlama("llama.feed_forward_length") { b, i in b[i + 4] = 64 }
        let ckpt = try GGUFCheckpoint(file: f)
        #expect(ckpt.config.intermediateSize == 64)
        let m = try Transformer(config: ckpt.config)
        do {
            try m.loadWeights(gguf: ckpt)
            Issue.record("mismatched shapes accepted")
        } catch let e as ModelError {
            #expect("\(e)".contains("blk.0.ffn_gate.weight") && "\(e)".contains("[64, 64]"), "\(e)")
        }
    }

    @Test func unknownArchitectureIsAnErrorNamingIt() throws {
        // The tiny llama's bytes with general.architecture "llama" renamed "lla2a" (same length).
        var bytes = [UInt8](try Data(contentsOf: Fixtures.url("gguf/tiny-llama.gguf")))
        let key = Array("general.architecture".utf8)
        let at = (0..<(bytes.count - key.count)).first { Array(bytes[$0..<($0 + key.count)]) == key }!
        let valueAt = at + key.count + 4 + 8  // type u32, length u64
        #expect(Array(bytes[valueAt..<(valueAt + 5)]) == Array("llama".utf8))
        bytes[valueAt + 3] = UInt8(ascii: "2")
        let f = try GGUFFile(bytes: bytes, url: URL(fileURLWithPath: "/virtual/arch.gguf"))
        do {
            _ = try GGUFCheckpoint(file: f)
            Issue.record("unknown architecture accepted")
        } catch let e as ModelError {
            #expect("\(e)".contains("'lla2a'") && "\(e)".contains("general.architecture") && "\(e)".contains("/virtual/arch.gguf"), "\(e)")
        }
    }

    @Test(arguments: ["tiny-llama", "tiny-qwen2"])
    func convertWritesAnHFDirectoryWithTheSameLogProbs(_ name: String) throws {
        let fx = try GGUFLogProbFixture.load("\(name).json")
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let files = try GGUFCheckpoint.convert(gguf: Fixtures.url("gguf/\(fx.model)"), to: dir)
        #expect(files.map(\.lastPathComponent) == ["config.json", "model.safetensors", "generation_config.json"])
        let m = try Transformer.load(directory: dir)
        let d = maxAbsDiff(try perTokenLogProbs(m, fx.sequences), fx.logprobs)
        #expect(d < 1e-3, "\(name) converted: max |Δ log p| = \(d)")
        let gen = try JSONSerialization.jsonObject(with: Data(contentsOf: dir.appendingPathComponent("generation_config.json"))) as? [String: Any]
        #expect(gen?["bos_token_id"] as? Int == 1 && gen?["eos_token_id"] as? Int == 2 && gen?["pad_token_id"] as? Int == 0)
        // bf16: the same model within bf16 rounding.
        let dir16 = dir.appendingPathComponent("bf16")
        try GGUFCheckpoint.convert(gguf: Fixtures.url("gguf/\(fx.model)"), to: dir16, dtype: .bf16)
        let cfg = try ModelConfig.load(from: dir16.appendingPathComponent("config.json"))
        #expect(cfg.dtype == "bfloat16" && cfg == { var c = m.config; c.dtype = "bfloat16"; return c }())
    }

    @Test func loadModelDispatchesOnGGUFExtension() throws {
        let m = try Transformer.load(model: Fixtures.url("gguf/tiny-qwen2.gguf"))
        #expect(m.config.architecture == .qwen2)
        let d = try Transformer.load(model: Fixtures.url("model/tiny-qwen2"))
        #expect(d.config.architecture == .qwen2)
        #expect(throws: (any Error).self) { _ = try Transformer.load(model: Fixtures.url("gguf/tiny-qwen2.json")) }
    }
}

/// The three real models (RLIF_REAL_MODELS=1, GGUFs in $RLIF_MODELS): per-token log-probs within 1e-3 of
/// transformers loading the same GGUF in float64 (fixtures `real-<name>.json` from gguf_model_ref.py --real).
@Suite(.enabled(if: RealModels.enabled, "set RLIF_REAL_MODELS=1 (and RLIF_MODELS) to check the real GGUF models"),
       .serialized)
struct GGUFRealModelLogProbTests {
    @Test(arguments: RealModels.names)
    func realGGUFMatchesTransformers(_ name: String) throws {
        guard let url = RealModels.gguf(name) else { return }
        let fx = try GGUFLogProbFixture.load("real-\(name).json")
        let t0 = Date()
        let model = try Transformer.load(gguf: url)
        let loadSeconds = Date().timeIntervalSince(t0)
        let d = maxAbsDiff(try perTokenLogProbs(model, fx.sequences), fx.logprobs)
        print("\(name): load \(String(format: "%.2f", loadSeconds)) s, max |Δ log p| vs transformers = \(d)")
        #expect(d < 1e-3, "\(name): max |Δ log p| = \(d)")
    }
}
