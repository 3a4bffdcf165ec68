import Foundation
import Testing
import TestSupport
@testable import Tokenizer

/// Tests/Fixtures/templates/chat_templates.json (scripts/ref/template_fixtures.py): real chat templates and the
/// strings transformers' apply_chat_template renders for them.
struct TemplateFixture: Decodable {
    struct Conversation: Decodable { var system: String?; var user: String }
    struct Entry: Decodable {
        var name: String
        var source: String
        var template: String
        var bos_token: String?
        var rendered: [String]
        var ids: [[Int32]]?
        var date_string: String?
    }
    struct Unsupported: Decodable { var name: String; var template: String }
    var conversations: [Conversation]
    var templates: [Entry]
    var unsupported: [Unsupported]

    static let shared: TemplateFixture? = {
        guard let data = try? Data(contentsOf: Fixtures.url("templates/chat_templates.json")) else { return nil }
        return try? JSONDecoder().decode(TemplateFixture.self, from: data)
    }()
    static func load() throws -> TemplateFixture { try #require(shared, "Tests/Fixtures/templates/chat_templates.json") }
    static func entry(_ name: String) throws -> Entry { try #require(try load().templates.first { $0.name == name }, "\(name)") }
}

@Suite struct ModelChatTemplateTests {
    static let names = ["qwen2.5-0.5b", "qwen2.5-1.5b", "smollm2", "llama3", "llama3.1", "llama3.2"]

    /// String-equal to transformers for every conversation (with/without system, empty system, whitespace to trim,
    /// special-token text, empty user).
    @Test(arguments: names)
    func rendersLikeTransformers(_ name: String) throws {
        let fx = try TemplateFixture.load()
        let e = try TemplateFixture.entry(name)
        let t = try ModelChatTemplate(e.template, source: e.source, bosToken: e.bos_token, today: e.date_string)
        #expect(fx.conversations.count == e.rendered.count && e.rendered.count >= 10)
        for (i, c) in fx.conversations.enumerated() {
            let got = ChatTemplate.model(t).prompt(system: c.system, user: c.user)
            #expect(got == e.rendered[i], "\(name) conversation \(i): got \(got.debugDescription)\nwant \(e.rendered[i].debugDescription)")
        }
    }

    /// What was recognised in each template: the family, Qwen's and SmolLM2's default system messages, the Llama date.
    @Test func familiesAndDefaults() throws {
        func family(_ name: String) throws -> ModelChatTemplate.Family {
            let e = try TemplateFixture.entry(name)
            return try ModelChatTemplate(e.template, source: e.source, bosToken: e.bos_token, today: e.date_string).family
        }
        #expect(try family("qwen2.5-0.5b") == .chatML(defaultSystem: SystemPrompt.qwenDefault))
        #expect(try family("qwen2.5-1.5b") == .chatML(defaultSystem: SystemPrompt.qwenDefault))
        #expect(try family("smollm2") == .chatML(defaultSystem: "You are a helpful AI assistant named SmolLM, trained by Hugging Face"))
        #expect(try family("llama3") == .llama3(bos: "<|begin_of_text|>", trim: true, knowledge: nil, date: nil))
        #expect(try family("llama3.1") == .llama3(bos: "<|begin_of_text|>", trim: true,
                                                  knowledge: "Cutting Knowledge Date: December 2023\n", date: "26 Jul 2024"))
        // Llama 3.2 takes today's date (strftime_now) when none is given.
        let e = try TemplateFixture.entry("llama3.2")
        let today = try ModelChatTemplate(e.template, source: e.source, bosToken: e.bos_token)
        guard case .llama3(_, _, _, let date?) = today.family else { Issue.record("no date"); return }
        #expect(date == ModelChatTemplate.todayString() && date.count == 11)
        #expect(ChatTemplate.model(today).endOfTurn == "<|eot_id|>")
        #expect(ChatTemplate.model(try ModelChatTemplate(try TemplateFixture.entry("smollm2").template, source: "s",
                                                         bosToken: nil)).endOfTurn == "<|im_end|>")
    }

    /// Templates rlif cannot render natively are refused with an error naming the source and suggesting the fixed
    /// templates; so is a Llama 3 template when the tokenizer has no BOS to write.
    @Test func unsupportedTemplatesAreClearErrors() throws {
        let fx = try TemplateFixture.load()
        #expect(fx.unsupported.count >= 3)
        for u in fx.unsupported {
            do {
                _ = try ModelChatTemplate(u.template, source: "dir/tokenizer_config.json chat_template", bosToken: "<s>")
                Issue.record("\(u.name) accepted")
            } catch {
                let d = error.description
                #expect(d.contains("dir/tokenizer_config.json chat_template") && d.contains("template: chatml`, `plain` or `raw`"), "\(d)")
            }
        }
        #expect(throws: ChatTemplateError.self) {
            _ = try ModelChatTemplate(try TemplateFixture.entry("llama3").template, source: "x", bosToken: nil)
        }
        #expect(throws: ChatTemplateError.self) { _ = try ModelChatTemplate("{{ 'unterminated }}", source: "x", bosToken: nil) }
        #expect(throws: ChatTemplateError.self) { _ = try ModelChatTemplate("{% if x %}", source: "x", bosToken: nil) }
        #expect(throws: ChatTemplateError.self) { _ = try ModelChatTemplate("", source: "x", bosToken: nil) }
    }

    /// The lexer: whitespace control, trim_blocks / lstrip_blocks (transformers' settings), comments, escapes.
    @Test func jinjaScan() throws {
        // jinja2 (trim_blocks, lstrip_blocks) renders the same template as "    xa\nbéend".
        let s = try JinjaScan("  {%- if a %}\n    x {{- 'a\\nb\\u00e9' -}}  \n  {# '<|c|>' #}\n  {% set d = \"q\\\"\" %}\nend{% endif %}")
        #expect(s.literals == ["    x", "a\nb\u{e9}", "q\"", "end"])
        #expect(s.identifiers == ["if", "a", "set", "d", "endif"])
        #expect(s.stringAssigned(to: "d") == "q\"")
    }

    /// Python's str.strip (Jinja trim) removes Unicode whitespace and U+001C-U+001F, not U+200B.
    @Test func pythonStripMatchesPython() {
        #expect(pythonStrip(" \t\n\u{0B}\u{0C}\r\u{1C}\u{1F}\u{85}\u{A0}\u{3000}x y\u{2028}\u{2029}\u{202F}") == "x y")
        #expect(pythonStrip("\u{200B}x\u{200B}") == "\u{200B}x\u{200B}")
        #expect(pythonStrip("   ") == "")
    }

    /// The rendered Qwen prompts tokenize (add_special_tokens=False) to the ids transformers' GGUF tokenizer gives
    /// (../shared/data/qwen-tokenizer encodes like the Qwen GGUFs).
    @Test(.enabled(if: Fixtures.shared("qwen-tokenizer/tokenizer.json") != nil, "needs ../shared/data/qwen-tokenizer"))
    func qwenPromptIdsMatchTransformers() throws {
        let tok = try Tokenizer(contentsOf: try #require(Fixtures.shared("qwen-tokenizer/tokenizer.json")))
        for name in ["qwen2.5-0.5b", "qwen2.5-1.5b"] {
            let e = try TemplateFixture.entry(name)
            let ids = try #require(e.ids)
            for (i, r) in e.rendered.enumerated() {
                #expect(tok.encode(r, addSpecialTokens: false) == ids[i], "\(name) conversation \(i)")
            }
        }
    }
}

