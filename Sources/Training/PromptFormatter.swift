import Tokenizer
import Sampling

/// Turns a dataset prompt into model tokens: the chat template (`template` setting resolved for the tokenizer:
/// the model's own, rlif's ChatML, plain or raw), optional system prompt, then the tokenizer. Also knows which token
/// ids end a completion.
public struct PromptFormatter: Sendable {
    public let tokenizer: Tokenizer
    public let template: ChatTemplate
    public let systemPrompt: String?

    /// `systemPrompt`: a name from `SystemPrompt.named` ("math", ...), "none", or literal text. Errors (a model
    /// template rlif cannot render, a system prompt with `raw`) name the `template` key.
    public init(tokenizer: Tokenizer, template choice: TemplateChoice, systemPrompt: String,
                source: String = "config") throws {
        self.tokenizer = tokenizer
        let t: ChatTemplate
        do { t = try ChatTemplate.resolve(choice, tokenizer: tokenizer) } catch {
            throw ConfigError(source: source, key: "template", message: "auto: \(error)")
        }
        self.template = t
        if systemPrompt == "none" || systemPrompt.isEmpty { self.systemPrompt = nil }
        else { self.systemPrompt = SystemPrompt.named(systemPrompt) ?? systemPrompt }
        if self.systemPrompt != nil && !t.acceptsSystemPrompt {
            let why = choice == .auto ? "\(tokenizer.file) has no chat template, so template auto is raw, which"
                                      : "template raw"
            throw ConfigError(source: source, key: "template",
                              message: "\(why) passes the text exactly as given and has no place for the system prompt "
                                + "'\(systemPrompt.prefix(40))': set system_prompt: none, or template: plain or chatml")
        }
    }

    public func text(_ user: String) -> String { template.prompt(system: systemPrompt, user: user) }

    /// The prompt's token ids: the tokenizer's special tokens (BOS) are added for chatml/plain/raw, not for the
    /// model's own template (which writes BOS itself when it wants one), as transformers' apply_chat_template.
    public func encode(_ user: String) -> [Int32] {
        tokenizer.encode(text(user), addSpecialTokens: template.addsSpecialTokens)
    }

    /// EOS (from the model config and the tokenizer) plus the template's end-of-turn token.
    /// The token-id sequences of `stop` strings (no special tokens added). Each must be
    /// 1…`SamplingParameters.maxStopSequenceTokens` tokens.
    public func stopSequences(_ stop: [String]) throws -> [[Int32]] {
        let most = SamplingParameters.maxStopSequenceTokens
        return try stop.map { text in
            let ids = tokenizer.encode(text, addSpecialTokens: false)
            guard (1...most).contains(ids.count) else {
                throw ConfigError(source: "config", key: "stop", message: "\(String(reflecting: text)) is \(ids.count) tokens, must be 1-\(most)")
            }
            return ids
        }
    }

    public func stopTokens(modelEOS: [Int]) -> Set<Int32> {
        var s = Set(modelEOS.map(Int32.init))
        if let e = tokenizer.eosTokenId { s.insert(e) }
        if let eot = template.endOfTurn, let id = tokenizer.tokenId(eot) { s.insert(id) }
        return s
    }
}
