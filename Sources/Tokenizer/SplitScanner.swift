/// Hand-written scanners equivalent to the GPT-2 / Qwen2 / Llama-3 pre-tokenizer regexes (Oniguruma semantics,
/// as `tokenizers` compiles them): leftmost match, alternatives tried in order, greedy with backtracking.
/// Every alternative consumes at least one character and every character starts some alternative, so the
/// matches tile the text.
///
/// Qwen2:  (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
/// Llama3: the same with \p{N}{1,3}
/// GPT-2:  's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
struct SplitScanner: Sendable {
    enum Flavor: Sendable { case qwen2, llama3, gpt2 }
    let flavor: Flavor

    static let qwen2Pattern =
        #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#
    static let llama3Pattern =
        #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#
    static let gpt2Pattern = #"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"#

    /// The scanner for a regex source string, nil when it is not one of the known patterns.
    init?(pattern: String) {
        switch pattern {
        case SplitScanner.qwen2Pattern: flavor = .qwen2
        case SplitScanner.llama3Pattern: flavor = .llama3
        case SplitScanner.gpt2Pattern: flavor = .gpt2
        default: return nil
        }
    }

    init(flavor: Flavor) { self.flavor = flavor }

    // Character classes of the regexes.
    static let letter: UInt8 = 0    // \p{L}
    static let number: UInt8 = 1    // \p{N}
    static let space: UInt8 = 2     // \s other than \r \n
    static let newline: UInt8 = 3   // \r or \n
    static let other: UInt8 = 4     // [^\s\p{L}\p{N}]

