/// The `decoder` of `tokenizer.json`: a chain of steps over the list of token strings, as `tokenizers`'
/// `Decoder::decode_chain`, joined at the end.
indirect enum DecoderStep: Sendable {
    case byteLevel
    case replace(pattern: String, content: String)
    case byteFallback
    case fuse
    case strip(content: Unicode.Scalar, start: Int, stop: Int)
    case metaspace(replacement: Unicode.Scalar, prependScheme: PreTokenizerStep.PrependScheme)
    case sequence([DecoderStep])

    func decodeChain(_ tokens: [String]) -> [String] {
        switch self {
        case .sequence(let steps):
            var t = tokens
            for s in steps { t = s.decodeChain(t) }
            return t

        case .byteLevel:
            // Every character back to its byte; a token with a character outside the map keeps its own UTF-8.
            var bytes: [UInt8] = []
            for t in tokens {
                let start = bytes.count
                var ok = true
                for u in t.unicodeScalars {
                    let v = Int(u.value)
                    if v < ByteLevelMap.byteOf.count, ByteLevelMap.byteOf[v] >= 0 {
                        bytes.append(UInt8(ByteLevelMap.byteOf[v]))
                    } else { ok = false; break }
                }
                if !ok {
                    bytes.removeSubrange(start...)
                    bytes.append(contentsOf: t.utf8)
                }
            }
            return [lossyUTF8(bytes)]

        case .replace(let pattern, let content):
            return tokens.map { $0.replacingAll(pattern, with: content) }

        case .byteFallback:
            var out: [String] = []
            var pending: [UInt8] = []
            func flush() {
                guard !pending.isEmpty else { return }
                if let s = String(validating: pending, as: UTF8.self) { out.append(s) }
                else { for _ in pending { out.append("\u{FFFD}") } }
                pending.removeAll()
            }
            for t in tokens {
                if let b = DecoderStep.fallbackByte(t) { pending.append(b) } else { flush(); out.append(t) }
            }
            flush()
            return out

        case .fuse:
            return [tokens.joined()]

        case .strip(let content, let start, let stop):
            return tokens.map { t in
                let chars = Array(t.unicodeScalars)  // Rust chars are scalars, not grapheme clusters
                var lo = 0
                while lo < min(start, chars.count) && chars[lo] == content { lo += 1 }
                var hi = chars.count
                var k = 0
                while k < stop && hi > lo && chars[hi - 1] == content { hi -= 1; k += 1 }
                var r = String.UnicodeScalarView()
                r.append(contentsOf: chars[lo..<hi])
                return String(r)
            }

        case .metaspace(let replacement, let scheme):
            return tokens.enumerated().map { i, t in
                var s = String.UnicodeScalarView()
                for c in t.unicodeScalars {
                    if c == replacement {
                        if i == 0 && scheme != .never { continue }
                        s.append(" ")
                    } else { s.append(c) }
                }
                return String(s)
            }
        }
    }

    /// The byte of a `<0xXX>` token (tokenizers: 6 bytes, `<0x` … `>`, the middle parsed as hex).
    static func fallbackByte(_ t: String) -> UInt8? {
        let u = Array(t.utf8)
        guard u.count == 6, u[0] == UInt8(ascii: "<"), u[1] == UInt8(ascii: "0"), u[2] == UInt8(ascii: "x"),
              u[5] == UInt8(ascii: ">") else { return nil }
        return UInt8(String(decoding: u[3..<5], as: UTF8.self), radix: 16)
    }
}

/// UTF-8 with each maximal ill-formed subsequence replaced by U+FFFD (as Rust's `String::from_utf8_lossy`).
func lossyUTF8(_ bytes: [UInt8]) -> String {
    String(decoding: bytes, as: UTF8.self)
}

extension String {
    /// Replaces every non-overlapping occurrence of `pattern`, left to right (no Foundation needed).
    func replacingAll(_ pattern: String, with content: String) -> String {
        guard !pattern.isEmpty else { return self }
        let src = Array(self.utf8), pat = Array(pattern.utf8), rep = Array(content.utf8)
        var out: [UInt8] = []
        out.reserveCapacity(src.count)
        var i = 0
        while i < src.count {
            if i + pat.count <= src.count && src[i..<(i + pat.count)].elementsEqual(pat) {
                out.append(contentsOf: rep)
                i += pat.count
            } else {
                out.append(src[i])
                i += 1
            }
        }
        return String(decoding: out, as: UTF8.self)
    }
}
