import Answers
import Foundation
import Model
import Testing
import TestSupport
import Tokenizer
@testable import Training

/// `Evaluator.run` on the embedded default model: batched greedy decoding gives each prompt's one-at-a-time greedy
/// completion, answers are scored against the references, items come back in the records' order, and an
/// evaluation resumed from the items of its first chunk equals the uninterrupted one.
@Suite(.enabled(if: FileManager.default.fileExists(atPath: Fixtures.repoRoot.appendingPathComponent("Sources/rlif/Resources/default/model/model.safetensors").path),
                "needs Sources/rlif/Resources/default/model"))
struct EvaluatorTests {
    static let dir = Fixtures.repoRoot.appendingPathComponent("Sources/rlif/Resources/default/model")

    @Test func batchedGreedyEqualsOneAtATimeAndResumesFromItsItems() throws {
        let model = try Transformer.load(directory: Self.dir)
        let tok = try Tokenizer(contentsOf: Self.dir.appendingPathComponent("tokenizer.json"))
        let f = try PromptFormatter(tokenizer: tok, template: .plain, systemPrompt: "none")
        let questions = ["Tom has 3 apples and buys 4 more. How many apples does he have?",
                         "A box holds 12 eggs. How many eggs are in 2 boxes?",
                         "Sara reads 5 pages a day. How many pages does she read in 3 days?",
                         "What is 10 minus 4?", "There are 6 birds and 2 fly away. How many are left?"]
        let maxNew = 24
        let stop = f.stopTokens(modelEOS: model.config.eosTokenIds)
        // One-at-a-time greedy decoding is the reference for each completion.
        let greedy = try questions.map { q in
            f.tokenizer.decode(try model.greedy(prompt: f.encode(q), maxNewTokens: maxNew, stop: stop), skipSpecialTokens: true)
        }
        // References: the first record's own extracted answer (so it scores correct, if the model gave one), an
        // answer no completion can match for the second, none for the rest.
        let first = extractAnswer(from: greedy[0], format: .gsm8k)
        let records = questions.enumerated().map { i, q in
            PromptRecord(id: "q\(i)", text: q, answer: i == 0 ? first : (i == 1 ? "-987654321" : nil))
        }
        var chunks: [[EvalReport.Item]] = []
        let full = try Evaluator.run(model: model, formatter: f, records: records, format: .gsm8k, maxNewTokens: maxNew,
                                     batchSequences: 3, chunkSequences: 2, onItems: { chunks.append($0) })
        #expect(full.items.map(\.id) == records.map(\.id))
        #expect(full.items.map(\.completion) == greedy)
        #expect(chunks.map(\.count) == [2, 2, 1])
        #expect(full.items[0].correct == (first != nil) && !full.items[1].correct && full.items[1].reference == "-987654321")
        #expect(full.items[2...].allSatisfy { !$0.correct && $0.reference == nil })
        #expect(full.items.allSatisfy { $0.tokens > 0 && $0.tokens <= maxNew && $0.truncated == ($0.tokens == maxNew) })
        #expect(full.count == 5 && full.correct == full.items.filter(\.correct).count)

        // Resumed from the first chunk: only the rest is decoded, and the report is the same.
        var later: [[EvalReport.Item]] = []
        let resumed = try Evaluator.run(model: model, formatter: f, records: records, format: .gsm8k, maxNewTokens: maxNew,
                                        batchSequences: 3, done: chunks[0], chunkSequences: 2, onItems: { later.append($0) })
        #expect(later.flatMap { $0 }.map(\.id) == ["q2", "q3", "q4"])
        #expect(resumed.items == full.items)
    }
}
