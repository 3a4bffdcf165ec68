import Foundation
import Testing
import Sampling
import TestSupport
import Tokenizer
@testable import Training

@Suite struct TrainConfigTests {
    @Test func defaultsAreThePapers() throws {
        let c = try TrainConfig.load(yaml: "", source: "empty.yaml")
        #expect(c.learningRate == 3e-6)
        #expect(c.lrSchedule == .cosine && c.warmupRatio == 0.1)
        #expect(c.adamBeta1 == 0.9 && c.adamBeta2 == 0.999 && c.adamEpsilon == 1e-8 && c.weightDecay == 0.01)
        #expect(c.klBeta == 0.005 && c.clipEpsilonLow == 0.2 && c.clipEpsilonHigh == 0.2)
        #expect(c.groupSize == 8 && c.temperature == 0.9 && c.ppoEpochs == 1 && c.lossAggregation == .tokenMean)
        #expect(c.template == .auto)
    }

    /// `template` is a Codable enum: decoded once from YAML (any case) and from `--set`, re-encoded as its name.
    @Test func templateIsDecodedOnce() throws {
        for (text, want) in [("auto", TemplateChoice.auto), ("chatml", .chatml), ("ChatML", .chatml), ("plain", .plain), ("raw", .raw)] {
            #expect(try TrainConfig.load(yaml: "template: \(text)\n", source: "t.yaml").template == want)
            #expect(try TrainConfig().overriding(["template=\(text)"]).template == want)
        }
        let back = try JSONDecoder().decode(TrainConfig.self, from: JSONEncoder().encode(try TrainConfig().overriding(["template=raw"])))
        #expect(back.template == .raw)
        do {
            _ = try TrainConfig().overriding(["template=jinja"])
            Issue.record("template=jinja accepted")
        } catch let e as ConfigError {
            #expect(e.key == "template" && e.message.contains("auto, chatml, plain or raw"), "\(e)")
        }
    }

    @Test func yamlOverridesOnlyWhatItNames() throws {
        let c = try TrainConfig.load(yaml: "learning_rate: 1.0e-5\ngroup_size: 4\nmodel: m/\n", source: "a.yaml")
        #expect(c.learningRate == 1e-5 && c.groupSize == 4 && c.model == "m/")
        #expect(c.temperature == 0.9)
    }

    @Test func unknownKeyIsNamedWithASuggestion() {
        do {
            _ = try TrainConfig.load(yaml: "learning_rat: 1e-5\n", source: "run.yaml")
            Issue.record("typo accepted")
        } catch let e as ConfigError {
            #expect(e.key == "learning_rat")
            #expect(e.description.contains("run.yaml") && e.description.contains("learning_rate"))
        } catch { Issue.record("wrong error \(error)") }
    }

    @Test func wrongTypeAndOutOfRangeNameTheKey() {
        for (yaml, key) in [("group_size: many", "group_size"), ("top_p: 1.5", "top_p"), ("group_size: 1", "group_size"),
                            ("lr_schedule: step", "lr_schedule"), ("loss_aggregation: mean", "loss_aggregation"),
                            ("template: jinja", "template"), ("template: [chatml]", "template")] {
            do {
                _ = try TrainConfig.load(yaml: yaml, source: "x.yaml")
                Issue.record("accepted \(yaml)")
            } catch let e as ConfigError {
                #expect(e.key == key, "\(yaml): \(e)")
            } catch { Issue.record("wrong error \(error)") }
        }
        #expect(throws: ConfigError.self) { try TrainConfig.load(yaml: "- a\n- b", source: "list.yaml") }
        #expect(throws: ConfigError.self) { try TrainConfig.load(yaml: "a: [", source: "bad.yaml") }
    }

