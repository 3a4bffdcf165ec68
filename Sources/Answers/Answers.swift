import Foundation

/// Which dataset convention an answer follows.
public enum AnswerFormat: String, Sendable, CaseIterable {
    /// GSM8K: references end in `#### 42`; models answer in `\boxed{42}` (or `#### 42`, or just a final number).
    case gsm8k
    /// MATH-style: answers are LaTeX in `\boxed{...}` (`\frac{1}{2}`, `x=5`, `10^\circ`, ...).
    case math
}

/// The answer a model gave in `completion`, nil when there is none.
///
/// Both formats: the LAST `\boxed{...}` (balanced braces, so `\boxed{\frac{1}{2}}` gives `\frac{1}{2}`; also
/// `\fbox{}` and `\boxed 5`). Then, for `.gsm8k`: the last `#### x`, else the last number in the text; for
/// `.math`: the last "answer is x", else the last number. GSM8K answers are cleaned of `$`, thousands commas and
/// a trailing `.` (as `referenceAnswer` does for the reference).
public func extractAnswer(from completion: String, format: AnswerFormat) -> String? {
    if let boxed = lastBoxed(completion) {
        let b = boxed.trimmingCharacters(in: .whitespacesAndNewlines)
        if b.isEmpty { return nil }
        return format == .gsm8k ? cleanGSM8K(b) : b
    }
    switch format {
    case .gsm8k:
        if let r = afterLastMarker(completion, "####") {
            let c = cleanGSM8K(firstLine(r))
            if !c.isEmpty { return c }
        }
        return lastNumber(completion).map(cleanGSM8K)
    case .math:
        if let r = afterLastMarker(completion.lowercased(), "answer is") {
            // Take the same span from the original (lowercasing can change lengths only outside ASCII).
            let span = String(completion.suffix(r.count))
            var line = firstLine(span).trimmingCharacters(in: CharacterSet(charactersIn: " :$.\t"))
            if line.hasPrefix("\\(") && line.hasSuffix("\\)") { line = String(line.dropFirst(2).dropLast(2)) }
            if !line.isEmpty { return line.trimmingCharacters(in: .whitespaces) }
        }
        return lastNumber(completion)
    }
}

/// The reference answer of a dataset solution: GSM8K: the text after the last `#### ` (cleaned of `$`,
/// commas, a trailing `.`); MATH: the last `\boxed{...}` of the solution, else the whole string trimmed.
public func referenceAnswer(from solution: String, format: AnswerFormat) -> String? {
    switch format {
    case .gsm8k:
        guard let r = afterLastMarker(solution, "####") else { return nil }
        let c = cleanGSM8K(firstLine(r))
        return c.isEmpty ? nil : c
    case .math:
        if let b = lastBoxed(solution) {
            let t = b.trimmingCharacters(in: .whitespacesAndNewlines)
            return t.isEmpty ? nil : t
        }
        // A GSM8K solution under the math format (the model answers in \boxed{}, the dataset keeps `#### x`):
        // the reference is the dataset's own final answer, not the whole worked solution.
        if let r = afterLastMarker(solution, "####") {
            let c = cleanGSM8K(firstLine(r))
            if !c.isEmpty { return c }
        }
        let t = solution.trimmingCharacters(in: .whitespacesAndNewlines)
        return t.isEmpty ? nil : t
    }
}

/// Whether two answers are the same: equal after `normalizeAnswer`, or both numeric (integers, decimals,
/// `a/b`, `\frac{a}{b}`, percentages) and equal within a relative tolerance of 1e-4 (as `math_equal`).
public func answersMatch(_ a: String, _ b: String) -> Bool {
    let na = normalizeAnswer(a), nb = normalizeAnswer(b)
    if na.isEmpty || nb.isEmpty { return false }
    if na == nb { return true }
    if let x = numericValue(na), let y = numericValue(nb) {
        if x == y { return true }
        let scale = max(abs(x), abs(y))
        return abs(x - y) <= 1e-4 * scale
    }
    return false
}

