import Answers
import Foundation
import Model
import Sampling
import Shared

/// Greedy evaluation on labelled prompts: accuracy with its 95% interval, self-certainty of correct vs incorrect
/// answers (means and how well it separates them), length and truncation, speed. Labels are used only to report,
/// never to train. Keys are snake_case in JSON, like every other rlif output.
public struct EvalReport: Sendable, Codable {
    public struct Item: Sendable, Codable, Equatable {
        public var id: String
        public var completion: String
        public var extracted: String?
        public var reference: String?
        public var correct: Bool
        public var selfCertainty: Float
        public var tokens: Int
        /// Stopped at max_new_tokens rather than at a stop token.
        public var truncated: Bool

        enum CodingKeys: String, CodingKey {
            case id, completion, extracted, reference, correct, selfCertainty = "self_certainty", tokens, truncated
        }
    }
    public var count = 0
    public var correct = 0
    public var accuracy: Double { count > 0 ? Double(correct) / Double(count) : 0 }
    /// Wilson score 95% interval of the accuracy.
    public var accuracyLow = 0.0
    public var accuracyHigh = 0.0
    public var meanSelfCertainty = 0.0
    public var meanSelfCertaintyCorrect: Double? = nil
    public var meanSelfCertaintyIncorrect: Double? = nil
    /// P(a correct answer is more self-certain than an incorrect one) (ties count ½): the Mann–Whitney U over
    /// n_correct·n_incorrect; nil unless both kinds exist.
    public var selfCertaintyAUC: Double? = nil
    /// Mann–Whitney effect size r = Z / √N (normal approximation of U, no tie correction), the measure the
    /// INTUITOR paper reports (r ≈ 0.45 on its models); positive when correct answers are more certain.
    public var selfCertaintyEffectR: Double? = nil
    public var meanLength = 0.0
    public var truncatedFraction = 0.0
    /// Generated tokens per second of the decoding this report's items took (0 when unknown).
    public var tokensPerSecond = 0.0
    public var items: [Item] = []

    enum CodingKeys: String, CodingKey {
        case count, correct, accuracyLow = "accuracy_low", accuracyHigh = "accuracy_high"
        case meanSelfCertainty = "mean_self_certainty", meanSelfCertaintyCorrect = "mean_self_certainty_correct"
        case meanSelfCertaintyIncorrect = "mean_self_certainty_incorrect", selfCertaintyAUC = "self_certainty_auc"
        case selfCertaintyEffectR = "self_certainty_effect_r", meanLength = "mean_length"
        case truncatedFraction = "truncated_fraction", tokensPerSecond = "tokens_per_second", items
    }

    public init() {}

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(count, forKey: .count); try c.encode(correct, forKey: .correct)
        try c.encode(accuracyLow, forKey: .accuracyLow); try c.encode(accuracyHigh, forKey: .accuracyHigh)
        try c.encode(meanSelfCertainty, forKey: .meanSelfCertainty)
        try c.encodeIfPresent(meanSelfCertaintyCorrect, forKey: .meanSelfCertaintyCorrect)
        try c.encodeIfPresent(meanSelfCertaintyIncorrect, forKey: .meanSelfCertaintyIncorrect)
        try c.encodeIfPresent(selfCertaintyAUC, forKey: .selfCertaintyAUC)
        try c.encodeIfPresent(selfCertaintyEffectR, forKey: .selfCertaintyEffectR)
        try c.encode(meanLength, forKey: .meanLength); try c.encode(truncatedFraction, forKey: .truncatedFraction)
        try c.encode(tokensPerSecond, forKey: .tokensPerSecond); try c.encode(items, forKey: .items)
        var extra = encoder.container(keyedBy: ExtraKey.self)
        try extra.encode(accuracy, forKey: ExtraKey(stringValue: "accuracy"))
    }

    typealias ExtraKey = AnyCodingKey

    /// The summary of `items` (in order).
    public init(items: [Item], tokensPerSecond: Double = 0) {
        self.items = items
        self.tokensPerSecond = tokensPerSecond
        count = items.count
        correct = items.filter(\.correct).count
        (accuracyLow, accuracyHigh) = Self.wilson(correct, count)
        guard count > 0 else { return }
        meanSelfCertainty = items.reduce(0.0) { $0 + Double($1.selfCertainty) } / Double(count)
        meanLength = Double(items.reduce(0) { $0 + $1.tokens }) / Double(count)
        truncatedFraction = Double(items.filter(\.truncated).count) / Double(count)
        let right = items.filter(\.correct).map { Double($0.selfCertainty) }
        let wrong = items.filter { !$0.correct }.map { Double($0.selfCertainty) }
        meanSelfCertaintyCorrect = right.isEmpty ? nil : right.reduce(0, +) / Double(right.count)
        meanSelfCertaintyIncorrect = wrong.isEmpty ? nil : wrong.reduce(0, +) / Double(wrong.count)
        if let (auc, r) = Self.mannWhitney(right, wrong) {
            selfCertaintyAUC = auc
            selfCertaintyEffectR = r
        }
    }

    /// Wilson score interval at 95% (z = 1.959964) for k successes in n.
    static func wilson(_ k: Int, _ n: Int) -> (Double, Double) {
        guard n > 0 else { return (0, 0) }
        let z = 1.959964, p = Double(k) / Double(n), nn = Double(n)
        let denom = 1 + z * z / nn
        let centre = (p + z * z / (2 * nn)) / denom
        let half = z * (p * (1 - p) / nn + z * z / (4 * nn * nn)).squareRoot() / denom
        return (max(0, centre - half), min(1, centre + half))
    }

    /// (AUC = U / (n₁n₂), r = Z/√N) for samples `a` vs `b`, U counting pairs with a > b (ties ½); nil when
    /// either is empty.
    static func mannWhitney(_ a: [Double], _ b: [Double]) -> (Double, Double)? {
        guard !a.isEmpty, !b.isEmpty else { return nil }
        // U from mid-ranks of the pooled sample: O(N log N).
        let pooled = (a.map { ($0, true) } + b.map { ($0, false) }).sorted { $0.0 < $1.0 }
        var rankSumA = 0.0
        var i = 0
        while i < pooled.count {
            var j = i
            while j + 1 < pooled.count && pooled[j + 1].0 == pooled[i].0 { j += 1 }
            let mid = Double(i + j) / 2 + 1
            for k in i...j where pooled[k].1 { rankSumA += mid }
            i = j + 1
        }
        let n1 = Double(a.count), n2 = Double(b.count)
        let u = rankSumA - n1 * (n1 + 1) / 2
        let mu = n1 * n2 / 2, sigma = (n1 * n2 * (n1 + n2 + 1) / 12).squareRoot()
        let z = sigma > 0 ? (u - mu) / sigma : 0
        return (u / (n1 * n2), z / (n1 + n2).squareRoot())
    }
}