    /// `stop` strings: YAML list, range-checked, and tokenized by the formatter into the sampler's id sequences.
    @Test func stopStringsBecomeTokenSequences() throws {
        let c = try TrainConfig.load(yaml: "stop: [\"\\n\\n\", \"Question:\"]\n", source: "s.yaml")
        #expect(c.stop == ["\n\n", "Question:"])
        #expect(throws: ConfigError.self) { try TrainConfig.load(yaml: "stop: [\"\"]\n", source: "s.yaml") }
        let dir = Fixtures.repoRoot.appendingPathComponent("Sources/rlif/Resources/default/model")
        let tok = try Tokenizer(contentsOf: dir.appendingPathComponent("tokenizer.json"))
        let f = try PromptFormatter(tokenizer: tok, template: .plain, systemPrompt: "none")
        let seqs = try f.stopSequences(c.stop)
        #expect(seqs == c.stop.map { tok.encode($0) } && seqs.allSatisfy { !$0.isEmpty })
        let long = [String](repeating: "x", count: 70).joined(separator: " ")
        #expect(tok.encode(long).count > 64)
        #expect(throws: ConfigError.self) { try f.stopSequences([long]) }
    }

    @Test func setOverrides() throws {
        let c = try TrainConfig().overriding(["learning_rate=2e-5", "template=plain", "steps=3"])
        #expect(c.learningRate == 2e-5 && c.template == .plain && c.steps == 3)
        #expect(throws: ConfigError.self) { try TrainConfig().overriding(["stepz=3"]) }
        #expect(throws: ConfigError.self) { try TrainConfig().overriding(["steps"]) }
        #expect(throws: ConfigError.self) { try TrainConfig().overriding(["steps=0"]) }
    }
}

@Suite struct PromptDatasetTests {
    @Test func everyPromptOncePerEpochAndResumable() throws {
        let recs = (0..<10).map { PromptRecord(id: "p\($0)", text: "t\($0)", answer: nil) }
        let ds = PromptDataset(records: recs, seed: 3)
        var cur = DataCursor()
        let epoch0 = ds.next(4, cursor: &cur) + ds.next(6, cursor: &cur)
        #expect(Set(epoch0.map(\.id)).count == 10)
        #expect(cur == DataCursor(epoch: 0, index: 10))
        var resumed = cur
        let a = ds.next(7, cursor: &cur)
        let b = ds.next(7, cursor: &resumed)
        #expect(a == b && cur.epoch == 1)
        #expect(ds.order(epoch: 0) != ds.order(epoch: 1))
    }

    @Test func jsonlErrorsNameFileAndLine() throws {
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let good = dir.appendingPathComponent("p.jsonl")
        try "{\"question\": \"1+1?\", \"answer\": \"#### 2\"}\n\n{\"prompt\": \"hi\", \"id\": 7}\n".write(to: good, atomically: true, encoding: .utf8)
        let ds = try PromptDataset(contentsOf: good, seed: 0)
        #expect(ds.records.map(\.id) == ["p:1", "7"])
        #expect(ds.records[0].answer == "#### 2")
        let bad = dir.appendingPathComponent("bad.jsonl")
        try "{\"prompt\": \"ok\"}\n{\"text\": 3}\n".write(to: bad, atomically: true, encoding: .utf8)
        #expect { try PromptDataset(contentsOf: bad, seed: 0) } throws: { ($0 as? DatasetError)?.line == 2 }
    }
}

@Suite struct RewardScorerTests {
    @Test func selfCertaintyAndRentUseTheRecordedPerTokenValues() throws {
        let cs = [SampledCompletion(tokens: [1, 2], logprobs: [-1, -1], selfCertainty: [1, 3], entropy: [0.5, 1.5], finishReason: .stop),
                  SampledCompletion(tokens: [4], logprobs: [-2], selfCertainty: [4], entropy: [3], finishReason: .length)]
        #expect(try RewardScorer(name: "self_certainty", tokenizer: nil).score(cs, reference: nil) == [2, 4])
        #expect(try RewardScorer(name: "rent", tokenizer: nil).score(cs, reference: nil) == [-1, -3])
        #expect(throws: (any Error).self) { try RewardScorer(name: "accuracy", tokenizer: nil) }
        #expect(throws: (any Error).self) { try RewardScorer(name: "nonsense", tokenizer: nil) }
    }
}