/// MATH-harness style normalisation (`strip_string` of the MATH / Qwen2.5-Math eval): drops `\left`/`\right`,
/// `\!`, spaces, `^\circ`, `\$`, `%`, trailing `.`, unit words (`\text{ cm}`, `dollars`, ...), `\text{}`
/// wrappers, `\dfrac`/`\tfrac` -> `\frac`, `\frac12` -> `\frac{1}{2}`, `\sqrt3` -> `\sqrt{3}`, `a/b` ->
/// `\frac{a}{b}` for integers, `0.5` -> `\frac{1}{2}`, thousands commas, trailing `.0`, and `x=5` -> `5`.
public func normalizeAnswer(_ answer: String) -> String {
    var s = answer.trimmingCharacters(in: .whitespacesAndNewlines)
    s = s.replacingOccurrences(of: "\n", with: "")
    if let inner = lastBoxed(s), s.hasPrefix("\\boxed") || s.hasPrefix("\\fbox") { s = inner }
    while s.hasSuffix(".") { s.removeLast() }
    s = s.replacingOccurrences(of: "\\!", with: "")
    s = s.replacingOccurrences(of: "\\\\", with: "\\")
    s = s.replacingOccurrences(of: "tfrac", with: "frac").replacingOccurrences(of: "dfrac", with: "frac")
    s = s.replacingOccurrences(of: "\\left", with: "").replacingOccurrences(of: "\\right", with: "")
    s = s.replacingOccurrences(of: "^{\\circ}", with: "").replacingOccurrences(of: "^\\circ", with: "")
    s = s.replacingOccurrences(of: "\\circ", with: "")
    s = s.replacingOccurrences(of: "\\$", with: "").replacingOccurrences(of: "$", with: "")
    s = s.replacingOccurrences(of: "\\,", with: "").replacingOccurrences(of: "\\;", with: "")
    // Units: "\text{ cm}" style (a leading space inside \text marks a unit), then \text{X} -> X.
    if let r = s.range(of: "\\text{ ") { s = String(s[..<r.lowerBound]) }
    s = unwrapCommand(s, "\\text")
    s = unwrapCommand(s, "\\textbf")
    s = unwrapCommand(s, "\\mbox")
    s = unwrapCommand(s, "\\mathrm")
    s = removeUnitWords(s)
    s = s.replacingOccurrences(of: "\\%", with: "").replacingOccurrences(of: "%", with: "")
    s = s.replacingOccurrences(of: " .", with: " 0.").replacingOccurrences(of: "{.", with: "{0.")
    s = s.trimmingCharacters(in: .whitespaces)
    if s.hasPrefix(".") { s = "0" + s }
    // "x = 5" -> "5" when the left side is a short variable name.
    let eqParts = s.components(separatedBy: "=")
    if eqParts.count == 2, eqParts[0].trimmingCharacters(in: .whitespaces).count <= 2 {
        s = eqParts[1]
    }
    s = fixSqrt(s)
    s = s.replacingOccurrences(of: " ", with: "")
    s = fixFracs(s)
    s = removeThousandsCommas(s)
    s = dropTrailingZeroDecimals(s)
    if s == "0.5" { s = "\\frac{1}{2}" }
    s = fixSlash(s)
    return s
}

// MARK: - Extraction helpers

/// Content of the last `\boxed{...}` / `\fbox{...}` (balanced braces), or of `\boxed x` up to `$`/space.
func lastBoxed(_ s: String) -> String? {
    let u = Array(s.unicodeScalars)
    var best: (Int, String)? = nil
    for name in ["\\boxed", "\\fbox"] {
        let n = Array(name.unicodeScalars)
        var i = u.count - n.count
        while i >= 0 {
            if u[i] == "\\" && Array(u[i..<(i + n.count)]) == n {
                var j = i + n.count
                if best != nil && i < best!.0 { break }
                if j < u.count && u[j] == "{" {
                    var depth = 0
                    var k = j
                    var end = -1
                    while k < u.count {
                        if u[k] == "{" { depth += 1 } else if u[k] == "}" {
                            depth -= 1
                            if depth == 0 { end = k; break }
                        }
                        k += 1
                    }
                    if end >= 0 {
                        var v = String.UnicodeScalarView()
                        v.append(contentsOf: u[(j + 1)..<end])
                        best = (i, String(v))
                        break
                    }
                } else if j < u.count && u[j] == " " {
                    j += 1
                    var k = j
                    while k < u.count && u[k] != "$" && u[k] != " " && u[k] != "\n" { k += 1 }
                    if k > j {
                        var v = String.UnicodeScalarView()
                        v.append(contentsOf: u[j..<k])
                        best = (i, String(v))
                        break
                    }
                }
            }
            i -= 1
        }
    }
    return best?.1
}

private func afterLastMarker(_ s: String, _ marker: String) -> String? {
    guard let r = s.range(of: marker, options: .backwards) else { return nil }
    return String(s[r.upperBound...])
}

private func firstLine(_ s: String) -> String {
    let t = s.drop { $0 == " " || $0 == "\t" }
    return String(t.prefix { $0 != "\n" && $0 != "\r" }).trimmingCharacters(in: .whitespaces)
}

