import Foundation

/// Pieces of one text segment: byte ranges into `buffer` (UTF-8 of the normalised segment, possibly rewritten by
/// Metaspace / ByteLevel prefixing). `originPiece` is the index of the piece that starts at offset 0 of the
/// original input (Metaspace's `prepend_scheme: first` needs it), -1 when none does.
struct Pieces {
    var buffer: [UInt8]
    var ranges: [Range<Int>]
    var originPiece: Int
}

/// One pre-tokenizer step of `tokenizer.json` (a `Sequence` is flattened into a list of these).
enum PreTokenizerStep: Sendable {
    /// `Split` with a regex or string pattern; only `Isolated` and `Removed` behaviours.
    case split(SplitPattern, removeMatches: Bool)
    /// `ByteLevel`: marks pieces as raw bytes for the byte-to-unicode map; optional GPT-2 regex and prefix space.
    case byteLevel(addPrefixSpace: Bool, useRegex: Bool)
    /// `Metaspace`: spaces become `replacement`, optional prefix, optional split before each replacement.
    case metaspace(replacement: [UInt8], prepend: PrependScheme, split: Bool)

    enum PrependScheme: Sendable { case always, first, never }
}

/// A split pattern: a known regex run by a hand-written scanner, another regex via NSRegularExpression, or a string.
enum SplitPattern: @unchecked Sendable {
    // @unchecked: NSRegularExpression is immutable after creation and documented as safe to share across threads.
    case scanner(SplitScanner)
    case regex(NSRegularExpression)
    case literal([UInt8])

    /// Appends the byte ranges of the matches in `text[lo..<hi]` to `out`.
    func matches(_ text: UnsafeBufferPointer<UInt8>, _ lo: Int, _ hi: Int, into out: inout [Range<Int>],
                 scratch: inout SplitScratch) {
        switch self {
        case .scanner(let s):
            s.split(text, lo, hi, into: &out, scratch: &scratch)
        case .literal(let lit):
            guard !lit.isEmpty else { return }
            var i = lo
            while i + lit.count <= hi {
                var ok = true
                for k in 0..<lit.count where text[i + k] != lit[k] { ok = false; break }
                if ok { out.append(i..<(i + lit.count)); i += lit.count } else { i += 1 }
            }
        case .regex(let re):
            let s = String(decoding: UnsafeBufferPointer(rebasing: text[lo..<hi]), as: UTF8.self)
            let ns = s as NSString
            // Map UTF-16 offsets back to UTF-8 offsets.
            var u16ToU8: [Int] = []
            u16ToU8.reserveCapacity(ns.length + 1)
            var u8 = lo
            for scalar in s.unicodeScalars {
                let n8 = UTF8.width(scalar), n16 = UTF16.width(scalar)
                for _ in 0..<n16 { u16ToU8.append(u8) }
                u8 += n8
            }
            u16ToU8.append(u8)
            for m in re.matches(in: s, range: NSRange(location: 0, length: ns.length)) where m.range.length > 0 {
                out.append(u16ToU8[m.range.location]..<u16ToU8[m.range.location + m.range.length])
            }
        }
    }
}

