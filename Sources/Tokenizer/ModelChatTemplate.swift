import Foundation

/// A model's own Jinja chat template, recognised and rendered natively for the conversations rlif builds (an optional
/// system message, one user message, the generation prompt): string-equal to transformers'
/// `apply_chat_template(messages, tokenize=False, add_generation_prompt=True)` (tests: `ModelChatTemplateTests`
/// against Tests/Fixtures/templates/chat_templates.json, written by scripts/ref/template_fixtures.py).
///
/// There is no Jinja engine here. How a template is recognised: it is lexed like Jinja does it (`JinjaScan`: tags,
/// comments, whitespace control, transformers' trim_blocks/lstrip_blocks) into its string literals (decoded, plus the
/// text between tags) and the identifiers it uses; then a family is chosen by characteristic markers, and the parts
/// that vary between models are read out of the literals:
/// - **ChatML** (Qwen2.5, SmolLM2, Qwen2): literals `<|im_start|>` and `<|im_end|>`, and the generation prompt exactly
///   `<|im_start|>assistant\n` (no literal that extends it, e.g. a pre-filled answer). The default system message is
///   the body of the one whole literal `<|im_start|>system\n…<|im_end|>\n` (Qwen2.5's "You are Qwen, created by
///   Alibaba Cloud…", SmolLM2's "You are a helpful AI assistant named SmolLM…"); none such literal = no default.
///   Refused when it uses what this rendering does not model: `bos_token`, `trim`/`strip`, `strftime_now`,
///   `enable_thinking` (Qwen3), `<think>`.
/// - **Llama 3** (3.0, 3.1, 3.2): literals `<|start_header_id|>`, `<|eot_id|>` and the generation prompt exactly
///   `<|start_header_id|>assistant<|end_header_id|>\n\n`; `bos_token` first when the template uses it; contents
///   trimmed (Python `str.strip`) when it uses `trim`. With a literal starting "Cutting Knowledge Date:" (3.1/3.2) a
///   system block is always written: that literal, "Today Date: " + the date + "\n\n", then the system message (empty
///   when none). The date is `set date_string = "…"` of the template (3.1: "26 Jul 2024"), or today's ("%d %b %Y",
///   local time, as transformers' `strftime_now`) when the template calls `strftime_now` (3.2), unless `today` is
///   given. 3.0 writes the system block only for a system message.
/// Anything else is a `ChatTemplateError` naming the template and where it came from.
public struct ModelChatTemplate: Sendable, Equatable, CustomStringConvertible {
    public enum Family: Sendable, Equatable {
        /// `<|im_start|>{role}\n{content}<|im_end|>\n` per message; `defaultSystem` when there is no system message.
        case chatML(defaultSystem: String?)
        /// `<|start_header_id|>{role}<|end_header_id|>\n\n{content}<|eot_id|>`; `knowledge` is the 3.1+ always-present
        /// system preamble ("Cutting Knowledge Date: …\n") with its `date` (nil for 3.0).
        case llama3(bos: String?, trim: Bool, knowledge: String?, date: String?)
    }

    public let family: Family
    /// Where the template text came from (file and key), for messages.
    public let source: String

