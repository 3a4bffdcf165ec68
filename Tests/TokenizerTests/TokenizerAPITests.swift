import Foundation
import Testing
import TestSupport
@testable import Tokenizer

@Suite(.enabled(if: sharedTokenizers, "needs ../shared/data/{qwen-tokenizer,stories260K}"))
struct TokenizerAPITests {
    /// Known fact about stories260K (../shared/data/README.md).
    @Test func storiesOnceUponATime() throws {
        let tok = try Loaded.tokenizer("stories260K")
        #expect(tok.encode("Once upon a time", addSpecialTokens: true) == [1, 403, 407, 261, 378])
        #expect(tok.encode("Once upon a time") == [403, 407, 261, 378])
        #expect(tok.decode([1, 403, 407, 261, 378], skipSpecialTokens: true) == "Once upon a time")
    }

    @Test func specialTokenIds() throws {
        let q = try Loaded.tokenizer("qwen")
        #expect(q.tokenId("<|endoftext|>") == 151643)
        #expect(q.tokenId("<|im_start|>") == 151644)
        #expect(q.tokenId("<|im_end|>") == 151645)
        #expect(q.tokenId("Ġworld") == 1879)
        #expect(q.tokenId("no such token") == nil)
        #expect(q.bosTokenId == nil)
        #expect(q.eosTokenId == 151645)
        #expect(q.isSpecialToken(151645) && !q.isSpecialToken(1879))
        #expect(q.tokenString(1879) == "Ġworld")

        let s = try Loaded.tokenizer("stories260K")
        #expect(s.tokenId("</s>") == 2)
        #expect(s.bosTokenId == 1)   // tokenizer_config.json bos_token "<s>"
        #expect(s.eosTokenId == 2)   // eos_token "</s>"
        #expect(s.vocabularySize == 512)
    }

    /// Special tokens written in the text are single tokens; a text split across them is encoded per segment.
    @Test func chatMLPromptTokenizesLikeTransformers() throws {
        let q = try Loaded.tokenizer("qwen")
        let prompt = ChatTemplate.chatML.prompt(system: SystemPrompt.math,
                                                user: "Janet has 3 apples.\nShe buys 2 more. How many?")
        // transformers 5.24 apply_chat_template(..., tokenize=True, add_generation_prompt=True) with the Qwen2
        // chat template on ../shared/data/qwen-tokenizer/tokenizer.json (run once, pasted here).
        let expected: [Int32] = [
            151644, 8948, 198, 2610, 525, 264, 10950, 15235, 21388, 11, 6188, 311, 3897, 1632, 5504, 1497, 291, 323,
            11682, 14507, 13, 1446, 34813, 1744, 911, 279, 32711, 1882, 3019, 553, 3019, 323, 1221, 3410, 279, 1196,
            448, 279, 4226, 13, 5209, 2182, 697, 1590, 4226, 2878, 1124, 79075, 46391, 151645, 198, 151644, 872, 198,
            18315, 295, 702, 220, 18, 40676, 624, 7941, 49531, 220, 17, 803, 13, 2585, 1657, 30, 151645, 198,
            151644, 77091, 198,
        ]
        let ids = q.encode(prompt)
        #expect(ids == expected, "\(firstDifference(ids, expected))")
        #expect(q.decode(ids) == prompt)
    }

    /// Long inputs: a 20k-character word (heap merge loop, no quadratic blow-up) and long whitespace runs.
    @Test func longInputsRoundTrip() throws {
        let q = try Loaded.tokenizer("qwen")
        let word = String(repeating: "abcdefghij", count: 2000)
        let ws = String(repeating: " ", count: 5000) + "x" + String(repeating: "\n", count: 300)
        for t in [word, ws] {
            let ids = q.encode(t)
            #expect(!ids.isEmpty)
            #expect(q.decode(ids) == t)
        }
    }