public enum Evaluator {
    /// (extracted answer, reference answer, match) of one completion.
    static func score(_ text: String, answer: String?, format: AnswerFormat) -> (String?, String?, Bool) {
        let got = extractAnswer(from: text, format: format)
        let want = answer.flatMap { referenceAnswer(from: $0, format: format) ?? $0 }
        return (got, want, got != nil && want != nil && answersMatch(got!, want!))
    }

    /// Greedy-decodes every record (batched through the grouped sampler with G = 1) and scores the answers.
    /// `done` holds items of an earlier, interrupted evaluation of the same records: their ids are skipped.
    /// The rest is decoded in chunks of `chunkSequences`; `onItems` sees each chunk's items as soon as they are
    /// scored (e.g. to append them to a file, so a long evaluation resumes where it stopped).
    public static func run(model: Transformer, formatter: PromptFormatter, records: [PromptRecord],
                           format: AnswerFormat, maxNewTokens: Int, batchSequences: Int = 16,
                           done: [EvalReport.Item] = [], chunkSequences: Int? = nil,
                           onItems: (([EvalReport.Item]) throws -> Void)? = nil,
                           progress: ((Int) -> Void)? = nil) throws -> EvalReport {
        let stop = formatter.stopTokens(modelEOS: model.config.eosTokenIds)
        let params = SamplingParameters(temperature: 0, maxNewTokens: maxNewTokens, stopTokenIds: stop)
        // Items of an interrupted evaluation are scored again from their stored completions (the scoring may
        // have changed since; decoding is what is expensive and what they save).
        let recordsById = Dictionary(records.map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })
        let done = done.map { it -> EvalReport.Item in
            guard let rec = recordsById[it.id] else { return it }
            var it = it
            (it.extracted, it.reference, it.correct) = score(it.completion, answer: rec.answer, format: format)
            return it
        }
        let finished = Set(done.map(\.id))
        let todo = records.filter { !finished.contains($0.id) }
        let chunk = max(1, chunkSequences ?? max(todo.count, 1))
        var byId = Dictionary(done.map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })
        var generated = 0, seconds = 0.0
        var start = 0
        while start < todo.count {
            let part = Array(todo[start..<min(todo.count, start + chunk)])
            let requests = part.map { GroupRequest(promptTokens: formatter.encode($0.text), groupSize: 1, parameters: params, seed: 0) }
            let base = records.count - todo.count + start
            let t0 = Date()
            let groups = try GroupedSampler.sample(requests, on: model, maxBatchSequences: batchSequences,
                                                   progress: progress.map { p in { p(base + $0) } })
            seconds += Date().timeIntervalSince(t0)
            var items: [EvalReport.Item] = []
            for (rec, g) in zip(part, groups) {
                let c = g.completions[0]
                generated += c.tokens.count
                let text = formatter.tokenizer.decode(c.tokens, skipSpecialTokens: true)
                let (got, want, ok) = score(text, answer: rec.answer, format: format)
                items.append(.init(id: rec.id, completion: text, extracted: got, reference: want, correct: ok,
                                   selfCertainty: c.meanSelfCertainty, tokens: c.tokens.count,
                                   truncated: c.finishReason == .length))
            }
            try onItems?(items)
            for it in items { byId[it.id] = it }
            start += chunk
        }
        // Items in the records' order (each id once).
        var seen = Set<String>()
        let ordered = records.compactMap { r -> EvalReport.Item? in
            guard seen.insert(r.id).inserted else { return nil }
            return byId[r.id]
        }
        return EvalReport(items: ordered, tokensPerSecond: seconds > 0 ? Double(generated) / seconds : 0)
    }
}
