import Foundation
import Testing
import TestSupport
@testable import Tokenizer

/// The hand-written scanners against `tokenizers`' own `Split(Regex(p), "isolated")` (Oniguruma) for the
/// Qwen2, Llama-3 and GPT-2 pre-tokenizer regexes (fixture from scripts/ref/tokenizer_fixtures.py).
@Suite struct SplitScannerTests {
    struct ScannerFixture: Decodable {
        struct Pattern: Decodable {
            var pattern: String
            var pieces: [[String]]
        }
        var texts: [String]
        var patterns: [String: Pattern]
    }

    static func load() throws -> ScannerFixture {
        try JSONDecoder().decode(ScannerFixture.self, from: Data(contentsOf: Fixtures.url("tokenizer/scanners.json")))
    }

    func pieces(_ pattern: SplitPattern, _ text: String) -> [String] {
        let bytes = Array(text.utf8)
        var ranges: [Range<Int>] = []
        var scratch = SplitScratch()
        bytes.withUnsafeBufferPointer { pattern.matches($0, 0, bytes.count, into: &ranges, scratch: &scratch) }
        return ranges.map { String(decoding: bytes[$0], as: UTF8.self) }
    }

    @Test(arguments: ["qwen2", "llama3", "gpt2"])
    func scannerMatchesOniguruma(_ name: String) throws {
        let fx = try Self.load()
        let p = try #require(fx.patterns[name])
        let scanner = try #require(SplitScanner(pattern: p.pattern), "\(name): pattern not recognised")
        var failures = 0
        for (i, t) in fx.texts.enumerated() {
            let got = pieces(.scanner(scanner), t)
            if got != p.pieces[i] {
                failures += 1
                Issue.record("\(name) text[\(i)] \(t.prefix(50).debugDescription): \(got.prefix(20)) expected \(p.pieces[i].prefix(20))")
                if failures > 5 { break }
            }
        }
    }

    /// Unknown patterns use NSRegularExpression (ICU); on these regexes it agrees with Oniguruma on ASCII text.
    @Test(arguments: ["qwen2", "llama3", "gpt2"])
    func regexFallbackAgreesOnASCII(_ name: String) throws {
        let fx = try Self.load()
        let p = try #require(fx.patterns[name])
        let re = SplitPattern.regex(try NSRegularExpression(pattern: p.pattern))
        for (i, t) in fx.texts.enumerated() where t.unicodeScalars.allSatisfy({ $0.isASCII }) {
            #expect(pieces(re, t) == p.pieces[i], "\(name) text[\(i)] \(t.prefix(50).debugDescription)")
        }
    }
}