    /// encodeBatch (all cores) gives encode's ids, in input order.
    @Test func encodeBatchMatchesEncode() throws {
        let q = try Loaded.tokenizer("qwen")
        let texts = try TokenizerFixture.load("qwen").hand.map(\.text)
        let batch = q.encodeBatch(texts, threads: 2)
        #expect(batch.count == texts.count)
        for (i, t) in texts.enumerated() { #expect(batch[i] == q.encode(t), "\(i): \(t.debugDescription)") }
        #expect(q.encodeBatch([]).isEmpty)
        let s = try Loaded.tokenizer("stories260K")
        #expect(s.encodeBatch(["Once upon a time", "x"], addSpecialTokens: true) == [[1, 403, 407, 261, 378], s.encode("x", addSpecialTokens: true)])
    }

    /// Concurrent use of one instance (Sendable, no shared mutable state) gives the same ids.
    @Test func concurrentEncode() async throws {
        let q = try Loaded.tokenizer("qwen")
        let text = "The quick brown fox jumps over the lazy dog. 12345 日本語 😀"
        let expected = q.encode(text)
        let results = await withTaskGroup(of: [Int32].self) { g in
            for _ in 0..<8 { g.addTask { q.encode(text) } }
            var all: [[Int32]] = []
            for await r in g { all.append(r) }
            return all
        }
        #expect(results.allSatisfy { $0 == expected })
    }
}

@Suite struct ByteLevelMapTests {
    /// The computed byte -> scalar map equals GPT-2's bytes_to_unicode table, and inverts.
    @Test func computedMapMatchesTable() {
        // bytes_to_unicode: printable ranges map to themselves, the rest to 256, 257, ... in byte order.
        var n: UInt32 = 0
        for b in 0..<256 {
            let printable = (0x21...0x7E).contains(b) || (0xA1...0xAC).contains(b) || (0xAE...0xFF).contains(b)
            let expected: UInt32 = printable ? UInt32(b) : 256 + n
            if !printable { n += 1 }
            #expect(ByteLevelMap.scalar(UInt8(b)) == expected, "byte \(b)")
            #expect(ByteLevelMap.byteOf[Int(expected)] == Int16(b), "byte \(b)")
        }
    }
}

@Suite struct ChatTemplateTests {
    /// Same string as transformers' apply_chat_template(tokenize=False, add_generation_prompt=True) with the
    /// Qwen2 chat template (run once with transformers 5.24; pasted here).
    @Test func chatMLMatchesQwen2Template() {
        let s = ChatTemplate.chatML.prompt(system: SystemPrompt.math, user: "Janet has 3 apples.\nShe buys 2 more. How many?")
        let expected = "<|im_start|>system\nYou are a helpful AI Assistant, designed to provided well-reasoned and "
            + "detailed responses. You FIRST think about the reasoning process step by step and then provide the user "
            + "with the answer. Please put your final answer within \\boxed{}.<|im_end|>\n<|im_start|>user\nJanet has "
            + "3 apples.\nShe buys 2 more. How many?<|im_end|>\n<|im_start|>assistant\n"
        #expect(s == expected)
    }

    @Test func chatMLWithoutSystem() {
        #expect(ChatTemplate.chatML.prompt(system: nil, user: "hi")
            == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n")
        #expect(ChatTemplate.chatML.endOfTurn == "<|im_end|>")
    }

    @Test func plain() {
        #expect(ChatTemplate.plain.prompt(system: nil, user: "Once upon a time") == "Once upon a time\n")
        #expect(ChatTemplate.plain.prompt(system: "S", user: "U") == "S\n\nU\n")
    }

    @Test func namedPrompts() {
        #expect(SystemPrompt.named("math") == SystemPrompt.math)
        #expect(SystemPrompt.named("intuitor-recipe")?.contains("\\boxed{Your Answer}") == true)
        #expect(SystemPrompt.named("none") == nil)
        #expect(SystemPrompt.named("nope") == nil)
        #expect(SystemPrompt.math.hasSuffix("Please put your final answer within \\boxed{}."))
    }
}

@Suite struct TokenizerErrorTests {
    func write(_ json: String) throws -> URL {
        let dir = try Fixtures.temporaryDirectory("tok-err")
        let u = dir.appendingPathComponent("tokenizer.json")
        try Data(json.utf8).write(to: u)
        return u
    }

    func message(_ json: String) throws -> String {
        let u = try write(json)
        defer { try? FileManager.default.removeItem(at: u.deletingLastPathComponent()) }
        do {
            _ = try Tokenizer(contentsOf: u)
            return "no error"
        } catch {
            return "\(error)"
        }
    }

    @Test func missingFile() {
        #expect(throws: TokenizerError.self) { try Tokenizer(contentsOf: URL(fileURLWithPath: "/nonexistent/tokenizer.json")) }
        do { _ = try Tokenizer(contentsOf: URL(fileURLWithPath: "/nonexistent/tokenizer.json")) } catch {
            #expect("\(error)".contains("/nonexistent/tokenizer.json"))
        }
    }