    @inline(__always)
    static func classify(_ v: UInt32) -> UInt8 {
        if v < 0x80 {  // (inline rather than a global table: no swift_once check per character)
            if (v | 0x20) >= 0x61 && (v | 0x20) <= 0x7A { return letter }
            if v >= 0x30 && v <= 0x39 { return number }
            if v == 0x0A || v == 0x0D { return newline }
            if v == 0x20 || (v >= 0x09 && v <= 0x0C) { return space }
            return other
        }
        guard let s = Unicode.Scalar(v) else { return other }
        let p = s.properties
        // Oniguruma's \s for Unicode is the White_Space property.
        if p.isWhitespace { return space }
        switch p.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter: return letter
        case .decimalNumber, .letterNumber, .otherNumber: return number
        default: return other
        }
    }

    /// Splits `text[lo..<hi]` (UTF-8) into matches, appending byte ranges to `out`.
    /// `scalars`/`classes`/`offsets` are scratch arrays reused across calls.
    func split(_ text: UnsafeBufferPointer<UInt8>, _ lo: Int, _ hi: Int, into out: inout [Range<Int>],
               scratch: inout SplitScratch) {
        // Decode to scalars with their classes and byte offsets.
        scratch.scalars.removeAll(keepingCapacity: true)
        scratch.classes.removeAll(keepingCapacity: true)
        scratch.offsets.removeAll(keepingCapacity: true)
        var i = lo
        while i < hi {
            let b0 = UInt32(text[i])
            var v: UInt32
            var n: Int
            if b0 < 0x80 { v = b0; n = 1 }
            else if b0 < 0xE0 { v = b0 & 0x1F; n = 2 }
            else if b0 < 0xF0 { v = b0 & 0x0F; n = 3 }
            else { v = b0 & 0x07; n = 4 }
            if i + n > hi { n = hi - i }
            for k in 1..<max(n, 1) { v = v << 6 | (UInt32(text[i + k]) & 0x3F) }
            scratch.scalars.append(v)
            scratch.classes.append(SplitScanner.classify(v))
            scratch.offsets.append(i)
            i += max(n, 1)
        }
        scratch.offsets.append(hi)
        let count = scratch.scalars.count
        scratch.scalars.withUnsafeBufferPointer { sc in
            scratch.classes.withUnsafeBufferPointer { cl in
                var pos = 0
                while pos < count {
                    let end = matchEnd(pos, count, sc, cl)
                    out.append(scratch.offsets[pos]..<scratch.offsets[end])
                    pos = end
                }
            }
        }
    }

    /// End (exclusive, in scalars) of the match starting at `i`.
    @inline(__always)
    func matchEnd(_ i: Int, _ n: Int, _ sc: UnsafeBufferPointer<UInt32>, _ cl: UnsafeBufferPointer<UInt8>) -> Int {
        typealias S = SplitScanner
        let c = cl[i]
        // Contractions.
        if sc[i] == 0x27, i + 1 < n, let len = contraction(i + 1, n, sc) { return i + 1 + len }
        switch flavor {
        case .qwen2, .llama3:
            // [^\r\n\p{L}\p{N}]?\p{L}+
            if c == S.letter { return run(i + 1, n, cl, S.letter, limit: .max) }
            if (c == S.space || c == S.other), i + 1 < n, cl[i + 1] == S.letter {
                return run(i + 2, n, cl, S.letter, limit: .max)
            }
            // \p{N} or \p{N}{1,3}
            if c == S.number { return run(i + 1, n, cl, S.number, limit: flavor == .qwen2 ? i + 1 : i + 3) }
            // ' '?[^\s\p{L}\p{N}]+[\r\n]*
            var k = i
            if sc[k] == 0x20, k + 1 < n, cl[k + 1] == S.other { k += 1 }
            if cl[k] == S.other {
                let e = run(k + 1, n, cl, S.other, limit: .max)
                return run(e, n, cl, S.newline, limit: .max)
            }
        case .gpt2:
            // ' '?\p{L}+ | ' '?\p{N}+ | ' '?[^\s\p{L}\p{N}]+
            var k = i
            if sc[k] == 0x20, k + 1 < n, cl[k + 1] != S.space, cl[k + 1] != S.newline { k += 1 }
            let ck = cl[k]
            if ck == S.letter || ck == S.number || ck == S.other { return run(k + 1, n, cl, ck, limit: .max) }
        }
        // Whitespace run starting at i (c is space or newline here).
        var e = i
        var lastNewline = -1
        while e < n && (cl[e] == S.space || cl[e] == S.newline) {
            if cl[e] == S.newline { lastNewline = e }
            e += 1
        }
        // \s*[\r\n]+ : backtracks \s* to the last newline of the run.
        if flavor != .gpt2 && lastNewline >= 0 { return lastNewline + 1 }
        // \s+(?!\S) : the whole run at the end of text, else all but the last whitespace character.
        if e == n || e - i < 2 { return e }  // (the latter is \s+)
        return e - 1
    }

    @inline(__always)
    private func run(_ from: Int, _ n: Int, _ cl: UnsafeBufferPointer<UInt8>, _ cls: UInt8, limit: Int) -> Int {
        var j = from
        let stop = min(n, limit)
        while j < stop && cl[j] == cls { j += 1 }
        return j
    }

    /// Length after the apostrophe of a contraction at `j`, nil when none matches.
    @inline(__always)
    private func contraction(_ j: Int, _ n: Int, _ sc: UnsafeBufferPointer<UInt32>) -> Int? {
        let ci = flavor != .gpt2
        @inline(__always) func eq(_ v: UInt32, _ lower: UInt8) -> Bool {
            if v == UInt32(lower) { return true }
            guard ci else { return false }
            if v == UInt32(lower - 32) { return true }
            // Case folding: U+017F LATIN SMALL LETTER LONG S folds to "s".
            return lower == UInt8(ascii: "s") && v == 0x17F
        }
        let a = sc[j]
        if eq(a, UInt8(ascii: "s")) || eq(a, UInt8(ascii: "t")) || eq(a, UInt8(ascii: "m")) || eq(a, UInt8(ascii: "d")) {
            return 1
        }
        guard j + 1 < n else { return nil }
        let b = sc[j + 1]
        if eq(a, UInt8(ascii: "r")) && eq(b, UInt8(ascii: "e")) { return 2 }
        if eq(a, UInt8(ascii: "v")) && eq(b, UInt8(ascii: "e")) { return 2 }
        if eq(a, UInt8(ascii: "l")) && eq(b, UInt8(ascii: "l")) { return 2 }
        return nil
    }
}

/// Reusable buffers for `SplitScanner.split`.
struct SplitScratch {
    var scalars: [UInt32] = []
    var classes: [UInt8] = []
    var offsets: [Int] = []
}