    /// Recognises `template` (see the type's documentation). `bosToken` is the tokenizer's BOS string (Llama 3 writes
    /// it); `today` overrides the date of templates that use today's date (tests; `date_string` of transformers).
    public init(_ template: String, source: String, bosToken: String?, today: String? = nil) throws(ChatTemplateError) {
        self.source = source
        let scan: JinjaScan
        do { scan = try JinjaScan(template) } catch {
            throw ChatTemplateError(source: source, template: template, reason: "not a valid Jinja template: \(error.reason)")
        }
        func refuse(_ reason: String) -> ChatTemplateError {
            ChatTemplateError(source: source, template: template, reason: reason)
        }
        let lits = scan.literals
        func has(_ s: String) -> Bool { lits.contains { $0.contains(s) } }

        if has("<|im_start|>") && has("<|im_end|>") {
            let gen = "<|im_start|>assistant\n"
            guard lits.contains(gen) else { throw refuse("ChatML without the generation prompt literal \(gen.debugDescription)") }
            if let odd = lits.first(where: { $0.hasPrefix(gen) && $0 != gen }) {
                throw refuse("ChatML generation prompt extended to \(odd.debugDescription)")
            }
            for name in ["bos_token", "trim", "strip", "strftime_now", "enable_thinking"] where scan.identifiers.contains(name) {
                throw refuse("ChatML template uses `\(name)`, which rlif's native rendering does not model")
            }
            if has("<think>") { throw refuse("ChatML template with <think> handling (Qwen3-style)") }
            let head = "<|im_start|>system\n", tail = "<|im_end|>\n"
            var defaults = Set<String>()
            for l in lits where l.hasPrefix(head) && l.hasSuffix(tail) && l.count >= head.count + tail.count {
                let body = String(l.dropFirst(head.count).dropLast(tail.count))
                if !body.contains("<|") { defaults.insert(body) }
            }
            guard defaults.count <= 1 else { throw refuse("ChatML template with \(defaults.count) different default system messages") }
            self.family = .chatML(defaultSystem: defaults.first)
        } else if has("<|start_header_id|>") && has("<|eot_id|>") {
            let gen = "<|start_header_id|>assistant<|end_header_id|>\n\n"
            guard lits.contains(gen) || lits.contains(where: { $0.hasSuffix(gen) }) else {
                throw refuse("Llama 3 template without the generation prompt literal \(gen.debugDescription)")
            }
            if let odd = lits.first(where: { $0.hasPrefix(gen) && $0 != gen }) {
                throw refuse("Llama 3 generation prompt extended to \(odd.debugDescription)")
            }
            var bos: String? = nil
            if scan.identifiers.contains("bos_token") {
                guard let b = bosToken else { throw refuse("the template writes bos_token but the tokenizer has no BOS token") }
                bos = b
            }
            let trim = scan.identifiers.contains("trim")
            if let knowledge = lits.first(where: { $0.hasPrefix("Cutting Knowledge Date:") }) {
                guard lits.contains("Today Date: ") else { throw refuse("Llama 3.1-style template without \"Today Date: \"") }
                let date: String
                if let t = today {
                    date = t
                } else if scan.identifiers.contains("strftime_now") {
                    date = ModelChatTemplate.todayString()
                } else if let d = scan.stringAssigned(to: "date_string") {
                    date = d
                } else {
                    throw refuse("Llama 3.1-style template without a date_string default or strftime_now")
                }
                self.family = .llama3(bos: bos, trim: trim, knowledge: knowledge, date: date)
            } else {
                self.family = .llama3(bos: bos, trim: trim, knowledge: nil, date: nil)
            }
        } else {
            throw refuse("neither ChatML (<|im_start|>/<|im_end|>) nor Llama 3 (<|start_header_id|>/<|eot_id|>) markers")
        }
    }

    /// The prompt string (see `ChatTemplate.prompt`).
    public func render(system: String?, user: String) -> String {
        switch family {
        case .chatML(let defaultSystem):
            var s = ""
            if let sys = system ?? defaultSystem { s += "<|im_start|>system\n\(sys)<|im_end|>\n" }
            s += "<|im_start|>user\n\(user)<|im_end|>\n<|im_start|>assistant\n"
            return s
        case .llama3(let bos, let trim, let knowledge, let date):
            func content(_ t: String) -> String { trim ? pythonStrip(t) : t }
            func block(_ role: String, _ body: String) -> String {
                "<|start_header_id|>\(role)<|end_header_id|>\n\n\(body)<|eot_id|>"
            }
            var s = bos ?? ""
            if let knowledge, let date {
                s += block("system", knowledge + "Today Date: \(date)\n\n" + content(system ?? ""))
            } else if let system {
                s += block("system", content(system))
            }
            s += block("user", content(user))
            s += "<|start_header_id|>assistant<|end_header_id|>\n\n"
            return s
        }
    }

    /// The token that ends an assistant turn.
    public var endOfTurn: String {
        switch family {
        case .chatML: return "<|im_end|>"
        case .llama3: return "<|eot_id|>"
        }
    }

    public var description: String {
        switch family {
        case .chatML(let d): return d == nil ? "ChatML" : "ChatML with a default system message"
        case .llama3(_, _, let k, let date): return k == nil ? "Llama 3" : "Llama 3.1 (date \(date ?? "-"))"
        }
    }

