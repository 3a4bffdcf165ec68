import Foundation
import Model
import Testing
import TestSupport

@Suite struct ModelConfigTests {
    private func decode(_ json: String) throws -> ModelConfig {
        try JSONDecoder().decode(ModelConfig.self, from: Data(json.utf8))
    }

    private func expectConfigError(_ json: String, key: String, sourceLocation: SourceLocation = #_sourceLocation) {
        do {
            _ = try decode(json)
            Issue.record("accepted config, expected error on '\(key)'", sourceLocation: sourceLocation)
        } catch let ModelError.config(_, k, detail) {
            #expect(k == key, "\(detail)", sourceLocation: sourceLocation)
        } catch {
            Issue.record("unexpected error \(error)", sourceLocation: sourceLocation)
        }
    }

    static let base = #""model_type":"llama","hidden_size":64,"intermediate_size":172,"num_hidden_layers":5,"num_attention_heads":8,"vocab_size":512"#

    @Test func transformers5KeysAndDefaults() throws {
        let c = try decode("{\(Self.base),\"num_key_value_heads\":4,\"rope_parameters\":{\"rope_theta\":5000.0,\"rope_type\":\"default\"},\"eos_token_id\":[2,7],\"bos_token_id\":1,\"rms_norm_eps\":1e-5,\"dtype\":\"bfloat16\",\"pad_token_id\":null,\"rope_scaling\":null}")
        #expect(c.architecture == .llama && c.numKeyValueHeads == 4 && c.headDim == 8)
        #expect(c.ropeTheta == 5000 && c.eosTokenIds == [2, 7] && c.bosTokenId == 1 && c.rmsNormEps == 1e-5)
        #expect(c.dtype == "bfloat16" && !c.tieWordEmbeddings && !c.hasQKVBias)
        let legacy = try decode("{\(Self.base),\"rope_theta\":123.0,\"eos_token_id\":2,\"torch_dtype\":\"float32\"}")
        #expect(legacy.ropeTheta == 123 && legacy.eosTokenIds == [2] && legacy.numKeyValueHeads == 8 && legacy.dtype == "float32")
        let q = try ModelConfig.load(from: Fixtures.url("model/tiny-qwen2/config.json"))
        #expect(q.architecture == .qwen2 && q.hasQKVBias && !q.hasOBias && q.tieWordEmbeddings && q.ropeTheta == 1_000_000)
        #expect(q.hiddenSize == 32 && q.numKeyValueHeads == 2 && q.headDim == 8 && q.vocabSize == 97 && q.maxPositionEmbeddings == 64)
        // Encode → decode is the identity.
        #expect(try JSONDecoder().decode(ModelConfig.self, from: q.jsonData()) == q)
        #expect(try decode(String(decoding: c.jsonData(), as: UTF8.self)) == c)
    }

