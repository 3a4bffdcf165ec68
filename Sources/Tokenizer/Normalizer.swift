import Foundation

/// The `normalizer` of `tokenizer.json` (the subset used by byte-level and SentencePiece-style BPE files).
indirect enum NormalizerStep: Sendable {
    case nfc, nfd, nfkc, nfkd
    case lowercase
    case prepend(String)
    case replace(pattern: String, content: String)
    case sequence([NormalizerStep])

    func apply(_ s: String) -> String {
        switch self {
        case .nfc:
            // Scalars below U+0300 are all NFC-stable (no combining marks, no singletons): skip Foundation.
            if s.utf8.allSatisfy({ $0 < 0xCC }) { return s }
            return s.precomposedStringWithCanonicalMapping
        case .nfd: return s.decomposedStringWithCanonicalMapping
        case .nfkc: return s.precomposedStringWithCompatibilityMapping
        case .nfkd: return s.decomposedStringWithCompatibilityMapping
        case .lowercase: return s.lowercased()
        case .prepend(let p): return s.isEmpty ? s : p + s
        case .replace(let pattern, let content): return s.replacingAll(pattern, with: content)
        case .sequence(let steps):
            var t = s
            for step in steps { t = step.apply(t) }
            return t
        }
    }

}