extension PreTokenizerStep {
    /// Applies the step to every piece. `byteLevel` is set once a ByteLevel step has run.
    func apply(_ p: Pieces, byteLevel: inout Bool, scratch: inout SplitScratch) -> Pieces {
        switch self {
        case .split(let pattern, let removeMatches):
            var ranges: [Range<Int>] = []
            ranges.reserveCapacity(p.ranges.count * 2)
            var origin = -1
            var matches: [Range<Int>] = []
            p.buffer.withUnsafeBufferPointer { buf in
                for (pi, r) in p.ranges.enumerated() {
                    matches.removeAll(keepingCapacity: true)
                    pattern.matches(buf, r.lowerBound, r.upperBound, into: &matches, scratch: &scratch)
                    var pos = r.lowerBound
                    for m in matches {
                        if pos < m.lowerBound {
                            if pi == p.originPiece && pos == r.lowerBound { origin = ranges.count }
                            ranges.append(pos..<m.lowerBound)
                        }
                        if !removeMatches && !m.isEmpty {
                            if pi == p.originPiece && m.lowerBound == r.lowerBound { origin = ranges.count }
                            ranges.append(m)
                        }
                        pos = m.upperBound
                    }
                    if pos < r.upperBound {
                        if pi == p.originPiece && pos == r.lowerBound { origin = ranges.count }
                        ranges.append(pos..<r.upperBound)
                    }
                }
            }
            return Pieces(buffer: p.buffer, ranges: ranges, originPiece: origin)

        case .byteLevel(let addPrefixSpace, let useRegex):
            byteLevel = true
            var q = p
            if addPrefixSpace {
                q = rewrite(p) { bytes, _, out in
                    if bytes.first != 0x20 { out.append(0x20) }
                    out.append(contentsOf: bytes)
                }
            }
            if useRegex {
                return PreTokenizerStep.split(.scanner(SplitScanner(flavor: .gpt2)), removeMatches: false)
                    .apply(q, byteLevel: &byteLevel, scratch: &scratch)
            }
            return q

        case .metaspace(let replacement, let prepend, let split):
            var q = rewrite(p) { bytes, isOrigin, out in
                // tokenizers replaces first, then prepends unless the piece now starts with the replacement.
                var replaced: [UInt8] = []
                replaced.reserveCapacity(bytes.count + 8)
                for b in bytes { if b == 0x20 { replaced.append(contentsOf: replacement) } else { replaced.append(b) } }
                let starts = replaced.starts(with: replacement)
                switch prepend {
                case .always: if !starts { out.append(contentsOf: replacement) }
                case .first: if !starts && isOrigin { out.append(contentsOf: replacement) }
                case .never: break
                }
                out.append(contentsOf: replaced)
            }
            if split {
                q = PreTokenizerStep.splitMergedWithNext(q, replacement)
            }
            return q
        }
    }

    /// Rebuilds every piece through `body(pieceBytes, isOriginPiece, &out)`.
    private func rewrite(_ p: Pieces, _ body: (ArraySlice<UInt8>, Bool, inout [UInt8]) -> Void) -> Pieces {
        var buf: [UInt8] = []
        buf.reserveCapacity(p.buffer.count + 16)
        var ranges: [Range<Int>] = []
        ranges.reserveCapacity(p.ranges.count)
        var origin = -1
        for (i, r) in p.ranges.enumerated() where !r.isEmpty {  // tokenizers drops empty splits
            let s = buf.count
            if i == p.originPiece { origin = ranges.count }
            body(p.buffer[r], i == p.originPiece, &buf)
            ranges.append(s..<buf.count)
        }
        return Pieces(buffer: buf, ranges: ranges, originPiece: origin)
    }

    /// Splits each piece before every occurrence of `delim` (the delimiter starts the next piece).
    private static func splitMergedWithNext(_ p: Pieces, _ delim: [UInt8]) -> Pieces {
        var ranges: [Range<Int>] = []
        var origin = -1
        for (pi, r) in p.ranges.enumerated() {
            var start = r.lowerBound
            var i = r.lowerBound
            while i + delim.count <= r.upperBound {
                if p.buffer[i..<(i + delim.count)].elementsEqual(delim) {
                    if i > start {
                        if pi == p.originPiece && start == r.lowerBound { origin = ranges.count }
                        ranges.append(start..<i)
                    }
                    start = i
                    i += delim.count
                } else {
                    i += 1
                }
            }
            if start < r.upperBound {
                if pi == p.originPiece && start == r.lowerBound { origin = ranges.count }
                ranges.append(start..<r.upperBound)
            }
        }
        return Pieces(buffer: p.buffer, ranges: ranges, originPiece: origin)
    }
}
