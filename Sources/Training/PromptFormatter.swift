import Tokenizer
import Sampling

/// Turns a dataset prompt into model tokens: chat template (ChatML or plain), optional system prompt, then the
/// tokenizer. Also knows which token ids end a completion.
public struct PromptFormatter: Sendable {
    public let tokenizer: Tokenizer
    public let template: ChatTemplate
    public let systemPrompt: String?

    /// `systemPrompt`: a name from `SystemPrompt.named` ("math", ...), "none", or literal text.
    public init(tokenizer: Tokenizer, template: String, systemPrompt: String) throws {
        self.tokenizer = tokenizer
        guard let t = ChatTemplate.allCases.first(where: { $0.rawValue.lowercased() == template.lowercased() }) else {
            throw ConfigError(source: "config", key: "template", message: "unknown template '\(template)' (chatml, plain)")
        }
        self.template = t
        if systemPrompt == "none" || systemPrompt.isEmpty { self.systemPrompt = nil }
        else { self.systemPrompt = SystemPrompt.named(systemPrompt) ?? systemPrompt }
    }

    public func text(_ user: String) -> String { template.prompt(system: systemPrompt, user: user) }

    public func encode(_ user: String) -> [Int32] { tokenizer.encode(text(user), addSpecialTokens: true) }

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
