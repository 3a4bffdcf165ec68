/// Appends `s` as a JSON string literal: quotes, backslash and control characters escaped (RFC 8259 §7), the rest
/// as is (UTF-8 when written). The one escaper behind the hand-written JSON of safetensors headers and of the
/// tokenizer.json rebuilt from GGUF metadata.
public func appendJSONString(_ s: String, to out: inout String) {
    out += "\""
    for u in s.unicodeScalars {
        switch u {
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        case "\n": out += "\\n"
        case "\r": out += "\\r"
        case "\t": out += "\\t"
        default:
            if u.value < 0x20 {
                let hex = String(u.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            } else {
                out.unicodeScalars.append(u)
            }
        }
    }
    out += "\""
}

/// `s` as a JSON string literal (see `appendJSONString`).
public func jsonStringLiteral(_ s: String) -> String {
    var out = ""
    appendJSONString(s, to: &out)
    return out
}
