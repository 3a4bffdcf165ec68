import Foundation
import Testing
import TestSupport
@testable import Tokenizer

/// Expected outputs written by `scripts/ref/tokenizer_fixtures.py` with Hugging Face `tokenizers` 0.23.
struct TokenizerFixture: Decodable {
    struct Hand: Decodable {
        var text: String
        var ids: [Int32]
        var ids_special: [Int32]
        var decoded: String
        var decoded_skip: String
        var pieces: [String]
    }
    struct DecodeCase: Decodable {
        var ids: [Int32]
        var decoded: String
        var decoded_skip: String
    }
    struct Corpus: Decodable {
        var count: Int
        var text_fnv: [String]
        var ids_fnv: [String]
        var decoded_fnv: [String]
        var n_tokens: [Int]
        var full: [[Int32]]
    }
    var tokenizer: String
    var vocab_size: Int
    var hand: [Hand]
    var decode: [DecodeCase]
    var gsm8k_test: Corpus
    var gsm8k_train_every15: Corpus

    static func load(_ name: String) throws -> TokenizerFixture {
        let data = try Data(contentsOf: Fixtures.url("tokenizer/\(name).json"))
        return try JSONDecoder().decode(TokenizerFixture.self, from: data)
    }
}

/// FNV-1a 64 as in the fixture script (ids hashed as 4 little-endian bytes each).
func fnv1a(_ bytes: some Sequence<UInt8>) -> String {
    var h: UInt64 = 0xcbf2_9ce4_8422_2325
    for b in bytes { h = (h ^ UInt64(b)) &* 0x100_0000_01b3 }
    let s = String(h, radix: 16)
    return String(repeating: "0", count: 16 - s.count) + s
}

func fnv1a(ids: [Int32]) -> String {
    fnv1a(ids.flatMap { id -> [UInt8] in
        let u = UInt32(bitPattern: id)
        return [UInt8(u & 0xFF), UInt8((u >> 8) & 0xFF), UInt8((u >> 16) & 0xFF), UInt8(u >> 24)]
    })
}

/// Tokenizers are loaded once per test process (the Qwen file is 18 MB).
enum Loaded {
    static let qwen: Tokenizer? = Fixtures.shared("qwen-tokenizer/tokenizer.json").flatMap { try? Tokenizer(contentsOf: $0) }
    static let stories: Tokenizer? = Fixtures.shared("stories260K/tokenizer.json").flatMap { try? Tokenizer(contentsOf: $0) }

    static func tokenizer(_ name: String) throws -> Tokenizer {
        let t = name == "qwen" ? qwen : stories
        return try #require(t, "could not load the \(name) tokenizer from ../shared/data")
    }
}

/// GSM8K questions and answers in file order, as the fixture script reads them.
func gsm8kTexts(_ file: String, stride: Int) throws -> [String] {
    let url = try #require(Fixtures.shared("gsm8k/\(file)"))
    let text = try String(contentsOf: url, encoding: .utf8)
    var out: [String] = []
    for (i, line) in text.split(separator: "\n", omittingEmptySubsequences: true).enumerated() where i % stride == 0 {
        let obj = try JSONSerialization.jsonObject(with: Data(line.utf8)) as! [String: Any]
        out.append(obj["question"] as! String)
        out.append(obj["answer"] as! String)
    }
    return out
}

func firstDifference(_ a: [Int32], _ b: [Int32]) -> String {
    let i = zip(a, b).enumerated().first { $0.element.0 != $0.element.1 }?.offset ?? min(a.count, b.count)
    return "first differing index \(i): got \(i < a.count ? String(a[i]) : "end") expected \(i < b.count ? String(b[i]) : "end") (lengths \(a.count) vs \(b.count))"
}

let tokenizerNames = ["qwen", "stories260K"]
let sharedTokenizers = Fixtures.shared("qwen-tokenizer/tokenizer.json") != nil
    && Fixtures.shared("stories260K/tokenizer.json") != nil
let sharedGSM8K = sharedTokenizers && Fixtures.shared("gsm8k/test.jsonl") != nil
    && Fixtures.shared("gsm8k/train.jsonl") != nil

@Suite(.enabled(if: sharedTokenizers, "needs ../shared/data/{qwen-tokenizer,stories260K}"))
struct TokenizerFixtureTests {
    @Test(arguments: tokenizerNames)
    func handCasesEncodeLikeTokenizers(_ name: String) throws {
        let fx = try TokenizerFixture.load(name)
        let tok = try Loaded.tokenizer(name)
        for (i, c) in fx.hand.enumerated() {
            let ids = tok.encode(c.text)
            #expect(ids == c.ids, "\(name) hand[\(i)] \(c.text.debugDescription): \(firstDifference(ids, c.ids))")
            let sp = tok.encode(c.text, addSpecialTokens: true)
            #expect(sp == c.ids_special, "\(name) hand[\(i)] with special tokens \(c.text.debugDescription): \(firstDifference(sp, c.ids_special))")
        }
    }

