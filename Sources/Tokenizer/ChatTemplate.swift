/// How a (system, user) pair becomes the prompt string the model continues.
public enum ChatTemplate: String, Sendable, CaseIterable {
    /// Qwen2 / ChatML, as transformers' Qwen2 chat template with `add_generation_prompt=True`:
    /// `<|im_start|>system\n{system}<|im_end|>\n<|im_start|>user\n{user}<|im_end|>\n<|im_start|>assistant\n`.
    /// With `system == nil` the system block is left out (Qwen2.5's own template would insert its default
    /// "You are Qwen, created by Alibaba Cloud..." prompt instead; pass that text explicitly to get it).
    case chatML
    /// No markup: `{system}\n\n{user}\n` (or `{user}\n`), for base models such as stories260K.
    case plain

    /// The prompt, ending where the assistant's answer begins.
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
        }
    }

    /// The string that ends an assistant turn (generation stops at its token), nil for `.plain`.
    public var endOfTurn: String? {
        switch self {
        case .chatML: return "<|im_end|>"
        case .plain: return nil
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