/// Where `auto` finds the template: chat_template.jinja, else tokenizer_config.json (string or named list).
@Suite struct ChatTemplateSourceTests {
    /// A model directory with the default model's tokenizer.json and the given extra files.
    func modelDir(_ files: [String: String]) throws -> URL {
        let dir = try Fixtures.temporaryDirectory("rlif-template")
        let tokenizer = Fixtures.repoRoot.appendingPathComponent("Sources/rlif/Resources/default/model/tokenizer.json")
        try FileManager.default.copyItem(at: tokenizer, to: dir.appendingPathComponent("tokenizer.json"))
        for (name, text) in files { try Data(text.utf8).write(to: dir.appendingPathComponent(name)) }
        return dir
    }

    func json(_ obj: Any) throws -> String {
        String(decoding: try JSONSerialization.data(withJSONObject: obj), as: UTF8.self)
    }

    @Test func autoReadsTheModelsTemplate() throws {
        let smol = try TemplateFixture.entry("smollm2")
        let llama = try TemplateFixture.entry("llama3.1")
        // tokenizer_config.json, string form.
        var dir = try modelDir(["tokenizer_config.json": try json(["chat_template": smol.template, "eos_token": "</s>"])])
        var tok = try Tokenizer(contentsOf: dir.appendingPathComponent("tokenizer.json"))
        #expect(tok.chatTemplate?.source == dir.appendingPathComponent("tokenizer_config.json").path + " chat_template")
        var t = try ChatTemplate.resolve(.auto, tokenizer: tok)
        #expect(t.prompt(system: nil, user: "What is 2+2?") == smol.rendered[0])
        #expect(!t.addsSpecialTokens && t.endOfTurn == "<|im_end|>")
        #expect(try ChatTemplate.resolve(.chatml, tokenizer: tok) == .chatML)
        #expect(try ChatTemplate.resolve(.raw, tokenizer: tok) == .raw)
        try? FileManager.default.removeItem(at: dir)

        // List form: the entry named "default"; chat_template.jinja wins over tokenizer_config.json.
        dir = try modelDir(["tokenizer_config.json": try json(["bos_token": "<|endoftext|>", "chat_template": [
            ["name": "tool_use", "template": "{{ nonsense }}"], ["name": "default", "template": smol.template]]])])
        tok = try Tokenizer(contentsOf: dir.appendingPathComponent("tokenizer.json"))
        #expect(tok.chatTemplate?.text == smol.template)
        try Data(llama.template.utf8).write(to: dir.appendingPathComponent("chat_template.jinja"))
        tok = try Tokenizer(contentsOf: dir.appendingPathComponent("tokenizer.json"))
        #expect(tok.chatTemplate?.source == dir.appendingPathComponent("chat_template.jinja").path)
        t = try ChatTemplate.resolve(.auto, tokenizer: tok)
        // The template writes bos_token: the tokenizer's BOS string (bos_token of tokenizer_config.json here).
        #expect(t.prompt(system: nil, user: "What is 2+2?")
                == llama.rendered[0].replacingOccurrences(of: "<|begin_of_text|>", with: "<|endoftext|>"))
        try? FileManager.default.removeItem(at: dir)
    }

    @Test func autoWithoutTemplateIsRawAndUnsupportedIsAnError() throws {
        var dir = try modelDir([:])
        let tok = try Tokenizer(contentsOf: dir.appendingPathComponent("tokenizer.json"))
        #expect(tok.chatTemplate == nil)
        #expect(try ChatTemplate.resolve(.auto, tokenizer: tok) == .raw)
        #expect(ChatTemplate.raw.prompt(system: nil, user: " x\n") == " x\n" && ChatTemplate.raw.addsSpecialTokens)
        #expect(ChatTemplate.raw.endOfTurn == nil && !ChatTemplate.raw.acceptsSystemPrompt)
        try? FileManager.default.removeItem(at: dir)

        let gemma = try #require(try TemplateFixture.load().unsupported.first { $0.name == "gemma" })
        dir = try modelDir(["tokenizer_config.json": try json(["chat_template": gemma.template])])
        let g = try Tokenizer(contentsOf: dir.appendingPathComponent("tokenizer.json"))
        do {
            _ = try ChatTemplate.resolve(.auto, tokenizer: g)
            Issue.record("gemma accepted")
        } catch {
            #expect(error.description.contains("tokenizer_config.json chat_template"))
        }
        #expect(try ChatTemplate.resolve(.plain, tokenizer: g) == .plain)
        try? FileManager.default.removeItem(at: dir)
    }
}
