import Foundation
import Model
import Testing
import TestSupport
import Tokenizer
@testable import Training

/// The `raw` template (and `auto` on a model without a chat template) against transformers on stories260K:
/// Tests/Fixtures/templates/stories260K-raw.json (scripts/ref/template_fixtures.py).
@Suite(.enabled(if: Fixtures.shared("stories260K") != nil, "needs ../shared/data/stories260K"))
struct RawPromptTests {
    struct Case: Decodable { var prompt: String; var prompt_ids: [Int32]; var generated: [Int32]; var text: String }
    struct File: Decodable { var cases: [Case] }

    /// `tokenizer(prompt)` then greedy: "Once upon a time" continues ", there was a little girl named Lily…" (not
    /// plain's "\n"-appended prompt) and "" starts from BOS alone.
    @Test func rawPromptContinuesLikeTransformers() throws {
        let dir = try #require(Fixtures.shared("stories260K"))
        let fx = try JSONDecoder().decode(File.self, from: Data(contentsOf: Fixtures.url("templates/stories260K-raw.json")))
        let tok = try Tokenizer(contentsOf: dir.appendingPathComponent("tokenizer.json"))
        let f = try PromptFormatter(tokenizer: tok, template: .auto, systemPrompt: "none")
        #expect(f.template == .raw, "stories260K has no chat template: auto is raw")
        let model = try Transformer.load(directory: dir)
        #expect(fx.cases.map(\.prompt) == ["Once upon a time", ""])
        for c in fx.cases {
            #expect(f.text(c.prompt) == c.prompt)
            let ids = f.encode(c.prompt)
            #expect(ids == c.prompt_ids, "\(c.prompt.debugDescription)")
            let got = try model.greedy(prompt: ids, maxNewTokens: c.generated.count)
            #expect(got == c.generated, "\(c.prompt.debugDescription): \(tok.decode(got).debugDescription)")
            #expect(tok.decode(got) == c.text)
        }
        #expect(fx.cases[0].text.hasPrefix(", there was a little girl named Lily"))
        #expect(fx.cases[1].prompt_ids == [1])
    }

    /// raw has no place for a system prompt: a clear error naming the template key, also when auto means raw.
    @Test func rawRefusesASystemPrompt() throws {
        let tok = try Tokenizer(contentsOf: try #require(Fixtures.shared("stories260K/tokenizer.json")))
        for choice in [TemplateChoice.raw, .auto] {
            do {
                _ = try PromptFormatter(tokenizer: tok, template: choice, systemPrompt: "math")
                Issue.record("\(choice) accepted a system prompt")
            } catch let e as ConfigError {
                #expect(e.key == "template" && e.message.contains("system_prompt: none"), "\(e)")
            }
        }
        let plain = try PromptFormatter(tokenizer: tok, template: .plain, systemPrompt: "math")
        #expect(plain.encode("x") == tok.encode(SystemPrompt.math + "\n\nx\n", addSpecialTokens: true))
    }
}
