import Answers
import Foundation
import Model
import Sampling

/// Greedy evaluation on labelled prompts: accuracy, mean self-certainty of correct vs incorrect answers, mean
/// length. Labels are used only to report, never to train.
public struct EvalReport: Sendable, Codable {
    public struct Item: Sendable, Codable {
        public var id: String
        public var completion: String
        public var extracted: String?
        public var reference: String?
        public var correct: Bool
        public var selfCertainty: Float
        public var tokens: Int
    }
    public var count = 0
    public var correct = 0
    public var accuracy: Double { count > 0 ? Double(correct) / Double(count) : 0 }
    public var meanSelfCertainty = 0.0
    public var meanSelfCertaintyCorrect: Double? = nil
    public var meanSelfCertaintyIncorrect: Double? = nil
    public var meanLength = 0.0
    public var items: [Item] = []

    public var dictionary: [String: Any] {
        var d: [String: Any] = ["eval_count": count, "eval_accuracy": accuracy, "eval_self_certainty": meanSelfCertainty,
                                "eval_length": meanLength]
        if let c = meanSelfCertaintyCorrect { d["eval_self_certainty_correct"] = c }
        if let c = meanSelfCertaintyIncorrect { d["eval_self_certainty_incorrect"] = c }
        return d
    }
}

public enum Evaluator {
    /// Greedy-decodes every record (batched through the grouped sampler with G = 1) and scores the answers.
    public static func run(model: Transformer, formatter: PromptFormatter, records: [PromptRecord],
                           format: AnswerFormat, maxNewTokens: Int, batchSequences: Int = 16,
                           progress: ((Int) -> Void)? = nil) throws -> EvalReport {
        let stop = formatter.stopTokens(modelEOS: model.config.eosTokenIds)
        let params = SamplingParameters(temperature: 0, maxNewTokens: maxNewTokens, stopTokenIds: stop)
        let requests = records.map { GroupRequest(promptTokens: formatter.encode($0.text), groupSize: 1, parameters: params, seed: 0) }
        let groups = try GroupedSampler.sample(requests, on: model, maxBatchSequences: batchSequences, progress: progress)
        var r = EvalReport()
        var scC = 0.0, nC = 0, scI = 0.0, nI = 0, lenSum = 0
        for (rec, g) in zip(records, groups) {
            let c = g.completions[0]
            let text = formatter.tokenizer.decode(c.tokens, skipSpecialTokens: true)
            let got = extractAnswer(from: text, format: format)
            let want = rec.answer.flatMap { referenceAnswer(from: $0, format: format) ?? $0 }
            let ok = got != nil && want != nil && answersMatch(got!, want!)
            let sc = c.meanSelfCertainty
            r.items.append(.init(id: rec.id, completion: text, extracted: got, reference: want, correct: ok,
                                 selfCertainty: sc, tokens: c.tokens.count))
            r.count += 1
            lenSum += c.tokens.count
            r.meanSelfCertainty += Double(sc)
            if ok { r.correct += 1; scC += Double(sc); nC += 1 } else { scI += Double(sc); nI += 1 }
        }
        if r.count > 0 {
            r.meanSelfCertainty /= Double(r.count)
            r.meanLength = Double(lenSum) / Double(r.count)
        }
        r.meanSelfCertaintyCorrect = nC > 0 ? scC / Double(nC) : nil
        r.meanSelfCertaintyIncorrect = nI > 0 ? scI / Double(nI) : nil
        return r
    }
}
