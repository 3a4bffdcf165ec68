import Foundation
import GGUF
import Testing
import TestSupport
@testable import Tokenizer

/// Tests/Fixtures/gguf-tokenizer/ (scripts/ref/gguf_tokenizer_fixtures.py): tiny GGUF tokenizers and what
/// transformers' GGUF tokenizer makes of them and of the real models.
struct TinyGGUFFixture: Decodable {
    struct File: Decodable {
        var ids: [[Int32]]
        var ids_special: [[Int32]]
        var decode: [String]
        var bos_token_id: Int32?
        var eos_token_id: Int32?
        var added_tokens: [[AnyScalar]]
        var chat_template: String?
        var vocab_size: Int
    }
    /// A JSON scalar of a mixed array ([id, content, special]).
    enum AnyScalar: Decodable, Equatable {
        case int(Int), string(String), bool(Bool)
        init(from decoder: Decoder) throws {
            let c = try decoder.singleValueContainer()
            if let b = try? c.decode(Bool.self) { self = .bool(b) }
            else if let i = try? c.decode(Int.self) { self = .int(i) }
            else { self = .string(try c.decode(String.self)) }
        }
    }
    var texts: [String]
    var files: [String: File]

    static func load() throws -> TinyGGUFFixture {
        try JSONDecoder().decode(TinyGGUFFixture.self, from: Data(contentsOf: Fixtures.url("gguf-tokenizer/tiny.json")))
    }
}

@Suite struct GGUFTokenizerTests {
    static let tinyNames = ["tiny-qwen2", "tiny-llama-bpe", "tiny-smollm"]

    /// Each pre-tokenizer (qwen2, llama-bpe, smollm), control / user-defined / mislabelled tokens, a token outside the
    /// byte alphabet, add_bos + add_eos with an ordinary-token BOS: ids, decode, special tokens, added tokens and the
    /// chat template as transformers builds them from the same file.
    @Test(arguments: tinyNames)
    func tinyGGUFEncodesLikeTransformers(_ name: String) throws {
        let fx = try TinyGGUFFixture.load()
        let f = try #require(fx.files[name])
        let url = Fixtures.url("gguf-tokenizer/\(name).gguf")
        let files = try GGUFTokenizerFiles(try GGUFFile(contentsOf: url))
        let tok = try files.tokenizer()
        #expect(fx.texts.count > 100)
        for (i, text) in fx.texts.enumerated() {
            let a = tok.encode(text)
            #expect(a == f.ids[i], "\(name) \(text.debugDescription): \(firstDifference(a, f.ids[i]))")
            let b = tok.encode(text, addSpecialTokens: true)
            #expect(b == f.ids_special[i], "\(name) special \(text.debugDescription): \(firstDifference(b, f.ids_special[i]))")
            #expect(tok.decode(b) == f.decode[i], "\(name) decode \(text.debugDescription)")
        }
        #expect(tok.bosTokenId == f.bos_token_id && tok.eosTokenId == f.eos_token_id)
        #expect(tok.vocabularySize == f.vocab_size)
        #expect(tok.chatTemplate?.text == f.chat_template)
        #expect(tok.chatTemplate?.source.hasSuffix("\(name).gguf tokenizer.chat_template") == true)
        // Added tokens: same ids, contents and special flags.
        let json = try JSONSerialization.jsonObject(with: files.tokenizerJSON) as! [String: Any]
        let added = (json["added_tokens"] as! [[String: Any]]).map {
            [TinyGGUFFixture.AnyScalar.int($0["id"] as! Int), .string($0["content"] as! String), .bool($0["special"] as! Bool)]
        }
        #expect(added == f.added_tokens)
        // The GGUF's chat template renders through `auto`.
        let t = try ChatTemplate.resolve(.auto, tokenizer: tok)
        #expect(t.prompt(system: nil, user: "hi") == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n")
    }

    /// The written tokenizer.json + tokenizer_config.json load back to the same tokenizer (what `rlif convert` writes).
    @Test func writtenFilesLoadBack() throws {
        let fx = try TinyGGUFFixture.load()
        let name = "tiny-llama-bpe"
        let f = try #require(fx.files[name])
        let files = try GGUFTokenizerFiles(try GGUFFile(contentsOf: Fixtures.url("gguf-tokenizer/\(name).gguf")))
        let dir = try Fixtures.temporaryDirectory("rlif-gguf-tok")
        defer { try? FileManager.default.removeItem(at: dir) }
        try files.write(to: dir)
        let tok = try Tokenizer(contentsOf: dir.appendingPathComponent("tokenizer.json"))
        for (i, text) in fx.texts.enumerated() { #expect(tok.encode(text, addSpecialTokens: true) == f.ids_special[i]) }
        #expect(tok.bosTokenId == f.bos_token_id && tok.eosTokenId == f.eos_token_id)
        #expect(tok.chatTemplate?.text == f.chat_template)
        let cfg = try JSONSerialization.jsonObject(with: Data(contentsOf: dir.appendingPathComponent("tokenizer_config.json"))) as! [String: Any]
        #expect(cfg["add_bos_token"] as? Bool == true && cfg["add_eos_token"] as? Bool == true)
        #expect(cfg["bos_token"] as? String == "<s>" && cfg["eos_token"] as? String == "<|im_end|>")
        // --model X.gguf finds the GGUF's own tokenizer; --tokenizer overrides it.
        let viaModel = try #require(try Tokenizer.forModel(Fixtures.url("gguf-tokenizer/\(name).gguf").path))
        #expect(viaModel.encode("hello", addSpecialTokens: true) == tok.encode("hello", addSpecialTokens: true))
        let override = try #require(try Tokenizer.forModel(Fixtures.url("gguf-tokenizer/\(name).gguf").path,
                                                           tokenizerFile: dir.appendingPathComponent("tokenizer.json").path))
        #expect(override.file == dir.appendingPathComponent("tokenizer.json").path)
    }

    /// An unknown `tokenizer.ggml.pre` and a non-gpt2 `tokenizer.ggml.model` are errors naming the key and value.
    @Test func unsupportedTokenizersAreNamed() throws {
        for (file, key, value) in [("tiny-bad-pre", "tokenizer.ggml.pre", "tekken-unknown"),
                                   ("tiny-spm", "tokenizer.ggml.model", "llama")] {
            do {
                _ = try Tokenizer(ggufFile: Fixtures.url("gguf-tokenizer/\(file).gguf"))
                Issue.record("\(file) accepted")
            } catch {
                let d = "\(error)"
                #expect(d.contains(key) && d.contains(value) && d.contains("\(file).gguf"), "\(d)")
            }
        }
    }
}