    @Test func unsupportedFeaturesNameTheKey() {
        expectConfigError("{\(Self.base),\"rope_scaling\":{\"rope_type\":\"linear\",\"factor\":2.0}}", key: "rope_scaling")
        expectConfigError("{\(Self.base),\"rope_parameters\":{\"rope_type\":\"yarn\",\"rope_theta\":1.0}}", key: "rope_parameters.rope_type")
        expectConfigError(#"{"model_type":"qwen2","hidden_size":64,"intermediate_size":172,"num_hidden_layers":5,"num_attention_heads":8,"vocab_size":512,"use_sliding_window":true}"#, key: "use_sliding_window")
        expectConfigError("{\(Self.base),\"layer_types\":[\"full_attention\",\"sliding_attention\"]}", key: "layer_types")
        expectConfigError("{\(Self.base),\"hidden_act\":\"gelu\"}", key: "hidden_act")
        expectConfigError("{\(Self.base),\"mlp_bias\":true}", key: "mlp_bias")
        expectConfigError(#"{"model_type":"gpt2","hidden_size":64}"#, key: "model_type")
        expectConfigError(#"{"model_type":"llama","architectures":["Qwen2ForCausalLM"],"hidden_size":64}"#, key: "architectures")
        expectConfigError(#"{"model_type":"llama","intermediate_size":172,"num_hidden_layers":5,"num_attention_heads":8,"vocab_size":512}"#, key: "hidden_size")
        expectConfigError("{\(Self.base),\"num_key_value_heads\":\"4\"}", key: "num_key_value_heads")
    }

    @Test func loadValidatesSizesAndNamesFile() throws {
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("config.json")
        try Data("{\(Self.base),\"num_key_value_heads\":3}".utf8).write(to: url)
        do {
            _ = try ModelConfig.load(from: url)
            Issue.record("accepted 8 heads / 3 kv heads")
        } catch let ModelError.config(file, key, _) {
            #expect(file == url.path && key == "num_key_value_heads")
        }
    }

    @Test func layoutNamesShapesAlignment() throws {
        let q = try ModelConfig.load(from: Fixtures.url("model/tiny-qwen2/config.json"))
        let l = ParameterLayout(config: q)
        #expect(l.entry("model.layers.1.self_attn.k_proj.bias")?.shape == [16])
        #expect(l.entry("model.layers.0.self_attn.o_proj.bias") == nil)
        #expect(l.entry("lm_head.weight") == nil && l.lmHead == l.embedding)
        #expect(l.entry("model.layers.0.mlp.down_proj.weight")?.shape == [32, 48])
        #expect(l.entries.count == 1 + 2 * 12 + 1)
        var end = 0
        for e in l.entries {
            #expect(e.offset % 16 == 0 && e.offset >= end, "\(e.name)")
            end = e.offset + e.count
        }
        #expect(l.totalCount >= end)
        var llama = q
        llama.architecture = .llama
        llama.tieWordEmbeddings = false
        let ll = ParameterLayout(config: llama)
        #expect(ll.entry("model.layers.0.self_attn.q_proj.bias") == nil && ll.entry("lm_head.weight")?.shape == [97, 32])
        llama.attentionBias = true
        #expect(ParameterLayout(config: llama).entry("model.layers.0.self_attn.o_proj.bias")?.shape == [32])
    }
    /// Inputs found through the model-config fuzz target (scripts/fuzz model-config): sizes whose products overflow
    /// Int (a trap in `qDim`/`ParameterLayout`) or make the layout loop for minutes are refused by
    /// `ModelConfig.decode`, naming the key; the largest accepted sizes still lay out.
    @Test func hugeSizesAreRefusedBeforeAnyLayout() throws {
        func expectRefused(_ json: String, key: String, sourceLocation: SourceLocation = #_sourceLocation) {
            do {
                let c = try ModelConfig.decode(json: Data(json.utf8), file: "fuzz.json")
                Issue.record("accepted \(c)", sourceLocation: sourceLocation)
            } catch let ModelError.config(file, k, detail) {
                #expect(file == "fuzz.json" && k == key, "\(k): \(detail)", sourceLocation: sourceLocation)
                #expect(detail.contains("exceeds the limit"), "\(detail)", sourceLocation: sourceLocation)
            } catch {
                Issue.record("unexpected error \(error)", sourceLocation: sourceLocation)
            }
        }
        let small = #""model_type":"llama","intermediate_size":16,"vocab_size":10"#
        // The two inputs as found: 2^62 heads of head_dim 4 (q width overflows), 10^8 layers (layout loop).
        expectRefused(#"{\#(small),"hidden_size":8,"num_hidden_layers":1,"num_attention_heads":4611686018427387904,"num_key_value_heads":1,"head_dim":4}"#,
                      key: "num_attention_heads")
        expectRefused(#"{\#(small),"hidden_size":8,"num_hidden_layers":100000000,"num_attention_heads":2}"#, key: "num_hidden_layers")
        // Each other derived size.
        expectRefused(#"{\#(small),"hidden_size":9223372036854775807,"num_hidden_layers":1,"num_attention_heads":1,"head_dim":2}"#, key: "hidden_size")
        expectRefused(#"{"model_type":"llama","hidden_size":8,"intermediate_size":16,"num_hidden_layers":1,"num_attention_heads":2,"vocab_size":4611686018427387904}"#, key: "vocab_size")
        expectRefused(#"{\#(small),"hidden_size":8,"num_hidden_layers":1,"num_attention_heads":2,"max_position_embeddings":4611686018427387904}"#, key: "max_position_embeddings")
        expectRefused(#"{"model_type":"llama","hidden_size":1024,"intermediate_size":1073741824,"num_hidden_layers":1,"num_attention_heads":2,"vocab_size":10}"#, key: "intermediate_size")
        // 4096 layers of a small model are still a model: decoded and laid out.
        let deep = try ModelConfig.decode(json: Data(#"{\#(small),"hidden_size":8,"num_hidden_layers":4096,"num_attention_heads":2}"#.utf8), file: "deep.json")
        #expect(ParameterLayout(config: deep).layers.count == 4096)
    }
}
