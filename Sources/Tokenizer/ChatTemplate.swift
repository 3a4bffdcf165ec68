/// The `template` setting (config key `template`, CLI `--template`): how a (system, user) pair becomes the
/// prompt string. Decoded once (YAML/JSON/CLI); `ChatTemplate.resolve` turns it into a `ChatTemplate`.
public enum TemplateChoice: String, Codable, Sendable, CaseIterable {
    /// The model's own chat template (tokenizer_config.json / chat_template.jinja / GGUF `tokenizer.chat_template`),
    /// rendered natively (`ModelChatTemplate`); `raw` when the model has none.
    case auto
    /// rlif's fixed ChatML (`ChatTemplate.chatML`), whatever the model's own template says.
    case chatml
    /// `{system}\n\n{user}\n` (or `{user}\n`).
    case plain
    /// The text exactly as given; the tokenizer adds its BOS (if it has one) and nothing else.
    case raw

    public init(from decoder: Decoder) throws {
        let c = try decoder.singleValueContainer()
        let s = try c.decode(String.self)
        guard let v = TemplateChoice(rawValue: s.lowercased()) else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath,
                debugDescription: "unknown template '\(s)' (auto, chatml, plain or raw)"))
        }
        self = v
    }
}

/// How a (system, user) pair becomes the prompt string the model continues.
public enum ChatTemplate: Sendable, Equatable {
    /// rlif's fixed ChatML: `<|im_start|>system\n{system}<|im_end|>\n<|im_start|>user\n{user}<|im_end|>\n`
    /// `<|im_start|>assistant\n`. With `system == nil` the system block is left out (unlike Qwen2.5's and SmolLM2's
    /// own templates, which insert a default system message: use `template: auto` for those).
    case chatML
    /// No markup: `{system}\n\n{user}\n` (or `{user}\n`), for base models such as stories260K.
    case plain
    /// The user text exactly as given (no system prompt allowed: `PromptFormatter` refuses one). The tokenizer's
    /// post-processor adds BOS when the tokenizer has one, so `""` is BOS alone.
    case raw
    /// The model's own chat template (Qwen2.5 / SmolLM2 ChatML, Llama 3 / 3.1 / 3.2), recognised and rendered natively.
    case model(ModelChatTemplate)

    /// `choice` for a tokenizer: `auto` is the tokenizer's own chat template (`Tokenizer.chatTemplate`), or `raw`
    /// when it has none. Throws when the model's template is not one rlif can render (the error names it).
    public static func resolve(_ choice: TemplateChoice, tokenizer: Tokenizer,
                               today: String? = nil) throws(ChatTemplateError) -> ChatTemplate {
        switch choice {
        case .chatml: return .chatML
        case .plain: return .plain
        case .raw: return .raw
        case .auto:
            guard let t = tokenizer.chatTemplate else { return .raw }
            let bos = tokenizer.bosTokenId.flatMap { tokenizer.tokenString($0) }
            return .model(try ModelChatTemplate(t.text, source: t.source, bosToken: bos, today: today))
        }
    }

    /// The prompt, ending where the assistant's answer begins. `system == nil` means no system message (for
    /// `.model` templates with a default system message, that default); `""` is an empty system message.
    /// `.raw` ignores `system` (callers refuse a system prompt with it, see `acceptsSystemPrompt`).
    public func prompt(system: String?, user: String) -> String {
        switch self {
        case .chatML:
            var s = ""
            if let system { s += "<|im_start|>system\n\(system)<|im_end|>\n" }
            s += "<|im_start|>user\n\(user)<|im_end|>\n<|im_start|>assistant\n"
            return s
        case .plain:
            if let system { return "\(system)\n\n\(user)\n" }
            return "\(user)\n"
        case .raw:
            return user
        case .model(let m):
            return m.render(system: system, user: user)
        }
    }

    /// Whether the rendered prompt is tokenized with the tokenizer's special tokens (its post-processor, e.g. BOS).
    /// False for the model's own templates: like transformers' `apply_chat_template(tokenize=True)`, which encodes
    /// with `add_special_tokens=False` (a template that wants BOS writes `bos_token` itself, e.g. Llama 3).
    public var addsSpecialTokens: Bool {
        if case .model = self { return false }
        return true
    }

    /// False for `.raw` (the text exactly as given has no place for a system prompt).
    public var acceptsSystemPrompt: Bool { self != .raw }

    /// The string that ends an assistant turn (generation stops at its token), nil for `.plain` and `.raw`.
    public var endOfTurn: String? {
        switch self {
        case .chatML: return "<|im_end|>"
        case .plain, .raw: return nil
        case .model(let m): return m.endOfTurn
        }
    }

    /// A short name for messages: `chatml`, `plain`, `raw`, or the model template's description.
    public var name: String {
        switch self {
        case .chatML: return "chatml"
        case .plain: return "plain"
        case .raw: return "raw"
        case .model(let m): return m.description
        }
    }
}

/// Named system prompts.
public enum SystemPrompt {
    /// INTUITOR's math prompt as worded in the paper (arXiv 2505.19590), as given in the project brief.
    /// The official code's recipe (sunblaze-ucb/Intuitor, open-r1-intuitor/recipes/Qwen3-0.6B/intuitor/
    /// config_demo.yaml, `system_prompt`) words the last sentences differently: see `intuitorRecipe`.
    /// ("provided" [sic] is the original's spelling.)
    public static let math = "You are a helpful AI Assistant, designed to provided well-reasoned and detailed "
        + "responses. You FIRST think about the reasoning process step by step and then provide the user with the "
        + "answer. Please put your final answer within \\boxed{}."

    /// The `system_prompt` of the official open-r1-intuitor recipe (config_demo.yaml), verbatim.
    public static let intuitorRecipe = "You are a helpful AI Assistant, designed to provided well-reasoned and "
        + "detailed responses. You FIRST think about the reasoning process step by step and then provide the user "
        + "with the answer. Please enclose your final answer in the box: \\boxed{Your Answer}. Please stop "
        + "generation immediately after outputing the box."

    /// Qwen2.5's default system prompt (what its chat template inserts when there is no system message).
    public static let qwenDefault = "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."

    /// All named prompts, by the names `named(_:)` accepts.
    public static let all: [String: String] = [
        "math": math, "intuitor-recipe": intuitorRecipe, "qwen-default": qwenDefault, "none": "",
    ]

    /// The prompt called `name` (`math`, `intuitor-recipe`, `qwen-default`), nil for unknown names and for
    /// `none` (meaning: no system message).
    public static func named(_ name: String) -> String? {
        guard let p = all[name], !p.isEmpty else { return nil }
        return p
    }
}