    /// Today as Python's `strftime("%d %b %Y")` in the local time zone (e.g. "02 Dec 2026").
    static func todayString() -> String {
        let f = DateFormatter()
        f.locale = Locale(identifier: "en_US_POSIX")
        f.timeZone = .current
        f.dateFormat = "dd MMM yyyy"
        return f.string(from: Date())
    }
}

/// Python's `str.strip()` (Jinja's `trim` filter): removes leading and trailing characters for which `str.isspace()`
/// is true (Unicode White_Space plus the ASCII separators U+001C-U+001F).
func pythonStrip(_ s: String) -> String {
    func isSpace(_ u: Unicode.Scalar) -> Bool {
        switch u.value {
        case 0x09...0x0D, 0x1C...0x20, 0x85, 0xA0, 0x1680, 0x2000...0x200A, 0x2028, 0x2029, 0x202F, 0x205F, 0x3000:
            return true
        default: return false
        }
    }
    let scalars = s.unicodeScalars
    guard let first = scalars.firstIndex(where: { !isSpace($0) }) else { return "" }
    let last = scalars.lastIndex(where: { !isSpace($0) })!
    return String(scalars[first...last])
}

/// A chat template rlif cannot render: names where it came from, shows its start, suggests the fixed templates.
public struct ChatTemplateError: Error, CustomStringConvertible, Equatable {
    public var source: String
    public var template: String
    public var reason: String
    public var description: String {
        let oneLine = template.prefix(80).replacingOccurrences(of: "\n", with: "\\n")
        return "\(source): chat template not supported (\(reason)); rlif renders Qwen2.5/SmolLM2-style ChatML and "
            + "Llama 3/3.1/3.2 templates natively (it has no Jinja engine). The template (\(template.count) characters) "
            + "begins: \(oneLine.debugDescription). Set `template: chatml`, `plain` or `raw` (--template) instead."
    }
}

/// The parts of a Jinja template that recognition needs: its string literals (decoded) and output text, in order,
/// and the identifiers its tags use. Lexes like Jinja with transformers' settings (trim_blocks, lstrip_blocks):
/// `{# #}` comments are dropped; `{%- -%}` / `{{- -}}` strip whitespace next to the tag; a newline right after a
/// `%}` is dropped; spaces and tabs before a `{%` at the start of a line are dropped.
struct JinjaScan {
    struct LexError: Error { var reason: String }
    enum Token: Equatable { case identifier(String), string(String), symbol(Character) }

    private(set) var literals: [String] = []
    private(set) var identifiers = Set<String>()
    private(set) var tokens: [Token] = []

