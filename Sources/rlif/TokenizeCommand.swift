import ArgumentParser
import Foundation
import Tokenizer

/// `rlif tokenize`: encode text to token ids (or decode ids to text) with a Hugging Face `tokenizer.json`,
/// exactly as the `tokenizers` library would; for checking prompts and debugging.
struct TokenizeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tokenize",
        abstract: "Encode text to token ids, or decode ids to text, with a tokenizer.json.",
        discussion: """
            Examples:
              rlif tokenize --tokenizer ../shared/data/qwen-tokenizer/tokenizer.json --text 'Hello world'
              rlif tokenize --tokenizer tokenizer.json --decode 9707,1879
              rlif tokenize --tokenizer tokenizer.json --chat-ml --system-prompt math --text 'What is 2+2?'
            """)

    @Option(help: "Path to tokenizer.json (tokenizer_config.json next to it is read for BOS/EOS).")
    var tokenizer: String

    @Option(help: "Text to encode.")
    var text: String?

    @Option(help: "Comma-separated token ids to decode instead of encoding.")
    var decode: String?

    @Flag(help: "Apply the post-processor template (e.g. prepend BOS), like add_special_tokens=True.")
    var addSpecialTokens = false

    @Flag(help: "When decoding, drop special tokens.")
    var skipSpecialTokens = false

    @Flag(help: "Wrap --text in the ChatML prompt template (with the assistant generation prompt).")
    var chatML = false

    @Option(help: "Named system prompt for --chat-ml: \(SystemPrompt.all.keys.sorted().joined(separator: ", ")).")
    var systemPrompt: String?

    @Flag(help: "Print JSON: {\"ids\": [...], \"tokens\": [...]} or {\"text\": ...}.")
    var json = false

    mutating func validate() throws {
        if (text == nil) == (decode == nil) { throw ValidationError("give exactly one of --text or --decode") }
        if let s = systemPrompt, SystemPrompt.all[s] == nil {
            throw ValidationError("unknown --system-prompt \(s); known: \(SystemPrompt.all.keys.sorted())")
        }
    }

    func run() throws {
        let tok = try Tokenizer(contentsOf: URL(fileURLWithPath: tokenizer))
        if let decode {
            var ids: [Int32] = []
            for part in decode.split(separator: ",") {
                let t = part.trimmingCharacters(in: .whitespaces)
                guard let v = Int32(t) else { throw ValidationError("--decode: \(t.debugDescription) is not a token id") }
                ids.append(v)
            }
            let s = tok.decode(ids, skipSpecialTokens: skipSpecialTokens)
            if json {
                print(try jsonString(["text": s]))
            } else {
                print(s)
            }
            return
        }
        var input = text ?? ""
        if chatML {
            input = ChatTemplate.chatML.prompt(system: systemPrompt.flatMap(SystemPrompt.named), user: input)
        }
        let ids = tok.encode(input, addSpecialTokens: addSpecialTokens)
        if json {
            let tokens = ids.map { tok.tokenString($0) ?? "" }
            print(try jsonString(["ids": ids.map(Int.init), "tokens": tokens] as [String: Any]))
        } else {
            print(ids.map(String.init).joined(separator: " "))
        }
    }

    private func jsonString(_ obj: Any) throws -> String {
        let data = try JSONSerialization.data(withJSONObject: obj, options: [.sortedKeys, .withoutEscapingSlashes])
        return String(decoding: data, as: UTF8.self)
    }
}
