import Foundation
import Model
import Testing
import TestSupport
import Tokenizer
@testable import Training

/// `rlif sft`'s data and epoch loop, now in Training: the JSONL reader (`SFTData`), the epoch order
/// (`SFTBatches`) and the run (`SFTTrainer.run`) on the embedded default model.
@Suite struct SFTRunTests {
    static let modelDir = Fixtures.repoRoot.appendingPathComponent("Sources/rlif/Resources/default/model")
    static let hasModel = FileManager.default.fileExists(atPath: modelDir.appendingPathComponent("model.safetensors").path)

    static func formatter() throws -> PromptFormatter {
        let tok = try Tokenizer(contentsOf: modelDir.appendingPathComponent("tokenizer.json"))
        return try PromptFormatter(tokenizer: tok, template: .plain, systemPrompt: "none")
    }

    static func write(_ lines: [String]) throws -> URL {
        let url = try Fixtures.temporaryDirectory("rlif-sft").appendingPathComponent("data.jsonl")
        try lines.joined(separator: "\n").write(to: url, atomically: true, encoding: .utf8)
        return url
    }

    /// Each epoch is a permutation of the examples, read in batches; the next epoch starts (reshuffled) when fewer
    /// than a batch remain; the order depends on the seed only.
    @Test func batchesCoverEachEpochOnceAndFollowTheSeed() {
        let ex = (0..<10).map { SFTExample(prompt: [Int32($0)], response: [1]) }
        var b = SFTBatches(ex, batchSequences: 3, seed: 7)
        for epoch in 1...3 {
            var seen: [Int32] = []
            for _ in 0..<3 { let batch = b.next(); #expect(batch.count == 3); seen += batch.map { $0.prompt[0] } }
            #expect(b.epoch == epoch)
            #expect(Set(seen).count == 9, "epoch \(epoch) repeated an example: \(seen)")
        }
        var same = SFTBatches(ex, batchSequences: 3, seed: 7), other = SFTBatches(ex, batchSequences: 3, seed: 8)
        var again = SFTBatches(ex, batchSequences: 3, seed: 7)
        let a = (0..<6).map { _ in same.next().map { $0.prompt[0] } }
        #expect(a == (0..<6).map { _ in again.next().map { $0.prompt[0] } })
        #expect(a != (0..<6).map { _ in other.next().map { $0.prompt[0] } })
        // More sequences per batch than examples: every batch is the whole (reshuffled) set.
        var all = SFTBatches(Array(ex.prefix(4)), batchSequences: 32, seed: 1)
        #expect(Set(all.next().map { $0.prompt[0] }) == [0, 1, 2, 3])
        #expect(all.next().count == 4 && all.epoch == 2)
    }

    @Test(.enabled(if: hasModel, "needs Sources/rlif/Resources/default/model"))
    func readsTextAndPromptResponseLinesAndNamesBadLines() throws {
        let f = try Self.formatter()
        let url = try Self.write([#"{"text": "Once upon a time there was a cat."}"#, "  ",
                                  #"{"prompt": "What is 2 + 3?", "response": "5"}"#])
        defer { try? FileManager.default.removeItem(at: url.deletingLastPathComponent()) }
        let ex = try SFTData.read(url, formatter: f, eos: 2, maxLength: 512)
        #expect(ex.count == 2)
        let ids = f.tokenizer.encode("Once upon a time there was a cat.", addSpecialTokens: true)
        #expect(ex[0] == SFTExample(prompt: [ids[0]], response: Array(ids.dropFirst()) + [2]))
        #expect(ex[1] == SFTExample(prompt: f.encode("What is 2 + 3?"), response: f.tokenizer.encode("5") + [2]))
        for (lines, line, message, most) in [([#"{"text": "ok here"}"#, #"{"prompt": "no response"}"#], 2, "needs \"text\"", 512),
                                             (["", "", "not json"], 3, "not valid JSON", 512),
                                             (["[1, 2]"], 1, "expected a JSON object", 512),
                                             ([#"{"text": "a b c d e f g h i j k l m n o p"}"#], 1, "exceed the model's 4 positions", 4)] {
            let bad = try Self.write(lines)
            defer { try? FileManager.default.removeItem(at: bad.deletingLastPathComponent()) }
            #expect {
                try SFTData.read(bad, formatter: f, eos: nil, maxLength: most)
            } throws: { e in
                guard let e = e as? DatasetError else { return false }
                return e.line == line && e.file == bad.path && e.message.contains(message)
            }
        }
    }

    /// The run: `totalSteps` steps over the batches, progress after each, and the held-out loss of what it
    /// trained on goes down.
    @Test(.enabled(if: hasModel, "needs Sources/rlif/Resources/default/model"))
    func runTrainsEveryStepAndLowersTheLoss() throws {
        let model = try Transformer.load(directory: Self.modelDir)
        let f = try Self.formatter()
        let examples = ["The cat sat on the mat.", "Two plus two is four.", "The sky is blue today."].map { t in
            let ids = f.tokenizer.encode(t, addSpecialTokens: true)
            return SFTExample(prompt: [ids[0]], response: Array(ids.dropFirst()))
        }
        var cfg = SFTConfig()
        cfg.epochs = 4; cfg.batchSequences = 2; cfg.learningRate = 3e-3; cfg.warmupRatio = 0
        let trainer = try SFTTrainer(model: model, config: cfg, exampleCount: examples.count)
        #expect(trainer.totalSteps == 6)
        let before = try trainer.evaluate(examples)
        var seen: [SFTProgress] = []
        try trainer.run(examples) { seen.append($0) }
        #expect(seen.map(\.step) == Array(1...6) && seen.allSatisfy { $0.totalSteps == 6 && !$0.refused })
        // Each step trains 2 of the 3 examples (one batch per epoch): its tokens are one pair's.
        let sizes = examples.map { $0.prompt.count + $0.response.count }
        let pairs = Set([sizes[0] + sizes[1], sizes[0] + sizes[2], sizes[1] + sizes[2]])
        let steps = zip(seen.map(\.tokens), [0] + seen.map(\.tokens)).map { $0 - $1 }
        #expect(steps.allSatisfy { pairs.contains($0) }, "tokens per step \(steps), pairs \(pairs)")
        let after = try trainer.evaluate(examples)
        #expect(after < before - 0.1, "held-out loss \(before) → \(after)")
    }
}