    @Test func errorsNameFileAndField() throws {
        let m1 = try message("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": [[\"a\", \"b\"]]}}")
        #expect(m1.contains("tokenizer.json") && m1.contains("model.merges[0]") && m1.contains("\"b\""), "\(m1)")
        let m2 = try message("{\"added_tokens\": []}")
        #expect(m2.contains("missing field `model`"), "\(m2)")
        let m3 = try message("{\"model\": {\"type\": \"WordPiece\", \"vocab\": {}}}")
        #expect(m3.contains("model.type") && m3.contains("WordPiece"), "\(m3)")
        let m4 = try message("{\"model\": {\"vocab\": {\"a\": \"zero\"}}}")
        #expect(m4.contains("model.vocab.a"), "\(m4)")
        let m5 = try message("{\"model\": {\"vocab\": {}}, \"pre_tokenizer\": {\"type\": \"Whitespace\"}}")
        #expect(m5.contains("pre_tokenizer.type") && m5.contains("Whitespace"), "\(m5)")
        let m6 = try message("{\"model\": {\"vocab\": {\"a\": 0,}}")
        #expect(m6.contains("invalid JSON at byte"), "\(m6)")
        let m7 = try message("[1, 2]")
        #expect(m7.contains("should be an object"), "\(m7)")
        let m8 = try message("{\"model\": {\"vocab\": {\"a\": 2000000000}}}")
        #expect(m8.contains("model.vocab") && m8.contains("far beyond"), "\(m8)")
        let m9 = try message("{\"model\": {\"vocab\": {}}, \"pre_tokenizer\": {\"type\": \"Metaspace\", \"replacement\": \"\"}}")
        #expect(m9.contains("pre_tokenizer.replacement") && m9.contains("must not be empty"), "\(m9)")
        let m10 = try message("{\"model\": {\"vocab\": {}}, \"post_processor\": {\"type\": \"TemplateProcessing\", \"single\": [], \"special_tokens\": {\"x\": {\"ids\": [9999999999]}}}}")
        #expect(m10.contains("post_processor.special_tokens.x.ids[0]"), "\(m10)")
    }

    /// A minimal hand-written byte-level file: merges apply by rank, an unknown regex falls back to
    /// NSRegularExpression, decode inverts the byte map.
    @Test func tinyByteLevelFile() throws {
        let json = """
            {"model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "c": 2, "ab": 3, "abc": 4, "Ġ": 5, "Ġa": 6},
              "merges": [["a", "b"], ["ab", "c"], ["Ġ", "a"]]},
             "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
               {"type": "Split", "pattern": {"Regex": " ?[a-z]+"}, "behavior": "Isolated", "invert": false},
               {"type": "ByteLevel", "add_prefix_space": false, "use_regex": false}]},
             "decoder": {"type": "ByteLevel"}}
            """
        let u = try write(json)
        defer { try? FileManager.default.removeItem(at: u.deletingLastPathComponent()) }
        let t = try Tokenizer(contentsOf: u)
        // tokenizers 0.23 on the same JSON (Tokenizer.from_str): ids [4, 5, 3], tokens abc, Ġ, ab: rank 0
        // (a, b) merges before (Ġ, a) can.
        #expect(t.encode("abc ab") == [4, 5, 3])
        #expect(t.decode([4, 5, 3]) == "abc ab")
        #expect(t.vocabularySize == 7)
    }
}

@Suite struct JSONReaderTests {
    @Test func parsesEscapesNumbersAndLiterals() throws {
        let text = #"{"a": "x\u00e9\ud83d\ude00\n\"\\\/", "b": [1, -2, 3.25e0, true, false, null], "c": ["p", "q"]}"#
        let doc = try JSONDocument(bytes: Array(text.utf8))
        let root = JSONNode(doc: doc, value: doc.root, path: "", file: "t.json")
        #expect(try root.required("a").string() == "xé😀\n\"\\/")
        let b = try root.required("b").array()
        #expect(try b[0].int() == 1 && b[1].int() == -2 && b[2].double() == 3.25)
        #expect(try b[3].bool() == true && b[4].bool() == false && b[5].value.isNull)
        #expect(try root.required("c").array().map { try $0.string() } == ["p", "q"])
        #expect(throws: TokenizerError.self) { try b[2].int() }
    }

    @Test func rejectsMalformed() {
        for bad in [#"{"a": }"#, #"{"a": "x}"#, #"[1, 2"#, #"{"a": 1} x"#, #"{"a": "\q"}"#, "", #"[01x]"#] {
            #expect(throws: JSONDocument.ParseError.self, "\(bad)") { try JSONDocument(bytes: Array(bad.utf8)) }
        }
    }
}