    init(_ template: String) throws(LexError) {
        let c = Array(template.unicodeScalars)
        var i = 0
        var data = ""            // text outside tags since the last tag
        var stripNextLeading = false
        var afterBlock = false
        func flush() {
            if !data.isEmpty { literals.append(data) }
            data = ""
        }
        while i < c.count {
            if c[i] == "{", i + 1 < c.count, c[i + 1] == "{" || c[i + 1] == "%" || c[i + 1] == "#" {
                let kind = c[i + 1]
                var j = i + 2
                let stripBefore = j < c.count && c[j] == "-"
                let keepBefore = j < c.count && c[j] == "+"
                if j < c.count && (c[j] == "-" || c[j] == "+") { j += 1 }
                if stripBefore {
                    while let l = data.unicodeScalars.last, l.properties.isWhitespace { data.unicodeScalars.removeLast() }
                } else if kind != "{" && !keepBefore {
                    // lstrip_blocks: spaces/tabs between a line start (in the source) and a block or comment tag go.
                    var k = i - 1
                    while k >= 0, c[k] == " " || c[k] == "\t" { k -= 1 }
                    if k < 0 || c[k] == "\n" {
                        for _ in 0..<(i - 1 - k) {
                            guard let l = data.unicodeScalars.last, l == " " || l == "\t" else { break }
                            data.unicodeScalars.removeLast()
                        }
                    }
                }
                flush()
                let close: Unicode.Scalar = kind == "{" ? "}" : kind == "%" ? "%" : "#"
                // Scan the tag body up to its closing delimiter, outside string literals.
                var stripAfter = false
                var closed = false
                while j < c.count {
                    let ch = c[j]
                    if kind != "#", ch == "'" || ch == "\"" {
                        let (s, next) = try JinjaScan.stringLiteral(c, j)
                        literals.append(s); tokens.append(.string(s)); j = next; continue
                    }
                    if (ch == "-" || ch == "+"), j + 2 < c.count, c[j + 1] == close, c[j + 2] == "}" {
                        stripAfter = ch == "-"; j += 3; closed = true; break
                    }
                    if ch == close, j + 1 < c.count, c[j + 1] == "}" { j += 2; closed = true; break }
                    if kind != "#" {
                        if ch.properties.isAlphabetic || ch == "_" {
                            var k = j
                            while k < c.count, c[k].properties.isAlphabetic || c[k] == "_" || ("0"..."9").contains(c[k]) { k += 1 }
                            let name = String(String.UnicodeScalarView(c[j..<k]))
                            identifiers.insert(name); tokens.append(.identifier(name)); j = k; continue
                        }
                        if !ch.properties.isWhitespace { tokens.append(.symbol(Character(ch))) }
                    }
                    j += 1
                }
                guard closed else { throw LexError(reason: "unclosed tag at character \(i)") }
                i = j
                stripNextLeading = stripAfter
                afterBlock = kind != "{"
                continue
            }
            if stripNextLeading {
                if c[i].properties.isWhitespace { i += 1; continue }
                stripNextLeading = false
            }
            if afterBlock {
                afterBlock = false
                if c[i] == "\n" { i += 1; continue }  // trim_blocks
                if c[i] == "\r", i + 1 < c.count, c[i + 1] == "\n" { i += 2; continue }
            }
            data.unicodeScalars.append(c[i])
            i += 1
        }
        flush()
    }

    /// The string after `set name =` (e.g. `{%- set date_string = "26 Jul 2024" %}`), nil when there is none.
    func stringAssigned(to name: String) -> String? {
        for k in 0..<max(tokens.count - 3, 0) {
            if tokens[k] == .identifier("set"), tokens[k + 1] == .identifier(name), tokens[k + 2] == .symbol("="),
               case .string(let s) = tokens[k + 3] { return s }
        }
        return nil
    }

    /// Decodes the Jinja (Python-style) string literal starting at `c[start]` (a quote); returns it and the index
    /// after its closing quote.
    static func stringLiteral(_ c: [Unicode.Scalar], _ start: Int) throws(LexError) -> (String, Int) {
        let quote = c[start]
        var s = String.UnicodeScalarView()
        var j = start + 1
        func hex(_ n: Int) throws(LexError) -> Unicode.Scalar {
            guard j + n < c.count else { throw LexError(reason: "truncated escape in a string literal") }
            let digits = String(String.UnicodeScalarView(c[(j + 1)...(j + n)]))
            guard let v = UInt32(digits, radix: 16), let u = Unicode.Scalar(v) else {
                throw LexError(reason: "bad escape \\\(c[j])\(digits) in a string literal")
            }
            j += n
            return u
        }
        while j < c.count {
            let ch = c[j]
            if ch == quote { return (String(s), j + 1) }
            if ch == "\\", j + 1 < c.count {
                j += 1
                switch c[j] {
                case "n": s.append("\n")
                case "t": s.append("\t")
                case "r": s.append("\r")
                case "\\": s.append("\\")
                case "'": s.append("'")
                case "\"": s.append("\"")
                case "a": s.append("\u{07}")
                case "b": s.append("\u{08}")
                case "f": s.append("\u{0C}")
                case "v": s.append("\u{0B}")
                case "0": s.append("\u{00}")
                case "\n": break  // line continuation
                case "x": s.append(try hex(2))
                case "u": s.append(try hex(4))
                case "U": s.append(try hex(8))
                default: s.append("\\"); s.append(c[j])  // Python keeps unknown escapes as written
                }
                j += 1
                continue
            }
            s.append(ch)
            j += 1
        }
        throw LexError(reason: "unterminated string literal at character \(start)")
    }
}