    /// The split scanner / Metaspace alone against `pre_tokenize_str` (BPE can hide split differences, e.g.
    /// Qwen has no multi-digit tokens, so `\p{N}` vs `\p{N}{1,3}` would give the same ids).
    @Test(arguments: tokenizerNames)
    func handCasesPreTokenizeLikeTokenizers(_ name: String) throws {
        let fx = try TokenizerFixture.load(name)
        let tok = try Loaded.tokenizer(name)
        for (i, c) in fx.hand.enumerated() {
            let pieces = tok.preTokenizedPieces(c.text)
            #expect(pieces == c.pieces, "\(name) hand[\(i)] \(c.text.debugDescription): pieces \(pieces) expected \(c.pieces)")
        }
    }

    @Test(arguments: tokenizerNames)
    func handCasesDecodeLikeTokenizers(_ name: String) throws {
        let fx = try TokenizerFixture.load(name)
        let tok = try Loaded.tokenizer(name)
        for (i, c) in fx.hand.enumerated() {
            #expect(tok.decode(c.ids) == c.decoded, "\(name) hand[\(i)] decode \(c.ids)")
            #expect(tok.decode(c.ids_special, skipSpecialTokens: true) == c.decoded_skip,
                    "\(name) hand[\(i)] decode skipping specials \(c.ids_special)")
        }
        // Random id sequences: partial UTF-8, byte-fallback runs broken by specials, unknown-free ids.
        for (i, c) in fx.decode.enumerated() {
            #expect(tok.decode(c.ids) == c.decoded, "\(name) decode[\(i)] \(c.ids)")
            #expect(tok.decode(c.ids, skipSpecialTokens: true) == c.decoded_skip, "\(name) decode[\(i)] skip \(c.ids)")
        }
    }

    @Test(arguments: tokenizerNames)
    func vocabularySizeMatchesTokenizers(_ name: String) throws {
        let fx = try TokenizerFixture.load(name)
        #expect(try Loaded.tokenizer(name).vocabularySize == fx.vocab_size)
    }

    /// Qwen's byte-level BPE is lossless: decode(encode(x)) == x for every hand case (NFC-normalised first).
    @Test func qwenRoundTripIsLossless() throws {
        let fx = try TokenizerFixture.load("qwen")
        let tok = try Loaded.tokenizer("qwen")
        for c in fx.hand {
            let nfc = c.text.precomposedStringWithCanonicalMapping
            #expect(Array(tok.decode(tok.encode(c.text)).utf8) == Array(nfc.utf8), "\(c.text.debugDescription)")
        }
    }
}

@Suite(.enabled(if: sharedGSM8K, "needs ../shared/data/{qwen-tokenizer,stories260K,gsm8k}"))
struct TokenizerGSM8KTests {
    func check(_ name: String, _ texts: [String], _ corpus: TokenizerFixture.Corpus, _ label: String) throws {
        let tok = try Loaded.tokenizer(name)
        try #require(texts.count == corpus.count, "\(label): \(texts.count) texts, fixture has \(corpus.count)")
        var failures = 0
        for (i, t) in texts.enumerated() {
            try #require(fnv1a(t.utf8) == corpus.text_fnv[i], "\(label)[\(i)]: the data file differs from the fixture's")
            let ids = tok.encode(t)
            var ok = fnv1a(ids: ids) == corpus.ids_fnv[i] && ids.count == corpus.n_tokens[i]
            if i < corpus.full.count {
                ok = ok && ids == corpus.full[i]
                #expect(ids == corpus.full[i], "\(name) \(label)[\(i)] \(t.prefix(60).debugDescription): \(firstDifference(ids, corpus.full[i]))")
            } else if !ok {
                Issue.record("\(name) \(label)[\(i)] \(t.prefix(60).debugDescription): ids differ from tokenizers (\(ids.count) vs \(corpus.n_tokens[i]) tokens)")
            }
            let decoded = tok.decode(ids)
            if fnv1a(decoded.utf8) != corpus.decoded_fnv[i] {
                ok = false
                Issue.record("\(name) \(label)[\(i)] decode differs: \(decoded.prefix(60).debugDescription)")
            }
            if !ok { failures += 1; if failures > 5 { break } }
        }
    }

    @Test(arguments: tokenizerNames)
    func gsm8kTestEncodesLikeTokenizers(_ name: String) throws {
        try check(name, try gsm8kTexts("test.jsonl", stride: 1), try TokenizerFixture.load(name).gsm8k_test, "gsm8k test")
    }

    @Test(arguments: tokenizerNames)
    func gsm8kTrainSampleEncodesLikeTokenizers(_ name: String) throws {
        try check(name, try gsm8kTexts("train.jsonl", stride: 15), try TokenizerFixture.load(name).gsm8k_train_every15,
                  "gsm8k train/15")
    }

    @Test func qwenRoundTripOnGSM8K() throws {
        let tok = try Loaded.tokenizer("qwen")
        for t in try gsm8kTexts("test.jsonl", stride: 1) {
            let nfc = t.precomposedStringWithCanonicalMapping
            #expect(tok.decode(tok.encode(t)) == nfc, "\(t.prefix(60).debugDescription)")
        }
    }
}