/// `$1,234.` -> `1234`: what GSM8K references and answers are compared as.
private func cleanGSM8K(_ s: String) -> String {
    var t = s.trimmingCharacters(in: .whitespacesAndNewlines)
    t = t.replacingOccurrences(of: ",", with: "").replacingOccurrences(of: "\\$", with: "")
        .replacingOccurrences(of: "$", with: "")
    t = t.trimmingCharacters(in: .whitespaces)
    while t.hasSuffix(".") { t.removeLast() }
    return t.trimmingCharacters(in: .whitespaces)
}

/// The last number in the text (`-1,234.5`, `.5`, `3/4` gives `3/4`), nil when there is none.
func lastNumber(_ s: String) -> String? {
    let c = Array(s.unicodeScalars)
    var i = c.count - 1
    func isDigit(_ x: Unicode.Scalar) -> Bool { x.value >= 48 && x.value <= 57 }
    while i >= 0 && !isDigit(c[i]) { i -= 1 }
    guard i >= 0 else { return nil }
    let end = i + 1
    var start = i
    while start > 0 {
        let p = c[start - 1]
        if isDigit(p) { start -= 1; continue }
        // "," or "." or "/" inside a number: only when a digit precedes it.
        if (p == "," || p == "." || p == "/") && start >= 2 && isDigit(c[start - 2]) { start -= 1; continue }
        if p == "." { start -= 1 }  // ".5"
        break
    }
    if start > 0 && c[start - 1] == "-" { start -= 1 }
    var v = String.UnicodeScalarView()
    v.append(contentsOf: c[start..<end])
    return String(v)
}

// MARK: - Normalisation helpers

/// `\text{abc}` -> `abc` for every occurrence of `command{...}` (balanced braces).
private func unwrapCommand(_ s: String, _ command: String) -> String {
    var out = s
    while let r = out.range(of: command + "{") {
        let after = out[r.upperBound...]
        var depth = 1
        var idx = after.startIndex
        while idx < after.endIndex {
            if after[idx] == "{" { depth += 1 } else if after[idx] == "}" { depth -= 1; if depth == 0 { break } }
            idx = after.index(after: idx)
        }
        guard idx < after.endIndex else { break }
        out = String(out[..<r.lowerBound]) + String(after[..<idx]) + String(after[after.index(after: idx)...])
    }
    return out
}

private let unitWords: [String] = [
    "dollars", "dollar", "cents", "cent", "percent", "degrees", "degree", "units", "unit", "square", "sq",
    "cm", "centimeters", "centimeter", "mm", "millimeters", "km", "kilometers", "meters", "meter", "m",
    "inches", "inch", "feet", "foot", "ft", "yards", "yard", "miles", "mile", "mph", "hours", "hour", "minutes",
    "minute", "seconds", "second", "days", "day", "weeks", "week", "months", "month", "years", "year",
    "kg", "grams", "gram", "g", "pounds", "pound", "lbs", "ounces", "ounce", "liters", "liter", "cups", "cup",
    "points", "point", "people", "students", "apples", "cookies", "eggs", "marbles",
]

/// Removes unit words that follow a number ("5 cm" -> "5", "12 dollars" -> "12"); leaves other text alone.
private func removeUnitWords(_ s: String) -> String {
    var words = s.split(separator: " ", omittingEmptySubsequences: true).map(String.init)
    guard words.count >= 2 else { return s }
    let firstIsNumber = words[0].unicodeScalars.contains { $0.value >= 48 && $0.value <= 57 }
    guard firstIsNumber else { return s }
    while words.count > 1, unitWords.contains(words.last!.lowercased().trimmingCharacters(in: CharacterSet(charactersIn: "^23."))) {
        words.removeLast()
    }
    return words.joined(separator: " ")
}

/// `\sqrt3` -> `\sqrt{3}`.
private func fixSqrt(_ s: String) -> String {
    let parts = s.components(separatedBy: "\\sqrt")
    guard parts.count > 1 else { return s }
    var out = parts[0]
    for p in parts.dropFirst() {
        if let f = p.first, f != "{" {
            out += "\\sqrt{\(f)}" + p.dropFirst()
        } else {
            out += "\\sqrt" + p
        }
    }
    return out
}