/// The real models (RLIF_REAL_MODELS=1, GGUFs in $RLIF_MODELS): ids identical to transformers' GGUF tokenizer on every
/// GSM8K test question and answer, and on the hand-written edge cases.
@Suite struct GGUFTokenizerRealModelTests {
    struct Real: Decodable {
        struct Model: Decodable {
            var hashes: String
            var counts: [Int]
            var first_ids: [[Int32]]
            var hand_ids: [[Int32]]
            var bos_token_id: Int32?
            var eos_token_id: Int32?
            var vocab_size: Int
        }
        var gsm8k_texts: Int
        var hand_texts: [String]
        var models: [String: Model]
    }

    @Test(arguments: RealModels.names)
    func gsm8kIdsMatchTransformers(_ name: String) throws {
        guard let url = RealModels.gguf(name) else { return }
        guard Fixtures.shared("gsm8k/test.jsonl") != nil else { print("skipping: needs ../shared/data/gsm8k"); return }
        let real = try JSONDecoder().decode(Real.self, from: Data(contentsOf: Fixtures.url("gguf-tokenizer/real.json")))
        let m = try #require(real.models["\(name).gguf"])
        let tok = try Tokenizer(ggufFile: url)
        #expect(tok.bosTokenId == m.bos_token_id && tok.eosTokenId == m.eos_token_id && tok.vocabularySize == m.vocab_size)
        for (i, t) in real.hand_texts.enumerated() {
            let ids = tok.encode(t, addSpecialTokens: true)
            #expect(ids == m.hand_ids[i], "\(name) hand \(t.debugDescription): \(firstDifference(ids, m.hand_ids[i]))")
        }
        let texts = try gsm8kTexts("test.jsonl", stride: 1)
        #expect(texts.count == real.gsm8k_texts && texts.count == m.counts.count)
        let hashes = m.hashes.split(separator: " ").map(String.init)
        let ids = tok.encodeBatch(texts, addSpecialTokens: true)
        var bad = 0
        for i in texts.indices where fnv1a(ids: ids[i]) != hashes[i] || ids[i].count != m.counts[i] {
            bad += 1
            if bad <= 3 {
                let detail = i < m.first_ids.count ? firstDifference(ids[i], m.first_ids[i]) : "\(ids[i].count) vs \(m.counts[i]) tokens"
                Issue.record("\(name) GSM8K text \(i) \(texts[i].prefix(60).debugDescription): \(detail)")
            }
        }
        #expect(bad == 0, "\(name): \(bad) of \(texts.count) GSM8K texts differ")
        print("\(name): \(texts.count) GSM8K test texts, \(ids.reduce(0) { $0 + $1.count }) tokens, all equal to transformers' GGUF tokenizer")
    }

    /// End to end from the GGUF: `auto` reads `tokenizer.chat_template`, renders every fixture conversation as
    /// transformers does, and the prompt tokenizes (without special tokens) to transformers' apply_chat_template ids.
    @Test(arguments: [("smollm2-135m-instruct", "smollm2"), ("qwen2.5-coder-0.5b-instruct", "qwen2.5-0.5b"),
                      ("qwen2.5-coder-1.5b-instruct", "qwen2.5-1.5b")])
    func chatTemplatePromptsMatchTransformers(_ model: String, _ fixture: String) throws {
        guard let url = RealModels.gguf(model) else { return }
        let tok = try Tokenizer(ggufFile: url)
        let t = try ChatTemplate.resolve(.auto, tokenizer: tok)
        let fx = try TemplateFixture.load()
        let e = try TemplateFixture.entry(fixture)
        let ids = try #require(e.ids)
        for (i, c) in fx.conversations.enumerated() {
            let text = t.prompt(system: c.system, user: c.user)
            #expect(text == e.rendered[i], "\(model) conversation \(i)")
            #expect(tok.encode(text, addSpecialTokens: t.addsSpecialTokens) == ids[i], "\(model) conversation \(i) ids")
        }
    }
}
