import Answers
import Foundation
import Testing
import TestSupport

@Suite struct ExtractAnswerTests {
    struct Case: Sendable, CustomTestStringConvertible {
        var completion: String
        var format: AnswerFormat
        var expected: String?
        var testDescription: String { "\(format): \(completion.prefix(40).debugDescription)" }
    }

    static let cases: [Case] = [
        // \boxed, nested braces, multiple boxes (last wins).
        Case(completion: "So the answer is \\boxed{42}.", format: .gsm8k, expected: "42"),
        Case(completion: "First \\boxed{1}, then \\boxed{2}.", format: .gsm8k, expected: "2"),
        Case(completion: "We get $\\boxed{\\frac{1}{2}}$", format: .math, expected: "\\frac{1}{2}"),
        Case(completion: "\\boxed{\\frac{\\sqrt{3}}{2}} done", format: .math, expected: "\\frac{\\sqrt{3}}{2}"),
        Case(completion: "a \\boxed{x} b \\boxed{\\{1, 2\\}}", format: .math, expected: "\\{1, 2\\}"),
        Case(completion: "\\boxed{$1,234.}", format: .gsm8k, expected: "1234"),
        Case(completion: "\\boxed{\\$18.00}", format: .gsm8k, expected: "18.00"),
        Case(completion: "So 1,000,000 people came", format: .gsm8k, expected: "1000000"),
        Case(completion: "\\fbox{7}", format: .math, expected: "7"),
        Case(completion: "answer: $\\boxed 5$", format: .math, expected: "5"),
        Case(completion: "unbalanced \\boxed{12 and no close, last number 3", format: .gsm8k, expected: "3"),
        // GSM8K fallbacks: #### then last number.
        Case(completion: "She makes 9 * 2 = $18.\n#### 18", format: .gsm8k, expected: "18"),
        Case(completion: "#### 1,000\nextra text 5", format: .gsm8k, expected: "1000"),
        Case(completion: "The total is 3 + 4 = 7 apples.", format: .gsm8k, expected: "7"),
        Case(completion: "It costs $1,234.50 in total.", format: .gsm8k, expected: "1234.50"),
        Case(completion: "The temperature is -5 degrees", format: .gsm8k, expected: "-5"),
        Case(completion: "half is .5", format: .gsm8k, expected: ".5"),
        // MATH fallbacks: "answer is" then last number.
        Case(completion: "The answer is $\\frac{3}{4}$.", format: .math, expected: "\\frac{3}{4}"),
        Case(completion: "so x equals 12 and y 13", format: .math, expected: "13"),
        // No answer.
        Case(completion: "I don't know.", format: .gsm8k, expected: nil),
        Case(completion: "", format: .math, expected: nil),
        Case(completion: "\\boxed{}", format: .math, expected: nil),
    ]

    @Test(arguments: cases)
    func extracts(_ c: Case) {
        #expect(extractAnswer(from: c.completion, format: c.format) == c.expected)
    }
}

@Suite struct ReferenceAnswerTests {
    @Test func gsm8kReference() {
        #expect(referenceAnswer(from: "Janet sells 16 - 3 - 4 = <<16-3-4=9>>9 duck eggs.\n#### 18", format: .gsm8k) == "18")
        #expect(referenceAnswer(from: "x\n#### 1,600", format: .gsm8k) == "1600")
        #expect(referenceAnswer(from: "x\n#### $5.", format: .gsm8k) == "5")
        #expect(referenceAnswer(from: "x\n#### -3", format: .gsm8k) == "-3")
        #expect(referenceAnswer(from: "no marker 12", format: .gsm8k) == nil)
        // A GSM8K solution under the math format (model answers in \boxed{}): its `####` answer, not the whole
        // solution — before, every GSM8K item scored wrong under `--format math` and the accuracy reward was 0.
        #expect(referenceAnswer(from: "She makes 9 * 2 = $<<9*2=18>>18.\n#### 18", format: .math) == "18")
        #expect(referenceAnswer(from: "x\n#### 1,600", format: .math) == "1600")
        #expect(answersMatch(extractAnswer(from: "so \\boxed{1600}.", format: .math)!,
                             referenceAnswer(from: "x\n#### 1,600", format: .math)!))
        #expect(referenceAnswer(from: "\\boxed{\\frac{1}{2}}", format: .math) == "\\frac{1}{2}")
        #expect(referenceAnswer(from: "42", format: .math) == "42")
    }

    @Test func mathReference() {
        #expect(referenceAnswer(from: "Thus $x = \\boxed{\\dfrac{1}{2}}$.", format: .math) == "\\dfrac{1}{2}")
        #expect(referenceAnswer(from: "  7 ", format: .math) == "7")
        #expect(referenceAnswer(from: "   ", format: .math) == nil)
    }

    /// Every GSM8K test reference has a numeric answer after `#### `, and it matches itself after extraction
    /// from a model-style completion.
    @Test(.enabled(if: Fixtures.shared("gsm8k/test.jsonl") != nil, "needs ../shared/data/gsm8k"))
    func allGSM8KReferencesParse() throws {
        let text = try String(contentsOf: Fixtures.shared("gsm8k/test.jsonl")!, encoding: .utf8)
        var n = 0
        for line in text.split(separator: "\n") {
            let obj = try JSONSerialization.jsonObject(with: Data(line.utf8)) as! [String: Any]
            let answer = obj["answer"] as! String
            let ref = try #require(referenceAnswer(from: answer, format: .gsm8k), "no reference in \(answer)")
            #expect(Double(ref) != nil, "reference \(ref) is not a number")
            let model = extractAnswer(from: "Reasoning...\nSo the answer is $\\boxed{\(ref)}$.", format: .gsm8k)
            #expect(model.map { answersMatch($0, ref) } == true, "\(ref)")
            n += 1
        }
        #expect(n == 1319)
    }
}