/// `\frac12` -> `\frac{1}{2}`, `\frac1{2}` -> `\frac{1}{2}`, `\frac{1}2` -> `\frac{1}{2}`.
private func fixFracs(_ s: String) -> String {
    let parts = s.components(separatedBy: "\\frac")
    guard parts.count > 1 else { return s }
    var out = parts[0]
    for p in parts.dropFirst() {
        out += "\\frac"
        let c = Array(p)
        if c.first == "{" {
            // \frac{a}b -> \frac{a}{b}
            var depth = 0, k = 0
            while k < c.count {
                if c[k] == "{" { depth += 1 } else if c[k] == "}" { depth -= 1; if depth == 0 { break } }
                k += 1
            }
            if k + 1 < c.count && c[k + 1] != "{" {
                out += String(c[...k]) + "{\(c[k + 1])}" + String(c[(k + 2)...])
            } else {
                out += p
            }
        } else if c.count >= 2 {
            let a = c[0], b = c[1]
            if b != "{" {
                out += "{\(a)}{\(b)}" + String(c[2...])
            } else {
                out += "{\(a)}" + String(c[1...])
            }
        } else {
            out += p
        }
    }
    return out
}

/// `1/2` -> `\frac{1}{2}` when both sides are integers.
private func fixSlash(_ s: String) -> String {
    let parts = s.components(separatedBy: "/")
    guard parts.count == 2, let a = Int(parts[0]), let b = Int(parts[1]) else { return s }
    return "\\frac{\(a)}{\(b)}"
}

/// `1,234,567` -> `1234567` (only proper thousands groups; `(1,2)` stays a tuple).
private func removeThousandsCommas(_ s: String) -> String {
    let groups = s.components(separatedBy: ",")
    guard groups.count > 1 else { return s }
    var head = groups[0]
    let neg = head.hasPrefix("-")
    if neg { head.removeFirst() }
    guard (1...3).contains(head.count), head.allSatisfy(\.isASCIIDigitChar) else { return s }
    for (k, g) in groups.dropFirst().enumerated() {
        let last = k == groups.count - 2
        let intPart = last ? String(g.prefix { $0 != "." }) : g
        guard intPart.count == 3, intPart.allSatisfy(\.isASCIIDigitChar) else { return s }
        if last, g.count > 3 {
            let frac = g.dropFirst(4)
            guard g.dropFirst(3).first == ".", frac.allSatisfy(\.isASCIIDigitChar) else { return s }
        }
    }
    return s.replacingOccurrences(of: ",", with: "")
}

/// `12.0` / `12.00` -> `12`.
private func dropTrailingZeroDecimals(_ s: String) -> String {
    guard let dot = s.firstIndex(of: ".") else { return s }
    let intPart = s[..<dot], frac = s[s.index(after: dot)...]
    let digits = intPart.hasPrefix("-") ? intPart.dropFirst() : intPart[...]
    guard !digits.isEmpty, digits.allSatisfy(\.isASCIIDigitChar), !frac.isEmpty, frac.allSatisfy({ $0 == "0" })
    else { return s }
    return String(intPart)
}

/// The value of a normalised numeric answer: `12`, `-3.5`, `\frac{1}{2}`, `-\frac{3}{4}`, `3/4`, `1e3`.
func numericValue(_ s: String) -> Double? {
    var t = s
    var sign = 1.0
    if t.hasPrefix("-") { sign = -1; t.removeFirst() } else if t.hasPrefix("+") { t.removeFirst() }
    if t.hasPrefix("\\frac{") {
        let c = Array(t.dropFirst(6))
        guard let close = c.firstIndex(of: "}"), close + 1 < c.count, c[close + 1] == "{", c.last == "}" else {
            return nil
        }
        let num = String(c[..<close]), den = String(c[(close + 2)..<(c.count - 1)])
        guard let a = plainNumber(num), let b = plainNumber(den), b != 0 else { return nil }
        return sign * a / b
    }
    let slash = t.split(separator: "/", omittingEmptySubsequences: false)
    if slash.count == 2 {
        guard let a = plainNumber(String(slash[0])), let b = plainNumber(String(slash[1])), b != 0 else { return nil }
        return sign * a / b
    }
    return plainNumber(t).map { sign * $0 }
}

private func plainNumber(_ s: String) -> Double? {
    guard !s.isEmpty, s.allSatisfy({ $0.isASCIIDigitChar || $0 == "." || $0 == "-" || $0 == "e" || $0 == "+" }),
          s.first!.isASCIIDigitChar || s.first == "." || s.first == "-" else { return nil }
    guard let v = Double(s), v.isFinite else { return nil }
    return v
}

extension Character {
    fileprivate var isASCIIDigitChar: Bool { isASCII && isNumber }
}
