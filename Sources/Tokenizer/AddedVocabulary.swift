/// Added tokens (`added_tokens` of `tokenizer.json`): matched in the text before the model sees it, longest match
/// first among those starting leftmost (Aho-Corasick LeftmostLongest in `tokenizers`), never split by BPE.
struct AddedToken: Sendable {
    var id: Int32
    var content: [UInt8]     // UTF-8
    var special: Bool
    var singleWord: Bool
    var lstrip: Bool
    var rstrip: Bool
    var normalized: Bool
}

struct AddedMatcher: Sendable {
    /// Tokens by their first byte, longest first.
    private var byFirstByte: [[AddedToken]] = Array(repeating: [], count: 256)
    var isEmpty = true

    init(_ tokens: [AddedToken]) {
        for t in tokens where !t.content.isEmpty {
            byFirstByte[Int(t.content[0])].append(t)
            isEmpty = false
        }
        for i in 0..<256 { byFirstByte[i].sort { $0.content.count > $1.content.count } }
    }

    /// Segments of `text[lo..<hi]`: `(id, range)` for an added token, `(nil, range)` for the text between.
    func split(_ text: [UInt8], _ lo: Int, _ hi: Int) -> [(Int32?, Range<Int>)] {
        if isEmpty { return lo < hi ? [(nil, lo..<hi)] : [] }
        // Non-overlapping leftmost-longest matches.
        var matches: [(AddedToken, Range<Int>)] = []
        var i = lo
        while i < hi {
            var found: AddedToken? = nil
            for t in byFirstByte[Int(text[i])] where i + t.content.count <= hi {
                var ok = true
                for k in 1..<t.content.count where text[i + k] != t.content[k] { ok = false; break }
                if ok { found = t; break }
            }
            if let t = found { matches.append((t, i..<(i + t.content.count))); i += t.content.count } else { i += 1 }
        }
        // tokenizers' AddedVocabulary::find_matches: single_word filter, lstrip/rstrip widening.
        var out: [(Int32?, Range<Int>)] = []
        var startOffset = lo
        for (t, r) in matches {
            var start = r.lowerBound, stop = r.upperBound
            if start < startOffset { continue }  // overlapped by a previous rstrip
            if t.singleWord {
                let startOK = start == lo || !AddedMatcher.isWordChar(lastScalar(text, lo, start))
                let stopOK = stop == hi || !AddedMatcher.isWordChar(firstScalar(text, stop, hi))
                if !startOK || !stopOK { continue }
            }
            if t.lstrip {
                var s = start
                while s > startOffset, let (v, n) = scalarBefore(text, lo, s), AddedMatcher.isSpace(v) { s -= n }
                start = max(s, startOffset)
            }
            if t.rstrip {
                while stop < hi, let (v, n) = scalarAt(text, stop, hi), AddedMatcher.isSpace(v) { stop += n }
            }
            if startOffset < start { out.append((nil, startOffset..<start)) }
            out.append((t.id, start..<stop))
            startOffset = stop
        }
        if startOffset < hi { out.append((nil, startOffset..<hi)) }
        return out
    }

    static func isWordChar(_ v: UInt32?) -> Bool {
        guard let v, let s = Unicode.Scalar(v) else { return false }
        return s == "_" || s.properties.isAlphabetic || s.properties.numericType != nil
    }

    static func isSpace(_ v: UInt32) -> Bool { Unicode.Scalar(v)?.properties.isWhitespace ?? false }
}

private func scalarAt(_ t: [UInt8], _ i: Int, _ hi: Int) -> (UInt32, Int)? {
    guard i < hi else { return nil }
    let b0 = t[i]
    var n = b0 < 0x80 ? 1 : b0 < 0xE0 ? 2 : b0 < 0xF0 ? 3 : 4
    n = min(n, hi - i)
    var v: UInt32 = n == 1 ? UInt32(b0) : n == 2 ? UInt32(b0 & 0x1F) : n == 3 ? UInt32(b0 & 0x0F) : UInt32(b0 & 0x07)
    for k in 1..<max(n, 1) { v = v << 6 | UInt32(t[i + k] & 0x3F) }
    return (v, n)
}

private func scalarBefore(_ t: [UInt8], _ lo: Int, _ i: Int) -> (UInt32, Int)? {
    guard i > lo else { return nil }
    var s = i - 1
    while s > lo && (t[s] & 0xC0) == 0x80 { s -= 1 }
    guard let (v, _) = scalarAt(t, s, i) else { return nil }
    return (v, i - s)
}

private func firstScalar(_ t: [UInt8], _ i: Int, _ hi: Int) -> UInt32? { scalarAt(t, i, hi)?.0 }
private func lastScalar(_ t: [UInt8], _ lo: Int, _ i: Int) -> UInt32? { scalarBefore(t, lo, i)?.0 }