@Suite struct NormalizeAnswerTests {
    struct Case: Sendable, CustomTestStringConvertible {
        var input: String
        var expected: String
        var testDescription: String { input.debugDescription }
    }

    static let cases: [Case] = [
        Case(input: "\\left( 1, 2 \\right)", expected: "(1,2)"),
        Case(input: "\\dfrac{1}{2}", expected: "\\frac{1}{2}"),
        Case(input: "\\tfrac{3}{4}", expected: "\\frac{3}{4}"),
        Case(input: "\\frac12", expected: "\\frac{1}{2}"),
        Case(input: "\\frac1{2}", expected: "\\frac{1}{2}"),
        Case(input: "0.5", expected: "\\frac{1}{2}"),
        Case(input: "1/2", expected: "\\frac{1}{2}"),
        Case(input: "90^\\circ", expected: "90"),
        Case(input: "90^{\\circ}", expected: "90"),
        Case(input: "\\$5", expected: "5"),
        Case(input: "10\\%", expected: "10"),
        Case(input: "5\\text{ cm}", expected: "5"),
        Case(input: "12 dollars", expected: "12"),
        Case(input: "\\text{(B)}", expected: "(B)"),
        Case(input: "x = 5", expected: "5"),
        Case(input: "x=\\frac{1}{2}", expected: "\\frac{1}{2}"),
        Case(input: "1,234,567", expected: "1234567"),
        Case(input: "18.0", expected: "18"),
        Case(input: "18.", expected: "18"),
        Case(input: "\\sqrt3", expected: "\\sqrt{3}"),
        Case(input: "3\\!\\cdot\\!4", expected: "3\\cdot4"),
        Case(input: ".5", expected: "\\frac{1}{2}"),
        Case(input: "\\boxed{7}", expected: "7"),
    ]

    @Test(arguments: cases)
    func normalizes(_ c: Case) {
        #expect(normalizeAnswer(c.input) == c.expected)
    }
}

@Suite struct AnswersMatchTests {
    struct Case: Sendable, CustomTestStringConvertible {
        var a: String
        var b: String
        var same: Bool
        var testDescription: String { "\(a) vs \(b)" }
    }

    static let cases: [Case] = [
        Case(a: "0.5", b: "\\frac{1}{2}", same: true),
        Case(a: "1/2", b: "\\dfrac{1}{2}", same: true),
        Case(a: "0.5", b: "1/2", same: true),
        Case(a: "18", b: "18.0", same: true),
        Case(a: "18", b: "18.00", same: true),
        Case(a: "1,000", b: "1000", same: true),
        Case(a: "x=5", b: "5", same: true),
        Case(a: "\\frac{2}{4}", b: "0.5", same: true),
        Case(a: "-\\frac{3}{4}", b: "-0.75", same: true),
        Case(a: "33.333333", b: "\\frac{100}{3}", same: true),
        Case(a: "90^\\circ", b: "90", same: true),
        Case(a: "5\\text{ cm}", b: "5", same: true),
        Case(a: "\\left(1,2\\right)", b: "(1, 2)", same: true),
        Case(a: "18", b: "19", same: false),
        Case(a: "0.5", b: "\\frac{1}{3}", same: false),
        Case(a: "(1,2)", b: "(2,1)", same: false),
        Case(a: "", b: "", same: false),
        Case(a: "abc", b: "abd", same: false),
        Case(a: "1e3", b: "1000", same: true),
        Case(a: "\\dfrac{\\sqrt{3}}{2}", b: "\\frac{\\sqrt3}{2}", same: true),
        Case(a: "x^2 + 2x + 1", b: "x^2+2x+1", same: true),
        Case(a: "25\\%", b: "25", same: true),
        Case(a: "18 \\text{ dollars}", b: "18", same: true),
        Case(a: "\\frac{1}{}", b: "1", same: false),
    ]

    @Test(arguments: cases)
    func matches(_ c: Case) {
        #expect(answersMatch(c.a, c.b) == c.same)
        #expect(answersMatch(c.b, c.a) == c.same, "symmetric")
    }
}
