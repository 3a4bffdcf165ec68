import ArgumentParser
import Foundation
import Tokenizer
import Training

/// `rlif template`: the exact prompt a model is given for a (system, user) pair, and its token ids.
struct TemplateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "template",
        abstract: "Print the rendered prompt exactly as the model gets it (with --json also its token ids).",
        discussion: """
            The template is chosen like everywhere else (--template auto: the model's own chat template, raw when it has
            none). The text is written without an added newline. Examples:
              rlif template --model runs/qwen --user 'What is 2+2?'
              rlif template --model runs/qwen --system math --user 'What is 2+2?' --json
            """)

    @Option(help: "Model directory (its tokenizer.json, tokenizer_config.json / chat_template.jinja) or .gguf file.") var model: String
    @Option(help: "tokenizer.json to use instead of the model's.") var tokenizer: String?
    @Option(help: "auto, chatml, plain or raw.") var template: TemplateChoice = .auto
    @Option(help: "The user message.") var user: String
    @Option(help: "System prompt: a name (\(SystemPrompt.all.keys.sorted().joined(separator: ", "))) or literal text; none by default.")
    var system: String = "none"
    @Flag(help: "Print JSON: {\"template\", \"source\", \"text\", \"ids\", \"tokens\", \"add_special_tokens\"}.") var json = false

    func run() throws {
        guard let tok = try ModelFiles.loadTokenizer(model: model, override: tokenizer) else {
            throw ValidationError("\(model) has no tokenizer.json (give --tokenizer FILE)")
        }
        let f = try PromptFormatter(tokenizer: tok, template: template, systemPrompt: system, source: "command line")
        let text = f.text(user)
        FileHandle.standardError.write(Data("template: \(f.template.name)\(sourceNote(f))\n".utf8))
        if json {
            let ids = f.encode(user)
            var source: Any = NSNull()
            if case .model(let m) = f.template { source = m.source }
            print(try jsonLine(["template": f.template.name, "source": source, "text": text, "ids": ids.map(Int.init),
                                "tokens": ids.map { f.tokenizer.tokenString($0) ?? "" },
                                "add_special_tokens": f.template.addsSpecialTokens] as [String: Any]))
        } else {
            FileHandle.standardOutput.write(Data(text.utf8))
        }
    }

    private func sourceNote(_ f: PromptFormatter) -> String {
        if case .model(let m) = f.template { return " (from \(m.source))" }
        if template == .auto { return " (the model has no chat template)" }
        return ""
    }
}
